"""The one MetaData every table of every owner is declared in, and the shared value sets."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTILITIES = ("heat", "hot_water", "cold_water", "gas", "electricity")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """The check-constraint text ``column in ('a', 'b', ...)``."""
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def created_now(name: str) -> sa.Column:
    """A ``timestamptz not null default now()`` column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
