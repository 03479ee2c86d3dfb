"""A faulty temperature sensor's hours are estimated, the bills of the flat and its
neighbours corrected, and the explanation says so; a dismissed alert restores them.

A simulated 2a building (single-pipe risers, a sensor pair per radiator) whose return
sensor on a middle floor is displaced towards the room (it reads colder: the flat's ΔT
and heat grow, the common share shrinks and the neighbours pay less). allocation computes
it, balance analyses it and announces a faulty_sensor alert through its outbox on NATS;
allocation's alert consumer estimates the pair's return from the cascade (the supply of
the radiator below) and recomputes the building. The operator then dismisses the alert as
a false alarm and the measured figures come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import numpy as np
import pytest
from nats.aio.msg import Msg

from balans_allocation.__main__ import sensor_consumer_spec
from balans_allocation.allocator import OUTBOX as ALLOCATION_OUTBOX
from balans_allocation.allocator import on_readings_stored
from balans_allocation.explain import explain
from balans_allocation.flags import Flag
from balans_allocation.sensor_alerts import follower, on_sensor_alert
from balans_allocation.settings import AllocationSettings
from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_balance.alert_actions import apply_action
from balans_balance.alerts import OUTBOX as BALANCE_OUTBOX
from balans_balance.analysis import analyse_building
from balans_balance.groups import generate_building_groups
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.service import BillingRun, on_allocation
from balans_core.consumer import JetStreamConsumer, model_decoder, one_by_one
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_db.queries import world
from balans_db.secrets import KeyVault
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import AlertAction, AlertMessage, AllocationComputed
from balans_protocol.streams import ensure_streams
from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import hour_index
from balans_sim.engine import CitySim
from balans_sim.faults import FaultRecord, Where
from balans_sim.pgwriter import write_chunks
from balans_sim.world import write_city

START = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
WARM_HOURS = 24 * 8  # the detector's baseline week and the estimate's fit before the fault
FAULT_HOURS = 24 * 3
SEED = 23
PASSWORD = "correct-horse-battery"
CONFIG = CityConfig(
    seed=SEED,
    buildings=1,
    layout_mix={"2a": 1.0},
    floors=(5, 5),
    entrances=(1, 1),
    flats_per_floor=(2, 2),
    first_index=930,
)


@dataclass
class Building:
    id: int
    faulty_flat: int  # flat id
    faulty_module: int
    flat_ids: list[int]  # in the simulator's flat order (truth columns)
    area: np.ndarray
    truth_kwh: np.ndarray  # [H, F] true heat of the flats
    building_kwh: np.ndarray  # [H] true heat at the building meter


def _faulty_pair(city: list) -> tuple[int, str]:
    """A radiator's pair on a middle floor (a radiator above and below it on its riser)."""
    spec = city[0]
    floor = {f.number: f.floor for f in spec.flats}
    sim = CitySim(city, SEED, hour_index(START))
    pairs = [p for p in sim.buildings[0].plan.pairs if p.position == "flat"]
    pair = next(p for p in pairs if floor[p.flat or ""] == 3)
    return pair.module, pair.flat or ""


@pytest.fixture(scope="module")
async def building(database_url: str) -> Building:
    city = generate_city(CONFIG)
    module, flat = _faulty_pair(city)
    sim = CitySim(city, SEED, hour_index(START))
    conn = await asyncpg.connect(database_url)
    try:
        await write_city(conn, city, KeyVault(), SEED)
        warm = sim.advance(WARM_HOURS)
        await write_chunks(conn, warm)
        spec = city[0]
        pair = next(p for p in sim.buildings[0].plan.pairs if p.module == module)
        sim.buildings[0].faults = [
            FaultRecord(
                kind="displaced_sensor",
                building=spec.code,
                start=START + WARM_HOURS * HOUR,
                end=None,
                where=Where(module_serial=module, flat=flat, riser=pair.riser),
                params={"sensor": "return", "toward_room": 0.5},
                seed=SEED,
            )
        ]
        hot = sim.advance(FAULT_HOURS)
        await write_chunks(conn, hot)
        building_id = await conn.fetchval("select id from buildings where code = $1", spec.code)
        ids = {
            r["number"]: r["id"]
            for r in await conn.fetch(
                "select number, id from flats where building_id = $1", building_id
            )
        }
        flat_ids = [ids[f.number] for f in spec.flats]
        await on_readings_stored(conn, building_id, START, timedelta(hours=3), 48)
    finally:
        await conn.close()
    truth = [c.truth for c in (warm[0], hot[0])]
    return Building(
        id=building_id,
        faulty_flat=ids[flat],
        faulty_module=module,
        flat_ids=flat_ids,
        area=np.array([float(f.area_m2) for f in spec.flats]),
        truth_kwh=np.vstack([t.flat_kwh for t in truth]),
        building_kwh=np.concatenate([t.building_kwh for t in truth]),
    )


