"""Settings of the sim service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class SimSettings(CommonSettings):
    """The simulated city: mesh, physics, faults, concentrators."""
