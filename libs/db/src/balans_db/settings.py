"""Settings of the database tools."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class DatabaseSettings(CommonSettings):
    """``BALANS_DATABASE_URL`` and the master key that seals device keys."""

    master_key: str | None = Field(
        None, description="64 hex chars; seals device keys at rest (dev key when unset)."
    )
