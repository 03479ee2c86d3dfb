"""Schema migrations, run programmatically (no alembic.ini to keep in step).

Migrations live in ``balans_db/migrations/versions``. The core revision creates the
world model and the readings; services add their tables in revisions of their own
branch that depend on it, so ``upgrade`` goes to ``heads`` and ``downgrade`` to ``base``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """postgresql://... (asyncpg form) -> postgresql+asyncpg://... for SQLAlchemy."""
    scheme, rest = database_url.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgresql", "postgres") else database_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
