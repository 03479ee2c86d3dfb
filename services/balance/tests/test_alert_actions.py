"""Operators' alert actions answered by balance over real NATS; a resolve is announced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import pytest
from nats.aio.msg import Msg

from balans_balance.alerts import OUTBOX
from balans_balance.service import serve_alert_actions
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import AlertAction, AlertActionReply, AlertMessage
from balans_protocol.streams import ensure_streams

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as p:
        yield p


async def _alert(pool: asyncpg.Pool, cause: str) -> int:
    return int(
        await pool.fetchval(
            """insert into alerts (kind, cause_key, state, first_hour, last_hour, opened_at,
                                   updated_at, summary)
               values ('leak', $1, 'open', $2, $2, now(), now(), 'leak: test') returning id""",
            cause,
            HOUR,
        )
    )


async def test_acknowledge_and_resolve_through_balance(nats_url: str, pool: asyncpg.Pool) -> None:
    """Acknowledge keeps the alert open; resolve closes it and announces the closing once;
    an unknown alert and a malformed request are refused replies, not errors."""
    acked, resolved = await _alert(pool, "test:ack"), await _alert(pool, "test:resolve")
    nc = await connect_nats(nats_url, "test-alert-actions")
    stopping = asyncio.Event()
    announced: list[AlertMessage] = []
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        relay = OutboxRelay(pool, js, OUTBOX, "balance", poll_interval_s=0.2)
        relay_task = asyncio.create_task(relay.run(stopping))
        sub = await serve_alert_actions(nc, pool, relay)

        async def on_alert(msg: Msg) -> None:
            announced.append(AlertMessage.model_validate_json(msg.data))

        watch = await nc.subscribe(subjects.ALERTS_ALL, cb=on_alert)

        async def ask(payload: bytes) -> AlertActionReply:
            msg = await nc.request(subjects.BALANCE_ALERTS_API, payload, timeout=10)
            return AlertActionReply.model_validate_json(msg.data)

        def action(alert_id: int, what: Literal["acknowledge", "resolve"]) -> bytes:
            request = AlertAction(alert_id=alert_id, action=what, actor="user:op")
            return request.model_dump_json().encode()

        assert (await ask(action(acked, "acknowledge"))).ok
        assert (await ask(action(resolved, "resolve"))).ok
        missing = await ask(action(999_999, "resolve"))
        assert (missing.ok, missing.found) == (False, False)
        malformed = await ask(b'{"alert_id": "x"}')
        assert not malformed.ok
        assert malformed.error.startswith("invalid request")
        await eventually(
            "the resolve announced",
            lambda: any(m.alert_id == resolved and m.state == "closed" for m in announced),
        )
        assert (await ask(action(resolved, "resolve"))).ok  # again: nothing more to announce
        await asyncio.sleep(1.0)  # give a wrong second announcement the time to show
        await watch.unsubscribe()
        await sub.unsubscribe()
    finally:
        stopping.set()
        await nc.drain()
    await relay_task
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "select id, state, acknowledged_by, resolved_by from alerts where id = any($1)",
            [acked, resolved],
        )
    }
    assert (rows[acked]["state"], rows[acked]["acknowledged_by"]) == ("open", "user:op")
    assert (rows[resolved]["state"], rows[resolved]["resolved_by"]) == ("closed", "user:op")
    assert [m.state for m in announced if m.alert_id == resolved] == ["closed"]
    assert not [m for m in announced if m.alert_id == acked]
