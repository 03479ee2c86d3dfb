"""The outbox relay over real PostgreSQL and NATS (on allocation's outbox table of the
migrated test database; every service's outbox has the same columns): what was committed
while no relay ran is sent once a relay starts; a rolled-back change announces nothing; a
resend after a crash between the ack and the mark is stored once; a message JetStream does
not acknowledge stays in the outbox until it does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY
from pydantic import BaseModel

from balans_core import outbox
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_devstack.eventually import eventually

TABLE = "allocation_outbox"
SERVICE = "allocation"
STREAM = "T_OUTBOX"
_cases = itertools.count(1)


class Note(BaseModel):
    n: int


@pytest.fixture(scope="module")
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect_nats(nats_url, "test-outbox")
    await client.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["t.outbox.>"]))
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


@contextlib.asynccontextmanager
async def relay_running(relay: OutboxRelay) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def stored(nc: Client, subject: str) -> list[bytes]:
    """Every message the stream holds on ``subject``, in order."""
    js = nc.jetstream()
    info = await js.stream_info(STREAM, subjects_filter=subject)
    found, seq = [], 1
    for _ in range((info.state.subjects or {}).get(subject, 0)):
        raw = await js.get_msg(STREAM, seq=seq, subject=subject, next=True)
        assert raw.seq is not None
        assert raw.data is not None
        found.append(raw.data)
        seq = raw.seq + 1
    return found


async def unsent(pool: asyncpg.Pool, subject: str) -> int:
    return await pool.fetchval(
        f"select count(*) from {TABLE} where subject = $1 and sent_at is null", subject
    )


def new_subject() -> str:
    return f"t.outbox.case{next(_cases)}"


async def test_committed_without_a_relay_is_sent_when_one_starts(
    nc: Client, pool: asyncpg.Pool
) -> None:
    """The crash: the change and its announcements committed, the process gone before any
    publish. A relay started afterwards sends them in order, once each, and marks them
    (those written one by one and those of one ``enqueue_many`` statement alike)."""
    subject = new_subject()
    async with pool.acquire() as conn, conn.transaction():
        for n in range(3):
            await outbox.enqueue(conn, TABLE, subject, Note(n=n))
        await outbox.enqueue_many(conn, TABLE, [(subject, Note(n=n)) for n in range(3, 6)])
    await asyncio.sleep(0.3)
    assert await stored(nc, subject) == []  # nothing published without a relay

    relay = OutboxRelay(pool, nc.jetstream(), TABLE, SERVICE, poll_interval_s=0.1)
    async with relay_running(relay):
        await eventually("all marked sent", lambda: _none_unsent(pool, subject))
    assert [Note.model_validate_json(d).n for d in await stored(nc, subject)] == list(range(6))


async def _none_unsent(pool: asyncpg.Pool, subject: str) -> bool:
    return await unsent(pool, subject) == 0


async def test_rolled_back_change_announces_nothing(nc: Client, pool: asyncpg.Pool) -> None:
    """The announcement is part of the transaction: no change, no row, nothing sent."""
    subject = new_subject()

    async def failing_change() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, TABLE, subject, Note(n=1))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    await OutboxRelay(pool, nc.jetstream(), TABLE, SERVICE).send_pending()
    assert await stored(nc, subject) == []
    assert await pool.fetchval(f"select count(*) from {TABLE} where subject = $1", subject) == 0


async def test_resend_after_a_crash_between_ack_and_mark_is_stored_once(
    nc: Client, pool: asyncpg.Pool
) -> None:
    """JetStream acknowledged, the relay died before marking the rows: the next relay sends
    them again under the same message ids, and the stream keeps one of each."""
    subject = new_subject()
    async with pool.acquire() as conn, conn.transaction():
        ids = [await outbox.enqueue(conn, TABLE, subject, Note(n=n)) for n in range(2)]
    relay = OutboxRelay(pool, nc.jetstream(), TABLE, SERVICE)
    while await relay.send_pending():
        pass
    assert len(await stored(nc, subject)) == 2
    await pool.execute(f"update {TABLE} set sent_at = null where msg_id = any($1)", ids)

    restarted = OutboxRelay(pool, nc.jetstream(), TABLE, SERVICE, poll_interval_s=0.1)
    async with relay_running(restarted):
        await eventually("resent and marked", lambda: _none_unsent(pool, subject))
    assert [Note.model_validate_json(d).n for d in await stored(nc, subject)] == [0, 1]


async def test_unacknowledged_message_waits_in_the_outbox(nc: Client, pool: asyncpg.Pool) -> None:
    """No stream takes the subject (JetStream cannot acknowledge): the row stays unsent, the
    failed passes are counted; once a stream takes the subject the row is sent."""
    subject = "t.outbox_late.case1"
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, TABLE, subject, Note(n=9))
    errors = f"balans_{SERVICE}_outbox_errors_total"
    before = REGISTRY.get_sample_value(errors) or 0.0
    relay = OutboxRelay(
        pool, nc.jetstream(), TABLE, SERVICE, poll_interval_s=0.1, publish_timeout_s=0.5
    )
    js = nc.jetstream()
    async with relay_running(relay):
        await eventually(
            "a failed pass counted", lambda: (REGISTRY.get_sample_value(errors) or 0) > before
        )
        assert await unsent(pool, subject) == 1
        await js.add_stream(StreamConfig(name="T_OUTBOX_LATE", subjects=["t.outbox_late.>"]))
        await eventually("sent once a stream takes it", lambda: _none_unsent(pool, subject))
    raw = await js.get_msg("T_OUTBOX_LATE", seq=1)
    assert Note.model_validate_json(raw.data or b"") == Note(n=9)
    assert REGISTRY.get_sample_value(f"balans_{SERVICE}_outbox_pending") == 0


async def test_a_pass_sends_many_rows_in_order(nc: Client, pool: asyncpg.Pool) -> None:
    """A pass publishes its rows without waiting for each acknowledgement; JetStream still
    stores them in the order they were written, each once, and every row is marked."""
    subject = new_subject()
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue_many(conn, TABLE, [(subject, Note(n=n)) for n in range(120)])
    relay = OutboxRelay(pool, nc.jetstream(), TABLE, SERVICE, poll_interval_s=0.1, batch=50)
    async with relay_running(relay):
        await eventually("all marked sent", lambda: _none_unsent(pool, subject))
    assert [Note.model_validate_json(d).n for d in await stored(nc, subject)] == list(range(120))