async def _totals(conn: asyncpg.Connection, b: Building, first: datetime) -> tuple:
    """Per flat (simulator order): total kWh from ``first`` on, hours flagged
    sensor_fault, and the first and last hour read."""
    rows = await conn.fetch(
        """select flat_id, sum(total_kwh) as kwh,
                  count(*) filter (where flags & $3 > 0) as faulty,
                  min(hour) as first, max(hour) as last
           from heat_allocation where building_id = $1 and hour >= $2 group by flat_id""",
        b.id,
        first,
        int(Flag.SENSOR_FAULT),
    )
    by_flat = {r["flat_id"]: r for r in rows}
    kwh = np.array([by_flat[f]["kwh"] for f in b.flat_ids])
    faulty = {f: by_flat[f]["faulty"] for f in b.flat_ids}
    return kwh, faulty, rows[0]["first"], rows[0]["last"]


async def _api_explanation(
    pool: asyncpg.Pool, database_url: str, flat_id: int, first: datetime, last: datetime
) -> dict:
    """GET flats/{id}/explain?from&to as an operator, through the api's app."""
    async with pool.acquire() as conn:
        await create_user(conn, "t-sensor-operator", PASSWORD, "operator")
    app = create_app(ApiSettings(database_url=database_url, login_rate="1000/minute"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": "t-sensor-operator", "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
            response = await http.get(
                f"/api/v1/flats/{flat_id}/explain",
                params={"from": first.isoformat(), "to": (last + HOUR).isoformat()},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
    assert response.status_code == 200, response.text
    return response.json()


async def _hourly(conn: asyncpg.Connection, flat_id: int, first: datetime) -> dict:
    """hour -> (total kWh, flagged sensor_fault) of one flat from ``first`` on."""
    rows = await conn.fetch(
        """select hour, total_kwh, flags & $3 > 0 as faulty from heat_allocation
           where flat_id = $1 and hour >= $2""",
        flat_id,
        first,
        int(Flag.SENSOR_FAULT),
    )
    return {r["hour"]: (r["total_kwh"], r["faulty"]) for r in rows}


def _ideal(b: Building, first: datetime, last: datetime) -> np.ndarray:
    """What each flat would pay with perfect sensors under the 'area' split: its true heat
    plus the building meter's rest shared by area, over [first, last]."""
    hours = slice(int((first - START) / HOUR), int((last - START) / HOUR) + 1)
    flats = b.truth_kwh[hours].sum(axis=0)
    rest = b.building_kwh[hours].sum() - flats.sum()
    return flats + rest * b.area / b.area.sum()


@pytest.fixture(scope="module")
async def follow(database_url: str, nats_url: str) -> AsyncIterator[dict]:
    """allocation's alert consumer running in this process, the two outboxes' relays, and
    the allocation announcements received."""
    settings = AllocationSettings(
        database_url=database_url,
        nats_url=nats_url,
        allocation_sensor_consumer="allocation-sensor-test",
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    nc = await connect_nats(nats_url, "test-sensor-estimate")
    js = nc.jetstream()
    await ensure_streams(js)
    allocation_relay = OutboxRelay(pool, js, ALLOCATION_OUTBOX, "allocation")
    received: list[AllocationComputed] = []

    async def on_allocation(msg: Msg) -> None:
        received.append(AllocationComputed.model_validate_json(msg.data))

    sub = await nc.subscribe(subjects.ALLOCATION_ALL, cb=on_allocation)
    consumer = JetStreamConsumer(
        js,
        sensor_consumer_spec(settings),
        model_decoder(AlertMessage),
        one_by_one(follower(pool, allocation_relay, settings)),
    )
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(consumer.run(stopping)),
        asyncio.create_task(allocation_relay.run(stopping)),
    ]
    try:
        yield {
            "pool": pool,
            "balance_relay": OutboxRelay(pool, js, BALANCE_OUTBOX, "balance"),
            "database_url": database_url,
            "js": js,
            "received": received,
        }
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        await sub.unsubscribe()
        await nc.drain()
        await pool.close()


async def _flagged(pool: asyncpg.Pool, b: Building) -> int:
    return await pool.fetchval(
        "select count(*) from heat_allocation where flat_id = $1 and flags & $2 > 0",
        b.faulty_flat,
        int(Flag.SENSOR_FAULT),
    )


async def test_the_faulty_sensors_hours_are_estimated_and_bills_corrected(
    building: Building, follow: dict
) -> None:
    b, pool = building, follow["pool"]
    fault_start = START + WARM_HOURS * HOUR
    async with pool.acquire() as conn:
        measured, _, first, last = await _totals(conn, b, fault_start)
        measured_hours = await _hourly(conn, b.faulty_flat, fault_start)
        # January was invoiced before the alert
        await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
        january = month_bounds(2026, 1, await world.site_timezone(conn, b.id) or "UTC")
        assert await bill_building(conn, b.id, *january)
        await generate_building_groups(conn, b.id)
        await analyse_building(conn, b.id, last, days=10)
        alert = await conn.fetchrow(
            """select id, module_serial, first_hour, opened_at, evidence->>'sensor' as sensor
               from alerts where building_id = $1 and kind = 'faulty_sensor'""",
            b.id,
        )
    assert alert is not None, "balance raised no faulty_sensor alert"
    assert (alert["module_serial"], alert["sensor"]) == (b.faulty_module, "return")
    await follow["balance_relay"].send_pending()

    async def estimated() -> bool:
        return await _flagged(pool, b) >= FAULT_HOURS - 24

    await eventually("the faulty pair's hours estimated", estimated, timeout_s=60)
    async with pool.acquire() as conn:
        corrected, faulty, _, _ = await _totals(conn, b, fault_start)
        trail = await explain(conn, b.faulty_flat, alert["first_hour"], last + HOUR)
    ideal = _ideal(b, first, last)
    i = b.flat_ids.index(b.faulty_flat)
    others = np.arange(len(b.flat_ids)) != i
    before, after = np.abs(measured - ideal), np.abs(corrected - ideal)
    print(
        f"faulty flat error {before[i] / ideal[i]:.1%} -> {after[i] / ideal[i]:.1%}; "
        f"neighbours {before[others].sum() / ideal[others].sum():.1%} -> "
        f"{after[others].sum() / ideal[others].sum():.1%}"
    )
    # the displaced sensor made the flat pay too much and its neighbours too little
    assert measured[i] > ideal[i]
    assert after[i] < 0.5 * before[i]
    assert after[others].sum() < before[others].sum()
    assert corrected.sum() == pytest.approx(measured.sum(), rel=1e-9)  # the building's heat
    # only the faulty pair's flat is estimated
    assert {f for f, n in faulty.items() if n} == {b.faulty_flat}

    # the recomputation went out as late data's does, and billing's handler of it corrects
    # the invoiced month: the faulty flat is credited, its neighbours pay what they owe
    def recomputed() -> list[AllocationComputed]:
        return [
            m
            for m in follow["received"]
            if m.building_id == b.id and m.recomputation and m.hour_from <= fault_start + 24 * HOUR
        ]

    await eventually("a recomputation announced over the fault's hours", recomputed)
    billing = BillingRun(pool, OutboxRelay(pool, follow["js"], "billing_outbox", "billing"))
    for event in recomputed():
        await on_allocation(event, billing)
    corrections = {
        r["flat_id"]: r["heat_mdl"]
        for r in await pool.fetch(
            """select a.flat_id, sum(l.amount)::float8 as heat_mdl
               from invoices i join accounts a on a.id = i.account_id
               join invoice_lines l on l.invoice_id = i.id
               where i.building_id = $1 and i.kind = 'correction' and l.utility = 'heat'
               group by a.flat_id""",
            b.id,
        )
    }
    print(f"corrections: faulty flat {corrections[b.faulty_flat]:.2f} MDL, neighbours "
          f"{sum(v for f, v in corrections.items() if f != b.faulty_flat):+.2f} MDL")  # fmt: skip
    assert corrections[b.faulty_flat] < 0
    assert sum(v > 0 for f, v in corrections.items() if f != b.faulty_flat) >= 5
    # the explanation says estimated, why and how
    assert trail is not None
    hours = [h for h in trail.hours if h.sensor_estimate is not None]
    assert len(hours) == await _flagged(pool, b)
    note = hours[0].sensor_estimate
    assert note is not None
    assert (note.alert_id, note.module_serial, note.sensor, note.method) == (
        alert["id"], b.faulty_module, "return", "cascade",
    )  # fmt: skip
    assert {"estimated", "sensor_fault"} <= set(hours[0].reasons)
    assert [e.alert_id for e in trail.sensor_estimates] == [alert["id"]]
    # ... and so does the api's explanation residents and operators read
    api = await _api_explanation(
        pool, follow["database_url"], b.faulty_flat, alert["first_hour"], last
    )
    estimated_hours = [h for h in api["hours"] if h["sensor_estimate"]]
    assert len(estimated_hours) == len(hours)
    assert all(h["estimated"] for h in estimated_hours)
    assert estimated_hours[0]["sensor_estimate"]["alert_id"] == alert["id"]
    assert [(e["sensor"], e["method"]) for e in api["sensor_estimates"]] == [("return", "cascade")]
    assert api["parts"]["estimated_hours"] == len(hours)

    # fixed a day in (an operator resolves it; the fault's last hour then): later hours are
    # measured again, the earlier ones stay estimated
    fixed = alert["first_hour"] + 24 * HOUR
    closing = AlertMessage(
        alert_id=alert["id"], kind="faulty_sensor", state="closed", building_id=b.id,
        opened_at=alert["opened_at"], summary="", evidence={"sensor": "return"},
        reason_params={"module": b.faulty_module}, first_hour=alert["first_hour"],
        last_hour=fixed, resolution="resolved",
    )  # fmt: skip
    async with pool.acquire() as conn:
        assert await on_sensor_alert(conn, closing, timedelta(hours=3), 48) == "ended"
        hours_now = await _hourly(conn, b.faulty_flat, fault_start)
    assert max(h for h, (_, faulty) in hours_now.items() if faulty) == fixed
    after_fix = {h: v for h, v in hours_now.items() if h > fixed}
    assert after_fix
    for h, (kwh, faulty) in after_fix.items():
        assert not faulty
        assert kwh == pytest.approx(measured_hours[h][0], rel=1e-9)

    # a false alarm: the operator dismisses it, and the measured figures come back
    async with pool.acquire() as conn:
        assert await apply_action(conn, AlertAction(alert_id=alert["id"], action="dismiss",
                                                    actor="operator"))  # fmt: skip
    await follow["balance_relay"].send_pending()

    async def restored() -> bool:
        return await _flagged(pool, b) == 0

    await eventually("the measured hours restored", restored, timeout_s=60)
    async with pool.acquire() as conn:
        again, _, _, _ = await _totals(conn, b, fault_start)
        trail = await explain(conn, b.faulty_flat, alert["first_hour"], last + HOUR)
    np.testing.assert_allclose(again, measured, rtol=1e-9)
    assert trail is not None
    assert trail.sensor_estimates == []
