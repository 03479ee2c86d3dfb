"""Entry point of the ingest service: ``python -m balans_ingest`` or ``balans-ingest``."""

from __future__ import annotations

import asyncpg

from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_db.secrets import KeyVault
from balans_ingest.keys import KeyStore
from balans_ingest.server import IngestServer
from balans_ingest.settings import IngestSettings
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext) -> None:
    """Listen for concentrators until SIGTERM; then close connections and drain NATS."""
    settings = ctx.settings
    assert isinstance(settings, IngestSettings)
    nc = await connect_nats(settings.nats_url, "ingest")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats_stream_replicas)
        keys = KeyStore(pool, KeyVault.from_hex(settings.master_key), settings.ingest_key_cache_s)
        server = IngestServer(settings, nc, js, keys)
        port = await server.start()
        ctx.set_ready(port=port)
        await ctx.stopping.wait()
        await server.stop()
    finally:
        await nc.drain()
        await pool.close()


def main() -> None:
    run_service("ingest", IngestSettings(), serve)


if __name__ == "__main__":
    main()
