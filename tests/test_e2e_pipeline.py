"""The whole chain as ``balans run`` runs it: every service a real process on one stack.

A two-building simulated city is backfilled across the end of the previous local month
(sim -> PostgreSQL + ReadingsStored), allocated, balanced, billed, served by the api, and
the hours the sim holds back go through ingest over TCP. The test polls for each outcome
with a generous deadline; it never asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from nats.js.errors import NotFoundError

from balans_billing.closer import close_due_periods
from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.settings import DatabaseSettings
from balans_devstack.processes import free_port
from balans_devstack.stack import StackUrls
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_sim.city import CityConfig, generate_city

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SIM_SEED = 3  # two small blocks (layouts 1b and 2b, 54 flats)
BUILDINGS = 2
HOLDBACK_HOURS = 2  # hours the sim leaves to its real-time path (uploads through ingest)
DEADLINE_S = 300.0  # generous: the chain takes well under 90 s on a quiet machine
TIMEZONE = "Europe/Chisinau"  # the generated sites' timezone (balans_db.topology.SiteSpec)
STREAMS = (subjects.UPLOADS_STREAM, subjects.EVENTS_STREAM, subjects.ALERTS_STREAM)


@dataclass(frozen=True)
class Running:
    """The started system: where the api listens and the month billing must close."""

    supervisor: Supervisor
    services: list[ServiceProcess]
    api_url: str
    closed_month: tuple[datetime, datetime]
    backfill: dict[int, ReadingsStored]  # the sim's announcement per building id


def _previous_month(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar month before ``now``'s."""
    local = now.astimezone(ZoneInfo(TIMEZONE))
    end = datetime(local.year, local.month, 1, tzinfo=ZoneInfo(TIMEZONE))
    before = end - timedelta(days=1)
    return datetime(before.year, before.month, 1, tzinfo=ZoneInfo(TIMEZONE)), end


def _backfill_days(now: datetime, month_end: datetime) -> int:
    """Days of backfill that start a day before the previous month ends (fewest that close it)."""
    return math.ceil((now - month_end) / timedelta(days=1)) + 1


async def _purge_streams(nats_url: str) -> None:
    """Drop messages other test modules left on the session's streams (building ids repeat
    across their databases), so the services see only this system's events."""
    nc = await connect_nats(nats_url, "e2e-test")
    try:
        js = nc.jetstream()
        for stream in STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.purge_stream(stream)
    finally:
        await nc.drain()


async def _backfill_announcements(nats_url: str) -> dict[int, ReadingsStored]:
    """The first ReadingsStored per building on EVENTS: the sim's backfill announcement
    (published before it reports ready; the persister's come later in stream order)."""
    nc = await connect_nats(nats_url, "e2e-test")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subjects.readings_stored("*"), stream=subjects.EVENTS_STREAM)
        first: dict[int, ReadingsStored] = {}
        while len(first) < BUILDINGS:
            for msg in await sub.fetch(BUILDINGS, timeout=10):
                event = ReadingsStored.model_validate_json(msg.data)
                first.setdefault(event.building_id, event)
                await msg.ack()
        await sub.unsubscribe()
        return first
    finally:
        await nc.drain()


