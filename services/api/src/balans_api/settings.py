"""Settings of the api service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class ApiSettings(CommonSettings):
    """HTTP API and web portal."""
