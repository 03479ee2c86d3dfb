"""Read what the analysis of one building needs into aligned hourly numpy arrays.

The world, the readings and the consumption come through the queries their owners
publish (:mod:`balans_db.queries`), each window as one row per meter or module with its
hours as positions: a window is ~100 000 values, and one record per value would cost
more to decode than the query itself."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
import numpy.typing as npt

from balans_balance import successions
from balans_db.queries import allocation, ingest, world

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
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
    # riser meter -> the module serials of the sensor pairs on its riser (the riser's own
    # pair, or its radiators' in a single-pipe riser): the pairs its ``riser_dt`` rests on
    riser_pairs: dict[int, tuple[int, ...]] = field(default_factory=dict)

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


@dataclass(frozen=True)
class BuildingWorld:
    """What the analysis reads of a building besides its hourly data: its site, groups,
    meters, channels, modules and sensor pairs. Two reads compare equal exactly when none of them
    changed (a topology change, an operator's group edit), which is when a window kept
    between events (:mod:`balans_balance.windows`) must be read again in full."""

    building_id: int
    site_id: int
    timezone: str
    groups: tuple[GroupDef, ...]
    meters: tuple[tuple[Any, ...], ...]  # world.building_meters rows, by id
    channels: tuple[tuple[Any, ...], ...]  # world.building_channels rows
    modules: tuple[tuple[Any, ...], ...]  # world.building_modules rows, by serial
    sensor_pairs: tuple[tuple[Any, ...], ...]  # world.sensor_pairs_of rows
    successor: dict[int, int]  # a replaced meter -> the meter last on its channel

    def meter(self, i: int) -> dict[str, Any]:
        return dict(zip(_METER_FIELDS, self.meters[i], strict=True))

    @property
    def meter_ids(self) -> list[int]:
        return [row[0] for row in self.meters]

    @property
    def module_serials(self) -> list[int]:
        return [row[0] for row in self.modules]

    @property
    def module_of(self) -> dict[int, int]:
        """meter -> the module of its channel."""
        return {m["id"]: m["module_serial"] for m in map(self.meter, range(len(self.meters)))
                if m["module_serial"]}  # fmt: skip

    @property
    def live_channels(self) -> list[dict[str, Any]]:
        """The channels of meters still in service (a replaced meter reports as its
        successor)."""
        rows = [dict(zip(_CHANNEL_FIELDS, r, strict=True)) for r in self.channels]
        return [r for r in rows if r["meter_id"] not in self.successor]


_METER_FIELDS = ("id", "serial", "unit", "utility", "role", "flat_id", "riser_id",
                 "pulse_weight", "module_serial")  # fmt: skip
_CHANNEL_FIELDS = ("meter_id", "module_serial", "input", "valid_from", "valid_to")
_MODULE_FIELDS = ("serial", "installed_on", "concentrator")


class UnknownBuildingError(LookupError):
    """The building of an event does not exist (any more)."""


async def load_world(conn: asyncpg.Connection, building_id: int) -> BuildingWorld:
    """The building's non-hourly part, in a few small queries."""
    site = await world.building_site(conn, building_id)
    if site is None:
        raise UnknownBuildingError(f"building {building_id} does not exist")
    group_rows = await conn.fetch(
        """select g.id, g.name, g.utility, g.kind, g.balance_meter_id,
                  coalesce(array_agg(m.meter_id order by m.meter_id)
                           filter (where m.meter_id is not null), '{}') members
           from balance_groups g left join balance_group_members m on m.group_id = g.id
           where g.building_id = $1 and g.balance_meter_id is not null
           group by g.id order by g.id""",
        building_id,
    )
    channels = await world.building_channels(conn, building_id)
    successor = successions.successors(channels)
    groups = tuple(
        GroupDef(
            r["id"], r["name"], r["utility"], r["kind"],
            successor.get(r["balance_meter_id"], r["balance_meter_id"]),
            successions.members(r["members"], successor),
        )
        for r in group_rows
    )  # fmt: skip
    meters = await world.building_meters(conn, building_id)
    modules = await world.building_modules(conn, building_id)
    return BuildingWorld(
        building_id=building_id,
        site_id=site["id"],
        timezone=site["timezone"] or "UTC",
        groups=groups,
        meters=tuple(tuple(r[f] for f in _METER_FIELDS) for r in meters),
        channels=tuple(sorted((tuple(r[f] for f in _CHANNEL_FIELDS) for r in channels), key=str)),
        modules=tuple(tuple(r[f] for f in _MODULE_FIELDS) for r in modules),
        sensor_pairs=tuple(tuple(r) for r in await world.sensor_pairs_of(conn, [building_id])),
        successor=successor,
    )


@dataclass
class HourlyData:
    """The hour-by-hour part of a building's window, every array over ``hours`` (its last
    axis). Each hour's values depend on that hour's rows alone, so a window is the same
    whether read at once or as pieces joined (:meth:`joined`, :meth:`between`)."""

    hours: list[datetime]
    consumption: FloatArray  # [meter row of the world, hour], successions folded
    supply_c: FloatArray  # the building's sensor pair
    return_c: FloatArray
    tamper: dict[int, BoolArray]  # module serial -> tamper flag raised
    module_present: BoolArray  # [module row of the world, hour]
    module_battery: FloatArray  # [module row, hour]
    meter_present: dict[int, BoolArray]  # live meter -> a register of its channel arrived
    riser_dt: dict[int, FloatArray]  # riser id -> mean ΔT of the pairs on it
    sensor_pairs: list[SensorPair]

    def between(self, first: int, end: int) -> HourlyData:
        """The hours at positions ``first`` to ``end`` (excluded)."""
        return self._map(lambda a: a[..., first:end], self.hours[first:end])

    def joined(self, later: HourlyData) -> HourlyData:
        """These hours followed by ``later``'s (read for the same world)."""
        if [_pair_key(p) for p in self.sensor_pairs] != [_pair_key(p) for p in later.sensor_pairs]:
            raise ValueError("the sensor pairs differ: read the window again")

        def cat(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.concatenate([a, b], axis=-1)

        def merge(
            a: dict[int, npt.NDArray[Any]], b: dict[int, npt.NDArray[Any]], empty: Any
        ) -> dict[int, npt.NDArray[Any]]:
            blank_a = np.full(len(self.hours), empty)
            blank_b = np.full(len(later.hours), empty)
            return {k: cat(a.get(k, blank_a), b.get(k, blank_b)) for k in a.keys() | b.keys()}

        return HourlyData(
            hours=self.hours + later.hours,
            consumption=cat(self.consumption, later.consumption),
            supply_c=cat(self.supply_c, later.supply_c),
            return_c=cat(self.return_c, later.return_c),
            tamper=merge(self.tamper, later.tamper, False),
            module_present=cat(self.module_present, later.module_present),
            module_battery=cat(self.module_battery, later.module_battery),
            meter_present=merge(self.meter_present, later.meter_present, False),
            riser_dt=merge(self.riser_dt, later.riser_dt, np.nan),
            sensor_pairs=[
                replace(
                    p, supply_c=cat(p.supply_c, q.supply_c), return_c=cat(p.return_c, q.return_c)
                )
                for p, q in zip(self.sensor_pairs, later.sensor_pairs, strict=True)
            ],
        )

    def _map(self, f: Any, hours: list[datetime]) -> HourlyData:
        def each(d: dict[int, npt.NDArray[Any]]) -> dict[int, npt.NDArray[Any]]:
            return {k: f(v) for k, v in d.items()}

        return HourlyData(
            hours=hours,
            consumption=f(self.consumption),
            supply_c=f(self.supply_c),
            return_c=f(self.return_c),
            tamper=each(self.tamper),
            module_present=f(self.module_present),
            module_battery=f(self.module_battery),
            meter_present=each(self.meter_present),
            riser_dt=each(self.riser_dt),
            sensor_pairs=[
                replace(p, supply_c=f(p.supply_c), return_c=f(p.return_c))
                for p in self.sensor_pairs
            ],
        )


def _pair_key(p: SensorPair) -> tuple[Any, ...]:
    return (p.module_serial, p.position, p.flat, p.floor, p.riser)


async def load_hours(
    conn: asyncpg.Connection, w: BuildingWorld, hours: list[datetime]
) -> HourlyData:
    """Read ``hours`` (consecutive) of the building's data."""
    meter_ids = w.meter_ids
    index = {m: i for i, m in enumerate(meter_ids)}
    consumption = np.full((len(meter_ids), len(hours)), np.nan)
    start = hours[0]
    for r in await allocation.measured_consumption_positions(conn, meter_ids, start, hours[-1]):
        consumption[index[r["meter_id"]], r["positions"]] = r["values_"]
    successions.fold(consumption, dict(index), w.successor)
    supply_c, return_c = await _building_temperatures(conn, w.building_id, hours)
    flagged: dict[int, BoolArray] = {}
    # ts is the end of the hour the status covers
    for r in await ingest.tamper_positions(
        conn, list(set(w.module_of.values())), start + HOUR, hours[-1] + HOUR
    ):
        flagged[r["module_serial"]] = np.zeros(len(hours), bool)
        flagged[r["module_serial"]][r["positions"]] = True
    present, battery, meter_present = await _load_presence(conn, w, hours)
    pairs, riser_dt = await _sensor_pairs(conn, w, hours)
    return HourlyData(
        hours=hours,
        consumption=consumption,
        supply_c=supply_c,
        return_c=return_c,
        tamper=flagged,
        module_present=present,
        module_battery=battery,
        meter_present=meter_present,
        riser_dt=riser_dt,
        sensor_pairs=pairs,
    )


def assemble(w: BuildingWorld, h: HourlyData) -> BuildingData:
    """The window the detectors read, from a world and its hours (arrays copied: the
    detectors may not change what a kept window holds)."""
    meters = [w.meter(i) for i in range(len(w.meters))]
    meter_index = {m["id"]: i for i, m in enumerate(meters)}
    for old, new in w.successor.items():  # folded into their successors' rows
        if old in meter_index and new in meter_index:
            del meter_index[old]
    tamper = {
        m: h.tamper[module].copy()
        for m, module in w.module_of.items()
        if module in h.tamper and m not in w.successor and h.tamper[module].any()
    }
    riser_dt = {
        m["id"]: h.riser_dt[m["riser_id"]].copy()
        for m in meters
        if m["role"] == "riser"
        and m["riser_id"] in h.riser_dt
        and not np.isnan(h.riser_dt[m["riser_id"]]).all()
    }
    channels = w.live_channels
    modules = [dict(zip(_MODULE_FIELDS, r, strict=True)) for r in w.modules]
    reporting = Reporting(
        modules=w.module_serials,
        module_concentrator={r["serial"]: r["concentrator"] for r in modules},
        module_installed={r["serial"]: r["installed_on"] for r in modules},
        module_present=h.module_present.copy(),
        module_battery=h.module_battery.copy(),
        meter_module={r["meter_id"]: r["module_serial"] for r in channels},
        meter_present={r["meter_id"]: h.meter_present[r["meter_id"]].copy() for r in channels},
    )
    return BuildingData(
        reporting=reporting,
        building_id=w.building_id,
        hours=list(h.hours),
        night=night_mask(h.hours, w.timezone),
        site_id=w.site_id,
        timezone=w.timezone,
        utilities={m["id"]: m["utility"] for m in meters},
        flat_water={
            m["id"]
            for m in meters
            if m["role"] == "flat" and m["utility"] in ("cold_water", "hot_water")
        },
        groups=list(w.groups),
        meter_index=meter_index,
        consumption=h.consumption.copy(),
        supply_c=h.supply_c.copy(),
        return_c=h.return_c.copy(),
        units={m["id"]: m["unit"] for m in meters},
        roles={m["id"]: m["role"] for m in meters},
        tamper=tamper,
        meter_serials={m["id"]: m["serial"] for m in meters},
        pulse_weights={m["id"]: float(m["pulse_weight"]) for m in meters},
        riser_dt=riser_dt,
        sensor_pairs=[
            replace(p, supply_c=p.supply_c.copy(), return_c=p.return_c.copy())
            for p in h.sensor_pairs
        ],
        riser_pairs=_riser_pairs(w, meters),
    )


def _riser_of_pairs(w: BuildingWorld) -> dict[int, int]:
    """Module serial of a sensor pair -> the riser it is on (pairs on none left out)."""
    # world.sensor_pairs_of rows: building_id, module_serial, position, flat, riser_id, ...
    return {r[1]: r[4] for r in w.sensor_pairs if r[4] is not None}


def _riser_pairs(w: BuildingWorld, meters: list[dict[str, Any]]) -> dict[int, tuple[int, ...]]:
    """Riser meter -> the module serials of the sensor pairs on its riser (none: left out)."""
    on_riser: dict[int, list[int]] = {}
    for module, riser in _riser_of_pairs(w).items():
        on_riser.setdefault(riser, []).append(module)
    return {
        m["id"]: tuple(sorted(on_riser[m["riser_id"]]))
        for m in meters
        if m["role"] == "riser" and m["riser_id"] in on_riser
    }


async def load_building(
    conn: asyncpg.Connection, building_id: int, until: datetime, days: int
) -> BuildingData:
    """The ``days`` before the hour ``until`` (included), read in full."""
    w = await load_world(conn, building_id)
    return assemble(w, await load_hours(conn, w, hour_range(until, days)))


async def _sensor_pairs(
    conn: asyncpg.Connection, w: BuildingWorld, hours: list[datetime]
) -> tuple[list[SensorPair], dict[int, FloatArray]]:
    """The billed sensor pairs' hourly readings (rows stamped at the end of their hour),
    and per riser the hourly mean ΔT (°C) over the pairs on it (:func:`_riser_dt`)."""
    out = []
    riser_of = _riser_of_pairs(w)
    on_risers = []
    for r in await ingest.billed_pair_temperature_positions(
        conn, w.building_id, hours[0] + HOUR, hours[-1] + HOUR
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
        if r["module_serial"] in riser_of and r["positions"]:
            on_risers.append((riser_of[r["module_serial"]], r))
    return out, _riser_dt(on_risers, len(hours))


def _riser_dt(rows: list[tuple[int, Any]], hours: int) -> dict[int, FloatArray]:
    """Riser id -> hourly mean ΔT (°C) over the rows of the pairs on it (a riser's own
    pair, its radiators' in a single-pipe riser), NaN where none; risers without a row
    are left out. From the pairs' readings already read, bit for bit what the database's
    ``avg(supply_centi_c - return_centi_c)::float8 / 100`` gives: the readings are whole
    hundredths of a degree (``x / 100`` as read, so ``round(x * 100)`` is exact), their
    sums exact integers, and a mean that is not whole is rounded as PostgreSQL rounds it
    (:func:`_numeric_mean`)."""
    sums: dict[int, npt.NDArray[np.int64]] = {}
    counts: dict[int, npt.NDArray[np.int64]] = {}
    for riser, r in rows:
        dt = np.rint(np.array(r["supply"]) * 100) - np.rint(np.array(r["return_"]) * 100)
        if riser not in sums:
            sums[riser] = np.zeros(hours, np.int64)
            counts[riser] = np.zeros(hours, np.int64)
        np.add.at(sums[riser], r["positions"], dt.astype(np.int64))
        np.add.at(counts[riser], r["positions"], 1)
    out = {}
    for riser, total in sums.items():
        count = counts[riser]
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        for i in np.flatnonzero((count > 1) & (total % np.maximum(count, 1) != 0)):
            mean[i] = _numeric_mean(int(total[i]), int(count[i]))
        out[riser] = mean / 100
    return out


def _numeric_mean(total: int, count: int) -> float:
    """``avg`` of integers summing to ``total`` as PostgreSQL gives it in float8: the
    quotient in ``numeric``, rounded half away from zero to the scale its division picks
    (16 significant digits, reckoned in its base-10000 digits: ``select_div_scale``),
    then the nearest double."""

    def weight_and_first(x: int) -> tuple[int, int]:
        weight = 0
        while x >= 10_000:
            x //= 10_000
            weight += 1
        return weight, x

    (w1, d1), (w2, d2) = weight_and_first(abs(total)), weight_and_first(count)
    scale = max(16 - 4 * (w1 - w2 - (d1 <= d2)), 0)
    scaled = (2 * abs(total) * 10**scale + count) // (2 * count)
    return (scaled if total >= 0 else -scaled) / 10**scale


async def _load_presence(
    conn: asyncpg.Connection, w: BuildingWorld, hours: list[datetime]
) -> tuple[BoolArray, FloatArray, dict[int, BoolArray]]:
    """Per module, whether it reported (a status or a register) and its battery; per live
    meter, whether its channel's register arrived. Rows are stamped at the end of the hour
    they cover."""
    modules = w.module_serials
    row_of = {serial: i for i, serial in enumerate(modules)}
    present = np.zeros((len(modules), len(hours)), dtype=bool)
    battery = np.full((len(modules), len(hours)), np.nan)
    lo, hi = hours[0] + HOUR, hours[-1] + HOUR
    statuses = await ingest.status_positions(conn, modules, lo, hi)
    # every module's rows at once: a module's status rows are one row of the answer
    at = _cells([row_of[r["module_serial"]] for r in statuses], statuses)
    present[at] = True
    battery[at] = np.array(list(chain.from_iterable(r["battery"] for r in statuses)), np.float64)
    channels = w.live_channels
    meter_of = {(r["module_serial"], r["input"]): r["meter_id"] for r in channels}
    meters = [r["meter_id"] for r in channels]
    reported = np.zeros((len(meters), len(hours)), dtype=bool)
    registers = [
        r
        for r in await ingest.register_positions(conn, modules, lo, hi)
        if (r["module_serial"], r["input"]) in meter_of
    ]
    meter_row = {m: i for i, m in enumerate(meters)}
    reported[
        _cells([meter_row[meter_of[r["module_serial"], r["input"]]] for r in registers], registers)
    ] = True
    present[_cells([row_of[r["module_serial"]] for r in registers], registers)] = True
    return present, battery, dict(zip(meters, reported, strict=True))


def _cells(rows: list[int], answer: list[Any]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The (row, hour) cells of an answer's ``positions``, row by row."""
    counts = [len(r["positions"]) for r in answer]
    return (
        np.repeat(np.array(rows, dtype=np.intp), counts),
        np.array(list(chain.from_iterable(r["positions"] for r in answer)), dtype=np.intp),
    )


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
