"""The FastAPI application: REST under ``/api/v1`` and the web portal at ``/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from nats.aio.client import Client as Nats
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from balans_api import api_docs, portal
from balans_api.cache import TtlCache
from balans_api.db import open_pool
from balans_api.downlink import Dispatcher
from balans_api.errors import install_error_handlers
from balans_api.import_jobs import ImportJobs
from balans_api.kept_fast_path import KeptProfilesFirst
from balans_api.principal_cache import PrincipalCache
from balans_api.provisioning import outbox_relay
from balans_api.ratelimit import LoginLimiter
from balans_api.request_metrics import MeasureRequests
from balans_api.routes import (
    accounts,
    admin,
    alerts,
    auth,
    balance,
    billing,
    commands,
    csv_imports,
    estimator,
    exchanges,
    imports,
    network,
    preferences,
    provisioning,
    reading_imports,
    readings,
    verification,
    views,
    webhooks,
    world,
)
from balans_api.security import VerifiedTokens
from balans_api.security_headers import SecurityHeaders
from balans_api.settings import ApiSettings

DESCRIPTION = """
REST API of **balans**: the world model (sites to meters), readings and hourly
consumption, per-flat heat allocation, balance groups, alerts, invoices, the radio
network and commands to valves and relays.

Authenticate with `POST /api/v1/auth/token` (OAuth2 password flow) or an integrator API
key; send either as `Authorization: Bearer <token>`. Every list is cursor-paginated
(`cursor`, `limit`; answers `{items, next_cursor}`). Series take `from`/`to` (a date is
the site's local midnight; a date-time is ISO 8601, naive = UTC), `resolution` and
`format=json|csv`, and answer one columnar shape: bucket i begins at `start` + i x
`step` (`PT1H`, or `P1D`/`P1M` of the site's calendar in `time_zone`), `values` holds one
value (or null) per bucket, `estimated` and `partial` the indices of flagged buckets.
Times are ISO 8601 UTC with `Z`. Every error has the shape
`{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: ApiSettings, nats: Nats | None = None) -> FastAPI:
    """Build the app; the pool opens in the lifespan, ``nats`` carries commands."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings.database_url, settings.api_db_pool_size)
        try:
            async with outbox_relay(app, nats, settings.outbox_poll_interval_s):
                yield
        finally:
            await app.state.import_jobs.stop()
            await app.state.cache.close()
            await app.state.pool.close()

    app = FastAPI(
        title="balans API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the CDN-free pages of api_docs instead
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.nats = nats
    app.state.login_limiter = LoginLimiter(settings.login_rate)
    app.state.cache = TtlCache(settings.cache_ttl_s)
    app.state.principals = PrincipalCache(settings.api_auth_cache_ttl_s)
    app.state.tokens = VerifiedTokens(settings.jwt_secret)
    app.state.dispatcher = Dispatcher()
    app.state.import_jobs = ImportJobs(
        settings.import_heartbeat_s, settings.import_interrupted_after_s
    )
    install_error_handlers(app)
    for module in (
        auth,
        verification,  # before world: /meters/verification-due is not /meters/{meter_id}
        world,
        readings,
        views,
        network,
        alerts,
        balance,
        billing,
        commands,
        estimator,
        admin,
        exchanges,  # before provisioning: /buildings/{code}/meter-exchanges is no collection
        provisioning,
        accounts,
        reading_imports,
        csv_imports,  # before imports: /imports/csv is no job id
        imports,
        preferences,
        webhooks,
    ):
        app.include_router(module.router, prefix="/api/v1")
    portal.mount(app)
    api_docs.mount(app, docs_url="/api/v1/docs", redoc_url="/api/v1/redoc")

    # inside the request metrics and the security headers: they apply to its answers too
    app.add_middleware(KeptProfilesFirst)
    app.add_middleware(MeasureRequests)
    # outermost of the app's middleware: every answer, errors included, carries them
    app.add_middleware(SecurityHeaders)
    # X-Forwarded-For names the client only when the peer is a configured proxy
    app.add_middleware(
        ProxyHeadersMiddleware, trusted_hosts=[str(n) for n in settings.api_trusted_proxies]
    )
    return app
