"""New tariff versions on request: an admin enters one in the portal, the api asks over
NATS (``balans.billing.tariff``) and billing, which owns tariffs and their validation,
checks and stores it. Queue group, so any billing process may answer."""

from __future__ import annotations

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from balans_billing.metrics import TARIFF_VERSIONS
from balans_billing.responder import Endpoint, serve
from balans_billing.storage import TariffConflictError, add_version
from balans_billing.tariffs import TariffSpec
from balans_protocol import subjects
from balans_protocol.messages import TariffVersionReply, TariffVersionRequest

log = structlog.get_logger(__name__)


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem of the tariff document with its path ("blocks.1.price"). A list whose
    items failed is not also called too short (pydantic counts only the valid items)."""
    errors = exc.errors(include_url=False)
    failed_inside = {e["loc"][:n] for e in errors for n in range(1, len(e["loc"]))}
    return [
        {"path": ".".join(str(p) for p in e["loc"]) or "spec", "message": e["msg"]}
        for e in errors
        if not (e["type"] == "too_short" and e["loc"] in failed_inside)
    ]


async def new_version(pool: asyncpg.Pool, request: TariffVersionRequest) -> TariffVersionReply:
    try:
        spec = TariffSpec.model_validate(request.spec)
    except ValidationError as exc:
        TARIFF_VERSIONS.labels("invalid").inc()
        return TariffVersionReply(status="invalid", problems=problems(exc))
    try:
        async with pool.acquire() as conn:
            tariff_id, version = await add_version(conn, spec)
    except TariffConflictError as exc:
        TARIFF_VERSIONS.labels("conflict").inc()
        return TariffVersionReply(status="conflict", detail=str(exc))
    TARIFF_VERSIONS.labels("done").inc()
    log.info(
        "tariff version stored",
        utility=spec.utility,
        supplier=spec.supplier,
        version=version,
        effective_from=str(spec.effective_from),
        actor=request.actor,
    )
    return TariffVersionReply(status="done", tariff_id=tariff_id, version=version)


async def serve_tariffs(nc: Client, pool: asyncpg.Pool, queue: str) -> Subscription:
    """Answer TariffVersionRequests; a failure is logged, counted and answered."""
    endpoint = Endpoint(
        subject=subjects.BILLING_TARIFF,
        source="tariff",
        request=TariffVersionRequest,
        reply=TariffVersionReply,
        handle=lambda request: new_version(pool, request),
        count_failure=lambda _: TARIFF_VERSIONS.labels("failed").inc(),
        context=lambda request: {"actor": request.actor},
    )
    return await serve(nc, queue, endpoint)
