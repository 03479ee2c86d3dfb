"""Tariffs and invoices (billing's tables): consumers see their own account's invoices;
the printable document (HTML or PDF, in the reader's language) is rendered by billing,
asked over NATS."""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from balans_api.deps import Pool, Reader
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.i18n import Lang
from balans_api.models import InvoiceDetail, InvoiceLinePublic, InvoicePublic, TariffPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries import billing
from balans_protocol import subjects
from balans_protocol.messages import InvoiceDocumentReply, InvoiceDocumentRequest

router = APIRouter(tags=["billing"], responses=ERROR_RESPONSES)


@router.get("/tariffs", response_model=Page[TariffPublic])
async def list_tariffs(
    pool: Pool, _: Reader, utility: str | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """Tariff versions as billing defines them (blocks, fixed, capacity, operations)."""
    rows, nxt = await fetch_page(
        pool, billing.TARIFFS, Where().add("utility = {}", utility), cursor, limit
    )
    return Page(items=[TariffPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/invoices", response_model=Page[InvoicePublic])
async def list_invoices(
    pool: Pool,
    who: Reader,
    account_id: int | None = None,
    building_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Invoices and corrections per account and period; amounts are decimal strings."""
    where = (
        Where()
        .add("account_id = {}", account_id)
        .add("building_id = {}", building_id)
        .add("account_id = {}", who.account_id if who.is_consumer else None)
    )
    rows, nxt = await fetch_page(pool, billing.INVOICES, where, cursor, limit)
    return Page(items=[InvoicePublic(**r) for r in rows], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail)
async def get_invoice(invoice_id: int, pool: Pool, who: Reader) -> InvoiceDetail:
    """One invoice with its lines."""
    row = await pool.fetchrow(f"{billing.INVOICES} where id = $1", invoice_id)
    if row is None or (who.is_consumer and row["account_id"] != who.account_id):
        raise not_found("invoice")
    lines = await billing.invoice_lines(pool, invoice_id)
    return InvoiceDetail(**row, lines=[InvoiceLinePublic(**line) for line in lines])


BILLING_TIMEOUT_S = 30.0  # a PDF takes WeasyPrint a second or two


@router.get(
    "/invoices/{invoice_id}/document",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
)
async def invoice_document(
    invoice_id: int,
    request: Request,
    pool: Pool,
    who: Reader,
    lang: Lang,
    format: Literal["html", "pdf"] = "html",
    locale: Literal["ro", "ru", "en"] | None = None,
) -> Response:
    """The invoice as its printable page or an A4 PDF (a download), in ``locale`` or the
    reader's language (cookie, Accept-Language); rendered by billing."""
    row = await pool.fetchrow(f"{billing.INVOICES} where id = $1", invoice_id)
    if row is None or (who.is_consumer and row["account_id"] != who.account_id):
        raise not_found("invoice")
    nats = request.app.state.nats
    if nats is None or not nats.is_connected:
        raise ApiError(503, "billing cannot be reached (no NATS connection)")
    ask = InvoiceDocumentRequest(invoice_id=invoice_id, format=format, locale=locale or lang.locale)
    try:
        msg = await nats.request(
            subjects.BILLING_DOCUMENT, ask.model_dump_json().encode(), timeout=BILLING_TIMEOUT_S
        )
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise ApiError(503, "billing did not answer; try again", retry_after=5) from exc
    reply = InvoiceDocumentReply.model_validate_json(msg.data)
    if reply.status == "not_found":
        raise not_found("invoice")
    if reply.status != "done":
        raise ApiError(502, f"billing could not render the invoice: {reply.detail}")
    disposition = "attachment" if format == "pdf" else "inline"
    return Response(
        base64.b64decode(reply.content_b64),
        media_type=reply.media_type,
        headers={
            "Content-Disposition": f'{disposition}; filename="invoice-{row["number"]}.{format}"'
        },
    )
