"""Entry point: ``python -m balans_api`` or ``balans-api``."""

from __future__ import annotations

from balans_api.settings import ApiSettings
from balans_core.service import ServiceContext, idle_until_stopped, run_service


async def serve(ctx: ServiceContext) -> None:
    """Until its issue lands, the service starts, reports ready and stops on a signal."""
    await idle_until_stopped(ctx)


def main() -> None:
    run_service("api", ApiSettings(), serve)


if __name__ == "__main__":
    main()
