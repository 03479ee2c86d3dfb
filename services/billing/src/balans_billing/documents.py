"""Invoice documents on request: the api asks over NATS (``balans.billing.document``) for
an invoice's printable HTML or PDF in a language; billing, which owns invoices and their
rendering, answers. Queue group, so any billing process may answer."""

from __future__ import annotations

import base64

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from balans_billing import render
from balans_billing.document import load_document
from balans_billing.metrics import DOCUMENTS
from balans_billing.responder import Endpoint, serve
from balans_protocol import subjects
from balans_protocol.messages import InvoiceDocumentReply, InvoiceDocumentRequest

log = structlog.get_logger(__name__)

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


async def document(pool: asyncpg.Pool, request: InvoiceDocumentRequest) -> InvoiceDocumentReply:
    try:
        async with pool.acquire() as conn:
            doc = await load_document(conn, request.invoice_id)
    except LookupError:
        DOCUMENTS.labels(request.format, "not_found").inc()
        return InvoiceDocumentReply(status="not_found")
    if request.format == "pdf":
        content = render.to_pdf(doc, request.locale)
    else:
        content = render.to_html(doc, request.locale).encode()
    DOCUMENTS.labels(request.format, "done").inc()
    return InvoiceDocumentReply(
        status="done",
        media_type=MEDIA_TYPES[request.format],
        content_b64=base64.b64encode(content).decode(),
    )


async def serve_documents(nc: Client, pool: asyncpg.Pool, queue: str) -> Subscription:
    """Answer InvoiceDocumentRequests; a failure is logged, counted and answered."""
    endpoint = Endpoint(
        subject=subjects.BILLING_DOCUMENT,
        source="document",
        request=InvoiceDocumentRequest,
        reply=InvoiceDocumentReply,
        handle=lambda request: document(pool, request),
        count_failure=lambda request: DOCUMENTS.labels(request.format, "failed").inc(),
        context=lambda request: {"invoice_id": request.invoice_id},
    )
    return await serve(nc, queue, endpoint)
