"""Entry point: ``python -m balans_api`` or ``balans-api``: the REST API and the portal."""

from __future__ import annotations

import asyncio
import contextlib

from balans_api.app import create_app
from balans_api.db import open_pool
from balans_api.keeper import Keeper
from balans_api.server import serving, settle_gc
from balans_api.settings import ApiSettings
from balans_api.users import ensure_demo_users
from balans_api.worker_metrics import share_with_workers, stop_sharing
from balans_api.workers import check_workers, start_workers, stop_workers
from balans_core.health import bind_socket
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service

WORKER_CHECK_S = 1.0


async def serve(ctx: ServiceContext) -> None:
    """Serve HTTP on BALANS_API_PORT with BALANS_API_WORKERS processes (this one and the
    workers it starts) until a stop signal, then drain commands in flight."""
    settings = ApiSettings()
    nats = await connect_nats(settings.nats_url, "balans-api")
    demo = settings.demo_users and settings.environment == "development"
    if demo:
        pool = await open_pool(settings.database_url, 1)
        try:
            logins = await ensure_demo_users(pool)
        finally:
            await pool.close()
    app = create_app(settings, nats)
    sock = bind_socket(settings.api_host, settings.api_port)
    port = sock.getsockname()[1]
    metrics_dir = share_with_workers() if settings.api_workers > 1 else None
    workers = start_workers(sock, settings.api_workers)
    try:
        async with serving(app, sock) as task:
            if task.done():
                await task
                return
            settle_gc()
            info: dict[str, object] = {
                "url": f"http://{settings.api_host}:{port}/",
                "workers": settings.api_workers,
            }
            if demo:
                info["demo_logins"] = ", ".join(f"{u} / {p}" for u, p in logins)
            ctx.set_ready(**info)
            # the kept answers of closed months: built and invalidated by this process alone
            keeper = asyncio.create_task(Keeper(app.state.pool, settings).run(nats, ctx.stopping))
            while not ctx.stopping.is_set():
                check_workers(workers)
                if keeper.done():
                    await keeper  # its failure is the service's
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), WORKER_CHECK_S)
            await keeper
    finally:
        await asyncio.to_thread(stop_workers, workers)
        if metrics_dir is not None:
            stop_sharing(metrics_dir)
    await app.state.dispatcher.drain()
    await nats.drain()


def main() -> None:
    run_service("api", ApiSettings(), serve)


if __name__ == "__main__":
    main()
