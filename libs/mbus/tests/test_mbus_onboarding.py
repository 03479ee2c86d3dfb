"""Water, electricity and gas M-Bus meters onboarded like any meter, end to end.

A building whose standard meters carry their M-Bus address (and, for the encrypted ones,
their AES key) is created through the provisioning API; the reference concentrator client
forwards telegrams built from the standard's tables (``telegrams.py``) to a real ingest
over TCP; the persister stores them as register readings; allocation (its service, in this
event loop) turns them into consumption, balance (its service) puts the meters into their
groups and balances them, and billing issues the flat's invoice from them. Then the
refusals: an unregistered address, a wrong key and another device at a registered
address write nothing and are counted, while a good telegram of the same batch is stored.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from api_harness import signed_in_api
from ingest_harness import running_ingest, running_persister
from prometheus_client import REGISTRY

from balans_allocation.__main__ import serve as serve_allocation
from balans_allocation.settings import AllocationSettings
from balans_balance.__main__ import serve as serve_balance
from balans_balance.settings import BalanceSettings
from balans_billing import storage as billing
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.tariffs import TariffSpec
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext
from balans_db.provisioning.mbus import virtual_module_serial
from balans_devstack.eventually import eventually
from balans_protocol.records import Medium, PulseRecord, RawTelegramRecord
from balans_protocol.streams import ensure_streams

from .telegrams import (
    COLD_WATER,
    ELECTRICITY,
    GAS,
    INT32,
    PHASE,
    VIFE_ACCUMULATE_NEGATIVE,
    VIFE_COMBINABLE_EXTENSION,
    WARM_WATER,
    Meter,
    dif_header,
    integer,
    record,
    short_frame,
    vif,
    vif_header,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]

PASSWORD = "mbus-onboarding-passphrase"
TZ = "Europe/Chisinau"
CODE = "mbus-1a"
CONCENTRATOR = 1_000_777
EL_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAS_KEY = bytes.fromhex("F0E0D0C0B0A090807060504030201000")


def _previous_month() -> tuple[datetime, datetime]:
    local = datetime.now(UTC).astimezone(ZoneInfo(TZ))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return month_bounds(year, month, TZ)


MONTH = _previous_month()
# one telegram per meter and hour, 10 minutes into the hour, near the month's end: readings
# labelled at the next tops of the hour, READINGS - 1 whole hours of consumption inside
# the month (balance judges a group from 72 hours of data on)
READINGS = 74
SENT = [
    MONTH[1] - timedelta(hours=READINGS + 1, minutes=50) + timedelta(hours=k)
    for k in range(READINGS)
]
READ_AT = [t + timedelta(minutes=50) for t in SENT]


def _series(start: int, even: int, odd: int) -> tuple[int, ...]:
    """A register read at every reading: ``even`` more after an even hour, ``odd`` after an odd."""
    out = [start]
    for k in range(READINGS - 1):
        out.append(out[-1] + (even if k % 2 == 0 else odd))
    return tuple(out)


@dataclass(frozen=True)
class Standard:
    """One standard meter of the building: its document entry and its registers."""

    serial: str
    utility: str
    kind: str
    role: str
    unit: str
    pulse_weight: str
    meter: Meter
    medium: str
    key: bytes | None
    registers: tuple[int, ...]  # the main register at SENT[k], in its VIF's unit
    vif: int

    def document(self) -> dict[str, Any]:
        mbus: dict[str, Any] = {
            "manufacturer": self.meter.manufacturer,
            "id": self.meter.device_id,
            "version": self.meter.version,
            "medium": self.medium,
        }
        if self.key is not None:
            mbus["key"] = self.key.hex()
        return {
            "serial": self.serial,
            "utility": self.utility,
            "kind": self.kind,
            "role": self.role,
            "flat": "1" if self.role == "flat" else None,
            "pulse_weight": self.pulse_weight,
            "unit": self.unit,
            "mbus": mbus,
        }

    def telegram(self, k: int, *, key: bytes | None = None, meter: Meter | None = None) -> bytes:
        records = record(dif_header(INT32), vif_header(self.vif), integer(self.registers[k], INT32))
        if self.utility == "electricity":
            records += _electricity_extras(self.registers[k])
        return short_frame(meter or self.meter, records, access=k % 256, key=key or self.key)


def _electricity_extras(import_10wh: int) -> bytes:
    """Export (A-) and the import of each phase (a third, a third, the rest), in 10 Wh."""
    third = import_10wh // 3
    out = record(
        dif_header(INT32),
        vif_header(vif("Wh", 1), VIFE_ACCUMULATE_NEGATIVE),
        integer(77_000, INT32),
    )
    for phase, value in (("L1", third), ("L2", third), ("L3", import_10wh - 2 * third)):
        out += record(
            dif_header(INT32),
            vif_header(vif("Wh", 1), VIFE_COMBINABLE_EXTENSION, PHASE[phase]),
            integer(value, INT32),
        )
    return out


LITRE, CENTI_M3, TEN_WH = vif("m3", -3), vif("m3", -2), vif("Wh", 1)
STANDARDS = (
    # building meters (the balance meters of their groups), then flat 1's
    Standard("mb-cw-b", "cold_water", "water_meter", "building", "m3", "0.001",
             Meter("KAM", "31000001", 0x1B, COLD_WATER), "cold_water", None,
             _series(500_000, 200, 300), LITRE),
    Standard("mb-hw-b", "hot_water", "water_meter", "building", "m3", "0.001",
             Meter("KAM", "31000002", 0x1B, WARM_WATER), "warm_water", None,
             _series(300_000, 100, 150), LITRE),
    Standard("mb-el-b", "electricity", "electricity_meter", "building", "kWh", "0.01",
             Meter("EMH", "32000001", 0x02, ELECTRICITY), "electricity", EL_KEY,
             _series(5_000_000, 200, 250), TEN_WH),
    Standard("mb-gas-b", "gas", "gas_meter", "building", "m3", "0.01",
             Meter("ELS", "33000001", 0x33, GAS), "gas", GAS_KEY,
             _series(200_000, 50, 60), CENTI_M3),
    Standard("mb-cw-1", "cold_water", "water_meter", "flat", "m3", "0.001",
             Meter("KAM", "31000011", 0x1B, COLD_WATER), "cold_water", None,
             _series(10_000, 150, 250), LITRE),
    Standard("mb-hw-1", "hot_water", "water_meter", "flat", "m3", "0.001",
             Meter("KAM", "31000012", 0x1B, WARM_WATER), "warm_water", None,
             _series(5_000, 80, 120), LITRE),
    Standard("mb-el-1", "electricity", "electricity_meter", "flat", "kWh", "0.01",
             Meter("EMH", "32000011", 0x02, ELECTRICITY), "electricity", EL_KEY,
             _series(123_450, 150, 200), TEN_WH),
    Standard("mb-gas-1", "gas", "gas_meter", "flat", "m3", "0.01",
             Meter("ELS", "33000011", 0x33, GAS), "gas", GAS_KEY,
             _series(10_000, 40, 50), CENTI_M3),
)  # fmt: skip
BY_SERIAL = {s.serial: s for s in STANDARDS}
SCALE = {LITRE: Decimal("0.001"), CENTI_M3: Decimal("0.01"), TEN_WH: Decimal("0.01")}


def _used(serial: str) -> Decimal:
    """What the meter's registers say was used between the first and the last reading."""
    s = BY_SERIAL[serial]
    return (s.registers[-1] - s.registers[0]) * SCALE[s.vif]


