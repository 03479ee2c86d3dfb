"""Keyset (cursor) pagination and SQL condition building shared by the list endpoints."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import asyncpg
from fastapi import Query
from pydantic import BaseModel

from balans_api.errors import ApiError

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page.")
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed cursor") from exc


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
