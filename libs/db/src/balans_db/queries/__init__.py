"""The reads each owner publishes for the other services, one module per owner (like
:mod:`balans_db.tables`): a service reads another service's table only through these.

Functions take an asyncpg connection or pool (anything with ``fetch``, ``fetchrow``,
``fetchval``) and return records, plain values or small dataclasses; shaping them into
a service's own structures stays in the service. The SQL is the one the services ran
before it moved here. See docs/database.md.
"""

from __future__ import annotations

from typing import Any, Protocol


class Db(Protocol):
    """The part of an asyncpg connection or pool the queries use."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...
