"""Entry point of the persister service: ``python -m balans_ingest.persister``."""

from __future__ import annotations

from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_ingest.persister.consumer import Persister
from balans_ingest.settings import PersisterSettings
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext) -> None:
    """Consume UPLOADS until SIGTERM, finish the batch in hand, then drain NATS."""
    settings = ctx.settings
    assert isinstance(settings, PersisterSettings)
    nc = await connect_nats(settings.nats_url, "persister")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        persister = Persister(settings, nc, js)
        ctx.set_ready(durable=settings.persister_durable)
        await persister.run(ctx.stopping)
    finally:
        await nc.drain()


def main() -> None:
    run_service("persister", PersisterSettings(), serve)


if __name__ == "__main__":
    main()
