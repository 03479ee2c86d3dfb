"""Billing's NATS endpoints (invoice documents, tariff versions) answer every request, also
one that does not parse or whose handling fails: ``failed``, counted and logged, so the
api never waits out its timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client
from prometheus_client import REGISTRY

from balans_billing.documents import serve_documents
from balans_billing.tariff_requests import serve_tariffs
from balans_core.nats import connect_nats
from balans_protocol import subjects
from balans_protocol.messages import (
    InvoiceDocumentReply,
    InvoiceDocumentRequest,
    TariffVersionReply,
    TariffVersionRequest,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def billing(database_url: str, module_nats_url: str) -> AsyncIterator[Client]:
    """Both endpoints answering over a NATS of this module; a client to ask them. Their
    pool is closed: every request that reaches the database fails."""
    nc = await connect_nats(module_nats_url, "test-billing-responder")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await serve_documents(nc, pool, "billing")
    await serve_tariffs(nc, pool, "billing")
    await pool.close()
    try:
        yield nc
    finally:
        await nc.close()


def _count(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("subject", "reply", "source"),
    [
        (subjects.BILLING_DOCUMENT, InvoiceDocumentReply, "document"),
        (subjects.BILLING_TARIFF, TariffVersionReply, "tariff"),
    ],
)
async def test_a_request_that_does_not_parse_is_answered_failed_and_counted(
    billing: Client,
    subject: str,
    reply: type[InvoiceDocumentReply | TariffVersionReply],
    source: str,
) -> None:
    metric = "balans_billing_invalid_messages_total"
    before = _count(metric, {"source": source})
    answer = reply.model_validate_json((await billing.request(subject, b"{", timeout=10)).data)
    assert answer.status == "failed"
    assert answer.detail.startswith("invalid request: ")
    assert _count(metric, {"source": source}) == before + 1


async def test_a_request_whose_handling_fails_is_answered_failed_and_counted(
    billing: Client,
) -> None:
    request = InvoiceDocumentRequest(invoice_id=1, format="pdf", locale="ro")
    labels = {"format": "pdf", "outcome": "failed"}
    before = _count("balans_billing_documents_total", labels)
    message = await billing.request(
        subjects.BILLING_DOCUMENT, request.model_dump_json().encode(), timeout=10
    )
    answer = InvoiceDocumentReply.model_validate_json(message.data)
    assert answer.status == "failed"
    assert answer.detail  # the exception's type
    assert _count("balans_billing_documents_total", labels) == before + 1

    tariff = {
        "utility": "heat",
        "unit": "Gcal",
        "effective_from": "2026-01-01",
        "blocks": [{"from_qty": "0", "to_qty": None, "price": "1300.00"}],
    }
    before = _count("balans_billing_tariff_versions_total", {"outcome": "failed"})
    message = await billing.request(
        subjects.BILLING_TARIFF,
        TariffVersionRequest(spec=tariff, actor="admin").model_dump_json().encode(),
        timeout=10,
    )
    answer_tariff = TariffVersionReply.model_validate_json(message.data)
    assert answer_tariff.status == "failed", answer_tariff
    assert _count("balans_billing_tariff_versions_total", {"outcome": "failed"}) == before + 1