def _document() -> dict[str, Any]:
    """A 1a block of two flats: heat as pulse meters, the standard meters as M-Bus."""
    return {
        "format": "balans.world/1",
        "sites": [
            {"code": "mbus-site", "name": "M-Bus", "address": "str. Contor 3", "latitude": 47.0,
             "longitude": 28.8, "timezone": TZ}
        ],
        "buildings": [
            {
                "code": CODE, "site": "mbus-site", "name": "M-Bus block",
                "address": "str. Contor 3", "floors": 1, "layout": "1a",
                "entrances": [{"number": 1}],
                "risers": [{"number": 1, "entrance": 1}],
                "flats": [
                    {"number": n, "entrance": 1, "floor": 1, "rooms": 2, "area_m2": "50"}
                    for n in ("1", "2")
                ],
                "accounts": [
                    {"number": f"mbus-{n}", "flat": n, "holder_name": f"Flat {n}", "residents": 2}
                    for n in ("1", "2")
                ],
                "concentrators": [{"serial": CONCENTRATOR}],
                "modules": [
                    {"serial": 7_770_000 + n, "concentrator": CONCENTRATOR, "floor": 1,
                     "flat": None if n == 0 else str(n)}
                    for n in (0, 1, 2)
                ],
                "meters": [
                    {"serial": f"heat-{n}", "utility": "heat", "kind": "heat_meter",
                     "role": "building" if n == 0 else "flat",
                     "flat": None if n == 0 else str(n), "pulse_weight": "1", "unit": "kWh",
                     "channel": {"module": 7_770_000 + n, "input": 0}}
                    for n in (0, 1, 2)
                ] + [s.document() for s in STANDARDS],
            }
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
async def api(database_url: str, module_nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in_api(database_url, module_nats_url, "op", PASSWORD) as http:
        yield http


@pytest.fixture(scope="module")
async def services(database_url: str, module_nats_url: str) -> AsyncIterator[None]:
    """allocation and balance, each as its service runs, in this event loop."""
    nc = await connect_nats(module_nats_url, "setup")
    await ensure_streams(nc.jetstream())
    await nc.close()
    common = {"database_url": database_url, "nats_url": module_nats_url}
    contexts = [
        ServiceContext("allocation", AllocationSettings(**common, allocation_lateness_hours=1)),
        ServiceContext("balance", BalanceSettings(**common)),
    ]
    tasks = [
        asyncio.create_task(serve(ctx))
        for serve, ctx in zip((serve_allocation, serve_balance), contexts, strict=True)
    ]
    for ctx in contexts:
        await eventually(f"{ctx.name} ready", lambda ctx=ctx: ctx.ready)
    try:
        yield
    finally:
        for ctx in contexts:
            ctx.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


@pytest.fixture(scope="module")
async def onboarded(api: httpx.AsyncClient, services: None) -> bytes:
    """The building created through the API; the concentrator's key, shown once."""
    document = _document()
    site = await api.post("/api/v1/provisioning/sites", json=document["sites"][0])
    assert site.status_code in (200, 201), site.text
    answer = await api.post("/api/v1/provisioning/buildings", json=document["buildings"][0])
    assert answer.status_code in (200, 201), answer.text
    return bytes.fromhex(answer.json()["concentrator_keys"][str(CONCENTRATOR)])


def _raw(data: bytes, at: datetime) -> RawTelegramRecord:
    return RawTelegramRecord(
        module=0, medium=Medium.WIRELESS_MBUS, received_unix=int(at.timestamp()), rssi_dbm=-71,
        data=data,
    )  # fmt: skip


def _outcomes() -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "balans_mbus_telegrams"
        for s in metric.samples
        if s.name.endswith("_total")
    }


async def _pulses(conn: asyncpg.Connection, s: Standard, input_: int = 0) -> list[int]:
    serial = virtual_module_serial(s.meter.manufacturer, s.meter.device_id)
    rows = await conn.fetch(
        "select count from pulse_readings where module_serial = $1 and input = $2 order by ts",
        serial,
        input_,
    )
    return [r["count"] for r in rows]


async def test_registered_through_the_api_key_sealed_and_never_shown(
    api: httpx.AsyncClient, conn: asyncpg.Connection, onboarded: bytes
) -> None:
    building = (await api.get(f"/api/v1/provisioning/buildings/{CODE}")).json()
    mbus = {m["serial"]: m["mbus"] for m in building["meters"] if m["mbus"] is not None}
    assert set(mbus) == set(BY_SERIAL)
    assert mbus["mb-el-1"] == {
        "manufacturer": "EMH", "id": "32000011", "version": 2, "medium": "electricity",
        "key": None,
    }  # fmt: skip
    assert all(m["channel"] is None for m in building["meters"] if m["mbus"] is not None)
    assert len(building["modules"]) == 3  # the virtual modules are not parts of the document
    stored = await conn.fetch(
        """select mt.serial, mm.key_ciphertext, mm.version, mm.medium from mbus_meters mm
           join meters mt on mt.id = mm.meter_id"""
    )
    sealed = {r["serial"]: r["key_ciphertext"] for r in stored}
    assert sealed["mb-cw-1"] is None
    assert sealed["mb-el-1"] is not None
    assert EL_KEY not in sealed["mb-el-1"]
    assert {r["medium"] for r in stored if r["serial"] == "mb-hw-1"} == {WARM_WATER}

    # the document read back and sent again changes nothing (the key stays as it was)
    again = await api.put(f"/api/v1/provisioning/buildings/{CODE}", json=building)
    assert again.status_code == 200, again.text
    assert again.json()["changes"] == {}
    assert (
        await conn.fetchval(
            "select key_ciphertext from mbus_meters mm join meters mt on mt.id = mm.meter_id "
            "where mt.serial = 'mb-el-1'"
        )
        == sealed["mb-el-1"]
    )

    # refused whole, with the path and the reason
    wrong = copy.deepcopy(building)
    meter = next(m for m in wrong["meters"] if m["serial"] == "mb-gas-1")
    meter["mbus"]["medium"] = "water"
    meter["channel"] = {"module": 7_770_001, "input": 3}
    refused = await api.put(f"/api/v1/provisioning/buildings/{CODE}", json=wrong)
    assert refused.status_code == 422, refused.text
    problems = {d["path"]: d["message"] for d in refused.json()["error"]["details"]}
    index = wrong["meters"].index(meter)
    assert "does not measure gas" in problems[f"buildings[0].meters[{index}].mbus.medium"]
    assert "leave channel out" in problems[f"buildings[0].meters[{index}].channel"]


HEAT = {
    "utility": "heat", "unit": "Gcal", "effective_from": "2025-07-01",
    "fixed_per_month": "20", "blocks": [{"from_qty": 0, "price": "1122"}],
}  # fmt: skip
TARIFFS = [
    HEAT,
    {"utility": "cold_water", "unit": "m3", "effective_from": "2025-07-01",
     "blocks": [{"from_qty": 0, "price": "12.50"}]},
    {"utility": "hot_water", "unit": "m3", "effective_from": "2025-07-01",
     "blocks": [{"from_qty": 0, "price": "60"}]},
    {"utility": "gas", "unit": "m3", "effective_from": "2025-07-01",
     "blocks": [{"from_qty": 0, "price": "8"}]},
    # progressive: the first kWh per month cheaper, the rest dearer
    {"utility": "electricity", "unit": "kWh", "effective_from": "2025-07-01",
     "block_basis": "account",
     "blocks": [{"from_qty": 0, "to_qty": 100, "price": "2.00"},
                {"from_qty": 100, "price": "3.00"}]},
]  # fmt: skip


async def test_forwarded_telegrams_are_readings_in_groups_and_on_the_invoice(
    api: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str,
    module_nats_url: str, onboarded: bytes,
) -> None:  # fmt: skip
    telegrams = [_raw(s.telegram(k), SENT[k]) for k in range(READINGS) for s in STANDARDS]
    # the building's heat (D100FC pulse inputs): allocation works an hour once heat is in
    heat = [
        PulseRecord(7_770_000 + n, 0, int(READ_AT[k].timestamp()), 1000 * (n + 1) + 20 * k)
        for k in range(READINGS)
        for n in (0, 1, 2)
    ]
    async with (
        running_ingest(module_nats_url, database_url) as ingest,
        running_persister(module_nats_url, database_url),
        ingest.client(CONCENTRATOR, onboarded) as client,
    ):
        await client.upload([*heat, *telegrams])
        async with asyncio.timeout(20):
            await client.flush()
        for s in STANDARDS:
            await eventually(
                f"{s.serial}'s registers stored",
                lambda s=s: _pulses(conn, s),
                timeout_s=30,
            )
    # each register as a count of the meter's pulse weight, one per reading hour
    for s in STANDARDS:
        assert await _pulses(conn, s) == list(s.registers), s.serial
    flat_el = BY_SERIAL["mb-el-1"]
    assert await _pulses(conn, flat_el, 1) == [77_000] * READINGS  # export A-, 770 kWh
    phases = [await _pulses(conn, flat_el, n) for n in (2, 3, 4)]
    assert [sum(at) for at in zip(*phases, strict=True)] == list(flat_el.registers)

    building_id = await conn.fetchval("select id from buildings where code = $1", CODE)
    ids = {
        r["serial"]: r["id"]
        for r in await conn.fetch(
            "select id, serial from meters where building_id = $1", building_id
        )
    }

    async def groups() -> dict[str, Any]:
        page = await api.get("/api/v1/balance-groups", params={"building_id": building_id})
        return {g["utility"]: g for g in page.json()["items"] if g["kind"] == "building"}

    await eventually("the utilities' building groups", lambda: _has_all(groups()))
    found = await groups()
    for utility, short in (("cold_water", "cw"), ("hot_water", "hw"), ("electricity", "el"),
                           ("gas", "gas")):  # fmt: skip
        group = found[utility]
        assert group["balance_meter_id"] == ids[f"mb-{short}-b"]
        assert ids[f"mb-{short}-1"] in group["member_meter_ids"]
        series = f"/api/v1/balance-groups/{group['id']}/imbalance"
        params = {"resolution": "hour", "from": MONTH[0].isoformat(), "to": MONTH[1].isoformat()}

        async def points(series: str = series, params: dict[str, str] = params) -> list[Any]:
            body = (await api.get(series, params=params)).json()  # columnar (docs/api.md)
            return [
                {"balance_value": b, "members_value": m}
                for b, m in zip(body["balance_value"], body["members_value"], strict=True)
                if b is not None and m is not None
            ]

        await eventually(f"{utility}'s balance", lambda points=points: _all_hours(points()))
        hours = await points()
        assert sum(Decimal(str(p["balance_value"])) for p in hours) == pytest.approx(
            _used(f"mb-{short}-b")
        )
        assert sum(Decimal(str(p["members_value"])) for p in hours) == pytest.approx(
            _used(f"mb-{short}-1")
        )

    for tariff in TARIFFS:
        await billing.add_tariff(conn, TariffSpec.model_validate(tariff))
    await eventually(
        "consumption of the month's last hours",
        lambda: _consumed(conn, [ids[s.serial] for s in STANDARDS]),
    )
    issued = await bill_building(conn, building_id, *MONTH)
    flat1 = await conn.fetchval("select id from accounts where number = 'mbus-1'")
    invoice = next(i for i in issued if i.account_id == flat1)
    stored = await billing.load_invoice(conn, invoice.invoice_id)
    quantity: dict[str, Decimal] = {}
    for line in stored.lines:
        if line.code.startswith("block"):
            quantity[line.utility] = quantity.get(line.utility, Decimal(0)) + line.quantity
    assert quantity["cold_water"] == _used("mb-cw-1") == Decimal("14.550")
    assert quantity["hot_water"] == _used("mb-hw-1") == Decimal("7.280")
    assert quantity["gas"] == _used("mb-gas-1") == Decimal("32.80")
    assert quantity["electricity"] == _used("mb-el-1") == Decimal("127.50")
    electricity = {ln.code: ln.amount for ln in stored.lines if ln.utility == "electricity"}
    assert electricity["block_1"] == Decimal("200.00")  # 100 kWh at 2.00
    assert electricity["block_2"] == Decimal("82.50")  # 27.5 kWh at 3.00
    # flat 2 has no standard meters: billed heat only
    flat2 = await conn.fetchval("select id from accounts where number = 'mbus-2'")
    other = await billing.load_invoice(
        conn, next(i for i in issued if i.account_id == flat2).invoice_id
    )
    assert {ln.utility for ln in other.lines} == {"heat"}


async def _has_all(groups: Any) -> bool:
    return {"cold_water", "hot_water", "electricity", "gas"} <= set(await groups)


async def _all_hours(points: Any) -> bool:
    return len(await points) == READINGS - 1


async def _consumed(conn: asyncpg.Connection, meter_ids: list[int]) -> bool:
    done = await conn.fetchval(
        """select count(distinct meter_id) from meter_consumption
           where meter_id = any($1::int[]) and hour = $2""",
        meter_ids,
        READ_AT[-2],
    )
    return bool(done == len(meter_ids))


async def test_refused_telegrams_write_nothing_and_are_counted(
    conn: asyncpg.Connection, database_url: str, module_nats_url: str, onboarded: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """One batch: a good telegram, one of an unregistered meter, one under a wrong key and
    one from another device (version) at a registered address. Only the good one is stored."""
    at = SENT[-1] + timedelta(hours=1)
    water, flat_el, building_water = (
        BY_SERIAL["mb-cw-1"],
        BY_SERIAL["mb-el-1"],
        BY_SERIAL["mb-cw-b"],
    )
    stranger = Meter("KAM", "39999999", 0x1B, COLD_WATER)
    impostor = Meter("KAM", building_water.meter.device_id, 0x1C, COLD_WATER)
    batch = [
        _raw(water.telegram(0), at),
        _raw(water.telegram(1, meter=stranger), at),
        _raw(flat_el.telegram(1, key=GAS_KEY), at),
        _raw(building_water.telegram(1, meter=impostor), at),
    ]
    before = _outcomes()
    async with (
        running_ingest(module_nats_url, database_url) as ingest,
        running_persister(module_nats_url, database_url),
        ingest.client(CONCENTRATOR, onboarded, boot=2) as client,
    ):
        await client.upload(batch)
        async with asyncio.timeout(20):
            await client.flush()
        await eventually(
            "the good telegram stored", lambda: _stored_at(conn, water, at), timeout_s=30
        )
    after = _outcomes()
    counted = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert counted["stored"] == 1
    assert counted["unknown_meter"] == 1
    assert counted["decryption_failed"] == 1
    assert counted["identity_mismatch"] == 1
    # nothing of the refused ones: not the import, not its export or phases
    for s in (flat_el, building_water):
        assert not await _stored_at(conn, s, at, any_input=True), s.serial
    assert await conn.fetchval("select count(*) from mbus_meters where device_id = '39999999'") == 0
    out = capsys.readouterr().out
    assert "no 0x2F2F after decryption: wrong key" in out
    assert "version 0x1C in the telegram, 0x1B registered" in out
    assert "KAM 39999999" in out  # the unregistered meter, named once per batch


async def _stored_at(
    conn: asyncpg.Connection, s: Standard, at: datetime, *, any_input: bool = False
) -> bool:
    serial = virtual_module_serial(s.meter.manufacturer, s.meter.device_id)
    hour = at + timedelta(minutes=50)
    return bool(
        await conn.fetchval(
            """select count(*) from pulse_readings
               where module_serial = $1 and ts = $2 and ($3 or input = 0)""",
            serial,
            hour,
            any_input,
        )
    )
