"""Billing's request/reply endpoints over NATS (invoice documents, tariff versions) share one
shape: decode the request, handle it, reply. A request that does not parse, or whose
handling raises, is logged, counted and still answered (``failed``), so the asking api
answers its caller at once instead of waiting out its NATS timeout."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from balans_billing.metrics import INVALID_MESSAGES
from balans_protocol.messages import Message

log = structlog.get_logger(__name__)

Req = TypeVar("Req", bound=Message)
Rep = TypeVar("Rep", bound=Message)


@dataclass(frozen=True)
class Endpoint(Generic[Req, Rep]):
    """One request subject: its message types and what to do with a request."""

    subject: str
    source: str  # the request's name in logs and in balans_billing_invalid_messages_total
    request: type[Req]
    reply: type[Rep]
    handle: Callable[[Req], Awaitable[Rep]]
    count_failure: Callable[[Req], None]  # count a request whose handling raised
    context: Callable[[Req], dict[str, Any]]  # what a failure's log line names


async def serve(nc: Client, queue: str, endpoint: Endpoint[Any, Any]) -> Subscription:
    """Answer ``endpoint``'s requests in queue group ``queue``."""

    async def on_request(msg: Msg) -> None:
        try:
            request = endpoint.request.model_validate_json(msg.data)
        except ValidationError as exc:
            INVALID_MESSAGES.labels(endpoint.source).inc()
            log.warning(f"invalid {endpoint.source} request", error=str(exc))
            reply = endpoint.reply(
                status="failed", detail=f"invalid request: {exc.error_count()} error(s)"
            )
        else:
            try:
                reply = await endpoint.handle(request)
            except Exception as exc:
                endpoint.count_failure(request)
                log.exception(f"{endpoint.source} request failed", **endpoint.context(request))
                reply = endpoint.reply(status="failed", detail=type(exc).__name__)
        await msg.respond(reply.model_dump_json().encode())

    return await nc.subscribe(endpoint.subject, queue=queue, cb=on_request)
