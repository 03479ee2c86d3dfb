"""Entry point: ``python -m balans_sim`` or ``balans-sim``."""

from __future__ import annotations

from balans_core.service import ServiceContext, idle_until_stopped, run_service
from balans_sim.settings import SimSettings


async def serve(ctx: ServiceContext) -> None:
    """Until its issue lands, the service starts, reports ready and stops on a signal."""
    await idle_until_stopped(ctx)


def main() -> None:
    run_service("sim", SimSettings(), serve)


if __name__ == "__main__":
    main()
