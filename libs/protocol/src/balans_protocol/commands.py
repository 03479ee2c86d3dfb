"""Sending a downlink command over NATS, with every failure as a clear CommandReply."""

from __future__ import annotations

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from balans_protocol import subjects
from balans_protocol.messages import CommandReply, CommandRequest

# ingest answers "timeout" itself after request.timeout_s; this margin covers the trip.
REPLY_MARGIN_S = 2.0


async def request_command(nc: Client, concentrator: int, request: CommandRequest) -> CommandReply:
    """Ask the ingest instance holding ``concentrator``'s connection to run ``request``.

    ``status`` is "offline" when no ingest instance has that concentrator connected, and
    "timeout" when nothing answers in time; the reply is validated at the boundary."""
    try:
        msg = await nc.request(
            subjects.command(concentrator),
            request.model_dump_json().encode(),
            timeout=request.timeout_s + REPLY_MARGIN_S,
        )
    except NoRespondersError:
        return CommandReply(
            command_id=request.command_id,
            status="offline",
            detail=f"concentrator {concentrator} is not connected",
        )
    except NatsTimeoutError:
        return CommandReply(
            command_id=request.command_id, status="timeout", detail="ingest did not answer"
        )
    return CommandReply.model_validate_json(msg.data)