async def _poll(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Retry ``check`` until it holds; fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not reached within the deadline: {what}")
        await asyncio.sleep(1)


@pytest.fixture(scope="module")
def running(
    database_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    """Every discovered service started as `balans run` does, on a seeded small city."""
    now = datetime.now(UTC)
    closed_month = _previous_month(now)
    days = _backfill_days(now, closed_month[1])
    epoch = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days + 1)
    city = generate_city(CityConfig(seed=SIM_SEED, buildings=BUILDINGS))
    vault = KeyVault.from_hex(DatabaseSettings().master_key)
    assert asyncio.run(seed(database_url, vault, city)) == BUILDINGS
    asyncio.run(_purge_streams(nats_url))
    log_dir = tmp_path_factory.mktemp("e2e")
    api_port = free_port()
    ingest_port = str(free_port())
    env = {
        "BALANS_API_PORT": str(api_port),
        "BALANS_INGEST_PORT": ingest_port,
        "BALANS_SIM_INGEST_PORT": ingest_port,
        "BALANS_SIM_PRESET": "generated",
        "BALANS_SIM_BUILDINGS": str(BUILDINGS),
        "BALANS_SIM_SEED": str(SIM_SEED),
        "BALANS_SIM_EPOCH": epoch.isoformat(),
        "BALANS_SIM_BACKFILL_DAYS": str(days),
        "BALANS_SIM_BACKFILL_HOLDBACK_HOURS": str(HOLDBACK_HOURS),
        "BALANS_SIM_FAULTS_PER_WEEK": "0",
        "BALANS_SIM_OUTAGES_PER_WEEK": "0",
        "BALANS_SIM_METER_EXCHANGES_PER_YEAR": "0",  # tests/test_meter_exchange.py covers them
        "BALANS_SIM_TENANT_CHANGES_PER_YEAR": "0",
        "BALANS_SIM_GROUND_TRUTH": str(log_dir / "ground_truth.jsonl"),
        "BALANS_SIM_BOOT_FILE": str(log_dir / "sim-boot-counter"),
        "BALANS_PERIOD_CHECK_INTERVAL_S": "1",
        # the last month is closed even in the first hours of a new one
        "BALANS_PERIOD_CLOSE_LATENESS_HOURS": "0",
    }
    urls = StackUrls(database_url=database_url, nats_url=nats_url)
    supervisor = Supervisor(urls, Path(log_dir), env)
    try:
        for name, module in discover_services().items():
            supervisor.start(name, module)
        services = list(supervisor.services)
        late = supervisor.wait_ready(DEADLINE_S)
        assert not late, f"not ready: {late}; logs in {log_dir}"
        backfill = asyncio.run(_backfill_announcements(nats_url))
        yield Running(supervisor, services, f"http://127.0.0.1:{api_port}", closed_month, backfill)
    finally:
        supervisor.stop()


async def _fetch(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_allocation_covers_the_backfill_and_sums_to_the_building_meter(
    running: Running, database_url: str
) -> None:
    """Every building is allocated for every backfilled hour; its flats add up to its meter."""
    for building_id, event in running.backfill.items():
        # the first backfilled hour has no register before it (the sim stores none from
        # before the backfill), so allocation's hours are [hour_from + 1 h, hour_to)
        first = event.hour_from + timedelta(hours=1)
        hours = int((event.hour_to - first) / timedelta(hours=1))

        async def allocated(
            b: int = building_id, e: ReadingsStored = event, n: int = hours
        ) -> bool:
            rows = await _fetch(
                database_url,
                """select count(distinct hour) from heat_allocation
                   where building_id = $1 and hour >= $2 and hour < $3""",
                b,
                e.hour_from + timedelta(hours=1),
                e.hour_to,
            )
            return rows[0][0] == n

        await _poll(f"heat_allocation of building {building_id}", allocated)
        sums = await _fetch(
            database_url,
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


async def test_balance_writes_imbalance_series_for_every_group(
    running: Running, database_url: str
) -> None:
    """balance writes an imbalance series for every group with a balance meter and members.

    Entrance groups (no balance meter) and riser groups (no member meters) are compared by
    detectors, not balanced, so they have no series by design (docs/balance.md)."""

    async def every_group() -> bool:
        missing = await _fetch(
            database_url,
            """select g.id from balance_groups g
               where g.building_id = any($1::int[]) and g.balance_meter_id is not null
                 and exists (select 1 from balance_group_members m where m.group_id = g.id)
                 and not exists (select 1 from imbalance_series s where s.group_id = g.id)""",
            list(running.backfill),
        )
        return not missing

    async def groups_of_every_building() -> bool:
        rows = await _fetch(
            database_url,
            """select count(distinct building_id) from balance_groups
               where building_id = any($1::int[]) and balance_meter_id is not null""",
            list(running.backfill),
        )
        return rows[0][0] == BUILDINGS

    # balance generates the groups once it has the buildings' first events: wait for it
    await _poll("balance groups of every building", groups_of_every_building)
    await _poll("imbalance_series of every group", every_group)


async def test_billing_issues_one_invoice_per_account_once(
    running: Running, database_url: str
) -> None:
    """The closed month gets exactly one invoice per account; closing again changes nothing."""
    start, end = running.closed_month
    accounts = await _fetch(
        database_url,
        """select a.id from accounts a join flats f on f.id = a.flat_id
           where f.building_id = any($1::int[]) order by a.id""",
        list(running.backfill),
    )
    invoiced_sql = """select account_id, count(*) as n from invoices
                      where kind = 'invoice' and period_start = $1 and period_end = $2
                      group by account_id order by account_id"""

    async def every_account() -> bool:
        return len(await _fetch(database_url, invoiced_sql, start, end)) >= len(accounts)

    await _poll("an invoice for every account", every_account)
    before = await _fetch(database_url, invoiced_sql, start, end)
    assert [r["account_id"] for r in before] == [r["id"] for r in accounts]
    assert {r["n"] for r in before} == {1}
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        assert await close_due_periods(pool, timedelta(0)) == []
    finally:
        await pool.close()
    assert await _fetch(database_url, invoiced_sql, start, end) == before


async def _login(client: httpx.AsyncClient, username: str, password: str) -> None:
    reply = await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )
    assert reply.status_code == 200, reply.text
    client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"


async def test_api_serves_the_consumer_and_the_operator(
    running: Running, database_url: str
) -> None:
    """The demo consumer sees a month profile and its invoice; the operator the overview."""
    start = running.closed_month[0]
    month = start.strftime("%Y-%m")
    async with httpx.AsyncClient(base_url=running.api_url, timeout=30) as consumer:
        await _login(consumer, "consumer", "consumer-demo")
        me = (await consumer.get("/api/v1/auth/me")).json()
        assert me["flat_ids"]
        profile = await consumer.get(f"/api/v1/flats/{me['flat_ids'][0]}/profile?month={month}")
        assert profile.status_code == 200, profile.text
        assert profile.json()["heat"]["points"]
        assert profile.json()["month_to_date_kwh"] > 0

        async def invoiced() -> bool:
            page = (await consumer.get("/api/v1/invoices")).json()
            return any(
                datetime.fromisoformat(i["period_start"]) == start
                and i["account_id"] == me["account_id"]
                for i in page["items"]
            )

        await _poll("the consumer's invoice in the api", invoiced)
    async with httpx.AsyncClient(base_url=running.api_url, timeout=30) as operator:
        await _login(operator, "operator", "operator-demo")
        for building_id in running.backfill:
            overview = await operator.get(f"/api/v1/buildings/{building_id}/overview")
            assert overview.status_code == 200, overview.text
            assert overview.json()["building_heat_last_30d"]


async def test_an_hour_uploaded_through_ingest_lands_in_pulse_readings(
    running: Running, database_url: str
) -> None:
    """The hours the sim held back arrive over TCP -> ingest -> persister -> PostgreSQL."""
    backfill_end = min(e.hour_to for e in running.backfill.values())

    async def uploaded() -> bool:
        rows = await _fetch(database_url, "select max(ts) from pulse_readings")
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


def test_stopping_leaves_every_service_exited_cleanly(running: Running) -> None:
    """Stopping the supervisor ends every child with exit code 0 and leaves no process."""
    assert not running.supervisor.exited(), "a service died while the system ran"
    pids = {s.proc.pid for s in running.services}
    spawned = _descendants(pids)
    running.supervisor.stop()
    assert {s.name: s.proc.returncode for s in running.services} == {
        s.name: 0 for s in running.services
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
