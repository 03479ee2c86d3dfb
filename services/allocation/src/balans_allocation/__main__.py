"""Entry point: ``python -m balans_allocation`` or ``balans-allocation``."""

from __future__ import annotations

from balans_allocation.settings import AllocationSettings
from balans_core.service import ServiceContext, idle_until_stopped, run_service


async def serve(ctx: ServiceContext) -> None:
    """Until its issue lands, the service starts, reports ready and stops on a signal."""
    await idle_until_stopped(ctx)


def main() -> None:
    run_service("allocation", AllocationSettings(), serve)


if __name__ == "__main__":
    main()
