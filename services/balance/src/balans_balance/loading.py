"""Read what the analysis of one building needs into aligned hourly numpy arrays.

The world, the readings and the consumption come through the queries their owners
publish (:mod:`balans_db.queries`), each window as one row per meter or module with its
hours as positions: a window is ~100 000 values, and one record per value would cost
more to decode than the query itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
import numpy.typing as npt

from balans_balance import successions
from balans_db.queries import allocation, ingest, world

FloatArray = npt.NDArray[np.float64]
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class GroupDef:
    id: int
    name: str
    utility: str
    kind: str
    balance_meter_id: int
    member_ids: tuple[int, ...]


@dataclass(frozen=True)
class Reporting:
    """Who reported when, and the batteries."""

    modules: list[int]  # serials; rows of the module arrays below
    module_concentrator: dict[int, int]
    module_installed: dict[int, date]  # serial -> installed_on
    module_present: npt.NDArray[np.bool_]  # [module, hour]: a status or reading arrived
    module_battery: FloatArray  # [module, hour] battery_mv
    meter_module: dict[int, int]
    meter_present: dict[int, npt.NDArray[np.bool_]]  # pulse readings of the meter's channel


@dataclass(frozen=True)
class SensorPair:
    """A sensor pair a flat's or riser's heat rests on, with its hourly readings."""

    module_serial: int
    position: str  # "flat" (a 1b flat, a 2a radiator) or "riser" (2b)
    flat: str | None
    floor: int | None
    riser: int | None  # the riser's number
    supply_c: FloatArray  # hourly means, NaN where no reading
    return_c: FloatArray


@dataclass
class BuildingData:
    building_id: int
    hours: list[datetime]  # hour starts, UTC, ascending
    night: npt.NDArray[np.bool_]
    groups: list[GroupDef]
    meter_index: dict[int, int]
    consumption: FloatArray  # [meter, hour], NaN where no row or only an estimate
    supply_c: FloatArray  # the building sensor pair, hourly means
    return_c: FloatArray
    units: dict[int, str]
    roles: dict[int, str]
    utilities: dict[int, str]
    flat_water: set[int]  # flat-level cold and hot water meters (consumer leak warning)
    site_id: int
    timezone: str
    reporting: Reporting
    tamper: dict[int, npt.NDArray[np.bool_]]  # meter -> tamper flag of its module per hour
    meter_serials: dict[int, str]
    pulse_weights: dict[int, float]  # a register's step, in the meter's unit
    # riser meter -> hourly mean ΔT (°C) of the sensor pairs on its riser (the riser's
    # own pair, or its radiators' in a single-pipe riser); absent where none
    riser_dt: dict[int, FloatArray]
    sensor_pairs: list[SensorPair] = field(default_factory=list)  # detectors/sensor_faults.py

    def series(self, meter_id: int) -> FloatArray:
        return self.consumption[self.meter_index[meter_id]]


def hour_range(until: datetime, days: int) -> list[datetime]:
    """The ``days`` x 24 hour starts ending with the hour that starts at ``until``."""
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [end - timedelta(hours=h) for h in range(days * 24 - 1, -1, -1)]


def night_mask(hours: list[datetime], timezone: str) -> npt.NDArray[np.bool_]:
    """Local hours 22:00-05:00: the night-flow floor is learned from these."""
    tz = ZoneInfo(timezone)
    return np.array([not 5 <= h.astimezone(tz).hour < 22 for h in hours])


async def load_building(
    conn: asyncpg.Connection, building_id: int, until: datetime, days: int
) -> BuildingData:
    hours = hour_range(until, days)
    site = await world.building_site(conn, building_id)
    timezone = site["timezone"] or "UTC"
    group_rows = await conn.fetch(
        """select g.id, g.name, g.utility, g.kind, g.balance_meter_id,
                  coalesce(array_agg(m.meter_id order by m.meter_id)
                           filter (where m.meter_id is not null), '{}') members
           from balance_groups g left join balance_group_members m on m.group_id = g.id
           where g.building_id = $1 and g.balance_meter_id is not null
           group by g.id order by g.id""",
        building_id,
    )
    successor = successions.successors(await world.building_channels(conn, building_id))
    groups = [
        GroupDef(
            r["id"], r["name"], r["utility"], r["kind"],
            successor.get(r["balance_meter_id"], r["balance_meter_id"]),
            successions.members(r["members"], successor),
        )
        for r in group_rows
    ]  # fmt: skip
    meter_rows = await world.building_meters(conn, building_id)
    meter_index = {r["id"]: i for i, r in enumerate(meter_rows)}
    consumption = np.full((len(meter_rows), len(hours)), np.nan)
    start = hours[0]
    for r in await allocation.measured_consumption_positions(
        conn, list(meter_index), start, hours[-1]
    ):
        consumption[meter_index[r["meter_id"]], r["positions"]] = r["values_"]
    successions.fold(consumption, meter_index, successor)
    supply_c, return_c = await _building_temperatures(conn, building_id, hours)
    module_of = {r["id"]: r["module_serial"] for r in meter_rows if r["module_serial"]}
    flagged: dict[int, npt.NDArray[np.bool_]] = {}
    # ts is the end of the hour the status covers
    for r in await ingest.tamper_positions(
        conn, list(set(module_of.values())), start + HOUR, hours[-1] + HOUR
    ):
        flagged[r["module_serial"]] = np.zeros(len(hours), bool)
        flagged[r["module_serial"]][r["positions"]] = True
    tamper = {
        m: flagged[module]
        for m, module in module_of.items()
        if module in flagged and m not in successor
    }
    reporting = await _load_reporting(conn, building_id, hours)
    dt_of_riser = await _riser_dt(conn, building_id, hours)
    riser_dt = {
        r["id"]: dt_of_riser[r["riser_id"]]
        for r in meter_rows
        if r["role"] == "riser" and r["riser_id"] in dt_of_riser
    }
    return BuildingData(
        reporting=reporting,
        building_id=building_id,
        hours=hours,
        night=night_mask(hours, timezone),
        site_id=site["id"],
        timezone=timezone,
        utilities={r["id"]: r["utility"] for r in meter_rows},
        flat_water={
            r["id"]
            for r in meter_rows
            if r["role"] == "flat" and r["utility"] in ("cold_water", "hot_water")
        },
        groups=groups,
        meter_index=meter_index,
        consumption=consumption,
        supply_c=supply_c,
        return_c=return_c,
        units={r["id"]: r["unit"] for r in meter_rows},
        roles={r["id"]: r["role"] for r in meter_rows},
        tamper=tamper,
        meter_serials={r["id"]: r["serial"] for r in meter_rows},
        pulse_weights={r["id"]: float(r["pulse_weight"]) for r in meter_rows},
        riser_dt=riser_dt,
        sensor_pairs=await _sensor_pairs(conn, building_id, hours),
    )


async def _sensor_pairs(
    conn: asyncpg.Connection, building_id: int, hours: list[datetime]
) -> list[SensorPair]:
    """The billed sensor pairs' hourly readings (rows stamped at the end of their hour)."""
    out = []
    for r in await ingest.billed_pair_temperature_positions(
        conn, building_id, hours[0] + HOUR, hours[-1] + HOUR
    ):
        supply = np.full(len(hours), np.nan)
        ret = np.full(len(hours), np.nan)
        supply[r["positions"]] = r["supply"]
        ret[r["positions"]] = r["return_"]
        out.append(
            SensorPair(
                r["module_serial"], r["position"], r["flat"], r["floor"], r["riser"], supply, ret
            )
        )
    return out


