"""The one MetaData every table of every owner is declared in, and the shared value sets."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

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


def outbox_table(name: str) -> sa.Table:
    """A service's outbox (``balans_core.outbox``): each announcement is written here in the
    transaction of the change it announces; the service's relay publishes it with
    ``Nats-Msg-Id`` = ``msg_id`` and sets ``sent_at`` once JetStream has acknowledged it."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("msg_id", sa.Text, nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB),
        created_now("created_at"),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Index(f"ix_{name}_unsent", "id", postgresql_where=sa.text("sent_at is null")),
    )
