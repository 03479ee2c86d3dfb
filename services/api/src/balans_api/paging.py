"""Keyset (cursor) pagination and SQL condition building shared by the list endpoints.

Every list answers ``{items, next_cursor}``; a cursor is opaque to clients (base64 of the
last item's key: its id, its time for time-keyed lists, or both)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
from fastapi import Query
from pydantic import BaseModel

from balans_api.errors import ApiError

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=100, description="`next_cursor` of the previous page.")
]
TimeLimit = Annotated[int, Query(ge=1, le=10_000, description="Items (hours) per page.")]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*key: int | str) -> str:
    text = "|".join(str(part) for part in key)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_key(cursor: str, parts: int) -> list[str]:
    """The ``parts`` fields of a cursor's key (400 when it is not one)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed cursor") from exc
    if len(key) != parts:
        raise ApiError(400, "malformed cursor")
    return key


def decode_cursor(cursor: str) -> int:
    try:
        return int(decode_key(cursor, 1)[0])
    except ValueError as exc:
        raise ApiError(400, "malformed cursor") from exc


def time_key(t: datetime) -> int:
    """A time as a cursor key: microseconds since the epoch."""
    return (t - _EPOCH) // timedelta(microseconds=1)


def key_time(key: str) -> datetime:
    """The time of :func:`time_key` (400 when it is not one)."""
    try:
        return _EPOCH + timedelta(microseconds=int(key))
    except (ValueError, OverflowError) as exc:
        raise ApiError(400, "malformed cursor") from exc


def after_time(cursor: str | None, start: datetime) -> datetime:
    """Where the next page of a time-keyed list starts: just after the cursor's time."""
    if cursor is None:
        return start
    return max(start, key_time(decode_key(cursor, 1)[0]) + timedelta(microseconds=1))


def time_page(rows: Sequence[T], limit: int, field: str) -> tuple[Sequence[T], str | None]:
    """The first ``limit`` of ``rows`` (fetched with ``limit + 1``) and the next cursor."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(time_key(rows[limit - 1][field]))  # type: ignore[index]
    return rows, None


class Where:
    """Collects ``column op $n`` conditions with their parameters for asyncpg."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, template: str, value: Any) -> Where:
        """``template`` holds one ``{}`` where the parameter goes; None values are skipped."""
        if value is not None:
            self.conditions.append(template.format(self.param(value)))
        return self

    def sql(self) -> str:
        return " where " + " and ".join(self.conditions) if self.conditions else ""


async def fetch_page(
    pool: asyncpg.Pool,
    select: str,
    where: Where,
    cursor: str | None,
    limit: int,
    id_column: str = "id",
) -> tuple[Sequence[asyncpg.Record], str | None]:
    """Rows of ``select`` (a query without WHERE) after the cursor, ordered by id."""
    if cursor is not None:
        where.add(f"{id_column} > {{}}", decode_cursor(cursor))
    sql = f"{select}{where.sql()} order by {id_column} limit {where.param(limit + 1)}"
    rows = await pool.fetch(sql, *where.params)
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1]["id"])
    return rows, None