async def _load_reporting(
    conn: asyncpg.Connection, building_id: int, hours: list[datetime]
) -> Reporting:
    """Rows are stamped at the end of the hour they cover."""
    rows = await world.building_modules(conn, building_id)
    modules = [r["serial"] for r in rows]
    row_of = {serial: i for i, serial in enumerate(modules)}
    present = np.zeros((len(modules), len(hours)), dtype=bool)
    battery = np.full((len(modules), len(hours)), np.nan)
    lo, hi = hours[0] + HOUR, hours[-1] + HOUR
    for r in await ingest.status_positions(conn, modules, lo, hi):
        row = row_of[r["module_serial"]]
        present[row, r["positions"]] = True
        battery[row, r["positions"]] = np.array(r["battery"], dtype=np.float64)
    channels = await world.building_channels(conn, building_id)
    successor = successions.successors(channels)  # a replaced meter reports as its successor
    channels = [r for r in channels if r["meter_id"] not in successor]
    meter_of = {(r["module_serial"], r["input"]): r["meter_id"] for r in channels}
    meter_present = {r["meter_id"]: np.zeros(len(hours), dtype=bool) for r in channels}
    for r in await ingest.register_positions(conn, modules, lo, hi):
        meter = meter_of.get((r["module_serial"], r["input"]))
        if meter is not None:
            meter_present[meter][r["positions"]] = True
            present[row_of[r["module_serial"]], r["positions"]] = True
    return Reporting(
        modules=modules,
        module_concentrator={r["serial"]: r["concentrator"] for r in rows},
        module_installed={r["serial"]: r["installed_on"] for r in rows},
        module_present=present,
        module_battery=battery,
        meter_module={r["meter_id"]: r["module_serial"] for r in channels},
        meter_present=meter_present,
    )


async def _riser_dt(
    conn: asyncpg.Connection, building_id: int, hours: list[datetime]
) -> dict[int, FloatArray]:
    """Riser -> hourly mean ΔT (°C) over the sensor pairs on it (rows stamped at the end
    of the hour they cover)."""
    out: dict[int, FloatArray] = {}
    for r in await ingest.riser_delta_t_positions(
        conn, building_id, hours[0] + HOUR, hours[-1] + HOUR
    ):
        series = np.full(len(hours), np.nan)
        series[r["positions"]] = r["dts"]
        out[r["riser_id"]] = series
    return out


async def _building_temperatures(
    conn: asyncpg.Connection, building_id: int, hours: list[datetime]
) -> tuple[FloatArray, FloatArray]:
    """Hourly supply and return °C of the building's own sensor pair (NaN where absent).

    A temperature row stamped ``ts`` is the mean of the hour that ends at ``ts``."""
    supply = np.full(len(hours), np.nan)
    ret = np.full(len(hours), np.nan)
    row = await ingest.building_temperature_positions(
        conn, building_id, hours[0] + HOUR, hours[-1] + HOUR
    )
    if row is not None and row["positions"]:
        supply[row["positions"]] = row["supply"]
        ret[row["positions"]] = row["return_"]
    return supply, ret
