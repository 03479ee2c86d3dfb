"""The whole chain as ``balans run`` runs it: every service a real process on one stack.

A two-building simulated city is backfilled across the end of the previous local month
(sim -> PostgreSQL + ReadingsStored), allocated, balanced, billed, served by the api, and
the hours the sim holds back go through ingest over TCP. The test polls for each outcome
with a generous deadline; it never asserts how long anything took. The system is the
session's ``pipeline`` (tests/conftest.py), which tests/test_ops_stack.py reads from too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from balans_billing.closer import close_due_periods
from balans_protocol.messages import ReadingsStored

from .conftest import BUILDINGS, DEADLINE_S, Running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


async def _poll(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Retry ``check`` until it holds; fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not reached within the deadline: {what}")
        await asyncio.sleep(0.2)  # each check is a query on its own connection: not faster


async def _fetch(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_allocation_covers_the_backfill_and_sums_to_the_building_meter(
    pipeline: Running,
) -> None:
    """Every building is allocated for every backfilled hour; its flats add up to its meter."""
    for building_id, event in pipeline.backfill.items():
        # the first backfilled hour has no register before it (the sim stores none from
        # before the backfill), so allocation's hours are [hour_from + 1 h, hour_to)
        first = event.hour_from + timedelta(hours=1)
        hours = int((event.hour_to - first) / timedelta(hours=1))

        async def allocated(
            b: int = building_id, e: ReadingsStored = event, n: int = hours
        ) -> bool:
            rows = await _fetch(
                pipeline.database_url,
                """select count(distinct hour) from heat_allocation
                   where building_id = $1 and hour >= $2 and hour < $3""",
                b,
                e.hour_from + timedelta(hours=1),
                e.hour_to,
            )
            return rows[0][0] == n

        await _poll(f"heat_allocation of building {building_id}", allocated)
        sums = await _fetch(
            pipeline.database_url,
            """select
                 (select sum(total_kwh) from heat_allocation
                  where building_id = $1 and hour >= $2 and hour < $3) as flats,
                 (select sum(c.value) from meter_consumption c join meters m on m.id = c.meter_id
                  where m.building_id = $1 and m.role = 'building' and m.utility = 'heat'
                    and c.unit = 'kWh' and c.hour >= $2 and c.hour < $3) as building""",
            building_id,
            first,
            event.hour_to,
        )
        flats, building = sums[0]["flats"], sums[0]["building"]
        assert building is not None
        assert building > 0
        assert flats == pytest.approx(building, rel=1e-6, abs=1e-3)


async def test_balance_writes_imbalance_series_for_every_group(pipeline: Running) -> None:
    """balance writes an imbalance series for every group with a balance meter and members.

    Entrance groups (no balance meter) and riser groups (no member meters) are compared by
    detectors, not balanced, so they have no series by design (docs/balance.md)."""

    async def every_group() -> bool:
        missing = await _fetch(
            pipeline.database_url,
            """select g.id from balance_groups g
               where g.building_id = any($1::int[]) and g.balance_meter_id is not null
                 and exists (select 1 from balance_group_members m where m.group_id = g.id)
                 and not exists (select 1 from imbalance_series s where s.group_id = g.id)""",
            list(pipeline.backfill),
        )
        return not missing

    async def groups_of_every_building() -> bool:
        rows = await _fetch(
            pipeline.database_url,
            """select count(distinct building_id) from balance_groups
               where building_id = any($1::int[]) and balance_meter_id is not null""",
            list(pipeline.backfill),
        )
        return rows[0][0] == BUILDINGS

    # balance generates the groups once it has the buildings' first events: wait for it
    await _poll("balance groups of every building", groups_of_every_building)
    await _poll("imbalance_series of every group", every_group)


async def test_billing_issues_one_invoice_per_account_once(pipeline: Running) -> None:
    """The closed month gets exactly one invoice per account; closing again changes nothing."""
    start, end = pipeline.closed_month
    accounts = await _fetch(
        pipeline.database_url,
        """select a.id from accounts a join flats f on f.id = a.flat_id
           where f.building_id = any($1::int[]) order by a.id""",
        list(pipeline.backfill),
    )
    invoiced_sql = """select account_id, count(*) as n from invoices
                      where kind = 'invoice' and period_start = $1 and period_end = $2
                      group by account_id order by account_id"""

    async def every_account() -> bool:
        return len(await _fetch(pipeline.database_url, invoiced_sql, start, end)) >= len(accounts)

    await _poll("an invoice for every account", every_account)
    before = await _fetch(pipeline.database_url, invoiced_sql, start, end)
    assert [r["account_id"] for r in before] == [r["id"] for r in accounts]
    assert {r["n"] for r in before} == {1}
    pool = await asyncpg.create_pool(pipeline.database_url, min_size=1, max_size=1)
    try:
        assert await close_due_periods(pool, timedelta(0)) == []
    finally:
        await pool.close()
    assert await _fetch(pipeline.database_url, invoiced_sql, start, end) == before


async def _login(client: httpx.AsyncClient, username: str, password: str) -> None:
    reply = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert reply.status_code == 200, reply.text
    client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"


async def test_api_serves_the_consumer_and_the_operator(pipeline: Running) -> None:
    """The demo consumer sees a month profile and its invoice; the operator the overview."""
    start = pipeline.closed_month[0]
    month = start.strftime("%Y-%m")
    async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as consumer:
        await _login(consumer, "consumer", "consumer-demo")
        me = (await consumer.get("/api/v1/auth/me")).json()
        assert me["flat_ids"]
        profile = await consumer.get(f"/api/v1/flats/{me['flat_ids'][0]}/profile?month={month}")
        assert profile.status_code == 200, profile.text
        assert any(v is not None for v in profile.json()["heat"]["values"])
        assert profile.json()["month_to_date_kwh"] > 0

        async def invoiced() -> bool:
            page = (await consumer.get("/api/v1/invoices")).json()
            return any(
                datetime.fromisoformat(i["period_start"]) == start
                and i["account_id"] == me["account_id"]
                for i in page["items"]
            )

        await _poll("the consumer's invoice in the api", invoiced)
    async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as operator:
        await _login(operator, "operator", "operator-demo")
        for building_id in pipeline.backfill:
            overview = await operator.get(f"/api/v1/buildings/{building_id}/overview")
            assert overview.status_code == 200, overview.text
            assert overview.json()["building_heat_last_30d"]


async def test_an_hour_uploaded_through_ingest_lands_in_pulse_readings(pipeline: Running) -> None:
    """The hours the sim held back arrive over TCP -> ingest -> persister -> PostgreSQL."""
    backfill_end = min(e.hour_to for e in pipeline.backfill.values())

    async def uploaded() -> bool:
        rows = await _fetch(pipeline.database_url, "select max(ts) from pulse_readings")
        return rows[0][0] is not None and rows[0][0] > backfill_end

    await _poll("a pulse reading after the backfill", uploaded)


def _descendants(pids: set[int]) -> set[int]:
    """Every live process below ``pids`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@pytest.mark.stops_pipeline
def test_stopping_leaves_every_service_exited_cleanly(pipeline: Running) -> None:
    """Stopping the supervisor (SIGTERM to each service, 30 s to drain and finish its work)
    ends every child with exit code 0 and leaves no process."""
    assert not pipeline.supervisor.exited(), "a service died while the system ran"
    pids = {s.proc.pid for s in pipeline.services}
    spawned = _descendants(pids)
    pipeline.supervisor.stop()
    assert {s.name: s.proc.returncode for s in pipeline.services} == {
        s.name: 0 for s in pipeline.services
    }
    # a service's own helpers (the api's workers, multiprocessing's resource tracker) end
    # when it does: give them the moment it takes
    deadline = time.monotonic() + 10
    while True:
        left = {pid for pid in pids | spawned if _alive(pid)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left: {[_command(pid) for pid in left]}"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has finished)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return f"pid {pid}"
