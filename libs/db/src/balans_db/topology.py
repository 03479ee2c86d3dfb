"""Describe a building (entrances, floors, risers, flats, equipment) and write it to the schema.

The demo seed and the simulator's city generator both describe buildings with
:class:`BuildingSpec` and store them with :func:`write_building`, so there is one model
of the world. Equipment follows the piping layout (docs/domain.md, "Piping layouts"):

- ``1a`` a heat meter (1 kWh/pulse) per flat, on 4-input D100FC modules shared by flats;
- ``1b`` a D100FC per flat with a volume meter and a sensor pair;
- ``1c`` a volume meter per flat, on shared 4-input modules;
- ``2a`` a flow meter per riser, and a D100FC with a sensor pair on every radiator;
- ``2b`` a D100FC with a flow meter and a sensor pair per riser.

Every building also has a building heat meter with its own module and sensor pair, a
building cold-water meter, and (``multi_utility``) cold/hot water, gas and electricity
meters in a share of flats.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from balans_db.secrets import KeyVault

SHARED_MODULE_INPUTS = 4
MAX_MODULES_PER_SUBNET = 240


@dataclass(frozen=True)
class SiteSpec:
    code: str
    name: str
    address: str
    latitude: float
    longitude: float
    timezone: str = "Europe/Chisinau"


@dataclass(frozen=True)
class FlatSpec:
    number: str
    entrance: int
    floor: int
    rooms: int
    area_m2: Decimal
    risers: tuple[int, ...]
    residents: int = 2
    multi_utility: bool = False


@dataclass(frozen=True)
class BuildingSpec:
    code: str
    name: str
    address: str
    site: SiteSpec
    layout: str
    floors: int
    entrances: int
    risers: dict[int, int]  # riser number -> entrance number
    flats: tuple[FlatSpec, ...]
    index: int = 1  # position in the city: makes device serials unique
    methodology: dict[str, object] = field(default_factory=dict)

    @property
    def concentrator_serial(self) -> int:
        return 1_000_000 + self.index

    def module_serial(self, n: int) -> int:
        """Serial of the building's n-th radio module (unique city-wide)."""
        return self.index * 100_000 + n


def _area_for_rooms(rooms: int, variant: int) -> Decimal:
    base = {1: Decimal("34.5"), 2: Decimal("48.2"), 3: Decimal("64.8"), 4: Decimal("79.6")}
    return base[rooms] + Decimal(variant % 3) * Decimal("1.5")


def regular_building(
    *,
    code: str,
    name: str,
    address: str,
    site: SiteSpec,
    layout: str,
    floors: int,
    flats_per_floor: tuple[int, ...],
    risers_per_entrance: tuple[int, ...],
    index: int = 1,
    multi_utility_every: int = 4,
) -> BuildingSpec:
    """A block with ``len(flats_per_floor)`` entrances; risers shared out among each
    floor's flats so every riser passes one flat per floor."""
    if len(flats_per_floor) != len(risers_per_entrance):
        raise ValueError("flats_per_floor and risers_per_entrance need one entry per entrance")
    riser_entrance: dict[int, int] = {}
    entrance_risers: dict[int, list[int]] = {}
    number = 0
    for entrance, count in enumerate(risers_per_entrance, start=1):
        for _ in range(count):
            number += 1
            riser_entrance[number] = entrance
            entrance_risers.setdefault(entrance, []).append(number)
    flats: list[FlatSpec] = []
    flat_no = 0
    for entrance, per_floor in enumerate(flats_per_floor, start=1):
        its_risers = entrance_risers[entrance]
        for floor in range(1, floors + 1):
            for position in range(per_floor):
                flat_no += 1
                mine = tuple(
                    its_risers[i] for i in range(len(its_risers)) if i % per_floor == position
                )
                rooms = 1 + (position + entrance) % 4
                flats.append(
                    FlatSpec(
                        number=str(flat_no),
                        entrance=entrance,
                        floor=floor,
                        rooms=rooms,
                        area_m2=_area_for_rooms(rooms, flat_no),
                        risers=mine,
                        residents=1 + (flat_no % 4),
                        multi_utility=flat_no % multi_utility_every == 0,
                    )
                )
    return BuildingSpec(
        code=code,
        name=name,
        address=address,
        site=site,
        layout=layout,
        floors=floors,
        entrances=len(flats_per_floor),
        risers=riser_entrance,
        flats=tuple(flats),
        index=index,
    )


def reference_building(layout: str = "2a", index: int = 1) -> BuildingSpec:
    """docs/domain.md's reference building: 100 flats, 3 entrances, 10 floors, 34 risers."""
    site = SiteSpec(
        code="chisinau-botanica",
        name="Chișinău, Botanica",
        address="bd. Dacia 27, Chișinău",
        latitude=46.9876,
        longitude=28.8573,
    )
    return regular_building(
        code=f"ref-{layout}",
        name="Reference block (100 flats)",
        address="bd. Dacia 27, Chișinău",
        site=site,
        layout=layout,
        floors=10,
        flats_per_floor=(4, 3, 3),
        risers_per_entrance=(14, 10, 10),
        index=index,
    )


def demo_city() -> list[BuildingSpec]:
    """The reference building and a few smaller ones, one per remaining layout."""
    center = SiteSpec(
        code="chisinau-centru",
        name="Chișinău, Centru",
        address="str. Pușkin 12, Chișinău",
        latitude=47.0245,
        longitude=28.8322,
    )
    small = [
        regular_building(
            code=f"demo-{layout}",
            name=f"Block {layout.upper()} (layout {layout})",
            address=f"str. Pușkin {12 + i}, Chișinău",
            site=center,
            layout=layout,
            floors=5,
            flats_per_floor=(4, 4),
            risers_per_entrance=(6, 6),
            index=2 + i,
        )
        for i, layout in enumerate(("1a", "1b", "1c", "2b"))
    ]
    return [reference_building(), *small]


HARDWARE_LIMITS = {
    "modules per subnet": MAX_MODULES_PER_SUBNET,
    "meters per subnet": 540,
    "subnets per concentrator": 8,
    "meters per concentrator": 720,
}


class HardwareLimitError(ValueError):
    """A building needs more equipment than one concentrator can serve (docs/domain.md)."""


@dataclass(frozen=True)
class ModulePlan:
    """A D100FC radio module; ``flat``/``riser`` are flat and riser numbers, not ids."""

    serial: int
    subnet: int
    floor: int
    flat: str | None = None
    riser: int | None = None


@dataclass(frozen=True)
class MeterPlan:
    """A pulse meter on ``input`` of ``module``."""

    serial: str
    module: int
    input: int
    utility: str
    kind: str
    role: str
    pulse_weight: Decimal
    unit: str
    pipe: str | None
    flat: str | None = None
    riser: int | None = None
    has_valve: bool = False


@dataclass(frozen=True)
class PairPlan:
    """A DTI2 sensor pair on ``module``; on a 2a radiator both ``flat`` and ``riser`` are set."""

    module: int
    position: str
    flat: str | None = None
    riser: int | None = None


@dataclass(frozen=True)
class EquipmentPlan:
    """Every module, meter and sensor pair of one building, before it has database ids."""

    modules: tuple[ModulePlan, ...]
    meters: tuple[MeterPlan, ...]
    pairs: tuple[PairPlan, ...]


class _Planner:
    """Hands out module serials and collects the equipment of one building."""

    def __init__(self, spec: BuildingSpec) -> None:
        self.spec = spec
        self.modules: list[tuple[int, int, str | None, int | None]] = []
        self.meters: list[MeterPlan] = []
        self.pairs: list[PairPlan] = []

    def module(self, floor: int, flat: str | None = None, riser: int | None = None) -> int:
        serial = self.spec.module_serial(len(self.modules) + 1)
        self.modules.append((serial, floor, flat, riser))
        return serial

    def meter(self, module_serial: int, input_no: int, **fields: Any) -> None:
        serial = f"{fields['utility']}-{module_serial}-{input_no}"
        self.meters.append(MeterPlan(serial=serial, module=module_serial, input=input_no, **fields))

    def pair(self, module_serial: int, position: str, **where: Any) -> None:
        self.pairs.append(PairPlan(module_serial, position, **where))

    def plan(self) -> EquipmentPlan:
        """The equipment, each module in the subnet :func:`share_subnets` gives it."""
        meters_on: dict[int, int] = {}
        for m in self.meters:
            meters_on[m.module] = meters_on.get(m.module, 0) + 1
        subnets = share_subnets([meters_on.get(serial, 0) for serial, *_ in self.modules])
        modules = tuple(
            ModulePlan(serial, subnet, floor, flat, riser)
            for (serial, floor, flat, riser), subnet in zip(self.modules, subnets, strict=True)
        )
        plan = EquipmentPlan(modules, tuple(self.meters), tuple(self.pairs))
        check_limits(self.spec.code, plan)
        return plan


def share_subnets(meters_per_module: list[int]) -> list[int]:
    """The subnet of each module (in installation order), interleaved over as few subnets
    as the per-subnet limits allow: module i joins subnet i mod n.

    This is what an installer does with a building too big for one subnet: every subnet
    covers the whole building, from the concentrator outwards, so each of its modules has
    neighbours of its own subnet to relay through. Filling subnet 0 with the first 240
    modules and putting the rest in subnet 1 would leave a few modules at the far end of
    the building alone in their subnet, out of the concentrator's reach. Past the 8
    subnets of a concentrator the last share is returned; :func:`check_limits` refuses it.
    """
    n = len(meters_per_module)
    count = max(
        1,
        -(-n // MAX_MODULES_PER_SUBNET),
        -(-sum(meters_per_module) // HARDWARE_LIMITS["meters per subnet"]),
    )
    while True:
        share = [i % count for i in range(n)]
        meters = [0] * count
        for subnet, on in zip(share, meters_per_module, strict=True):
            meters[subnet] += on
        if (
            max(meters) <= HARDWARE_LIMITS["meters per subnet"]
            or count >= HARDWARE_LIMITS["subnets per concentrator"]
        ):
            return share
        count += 1


def check_limits(code: str, plan: EquipmentPlan) -> None:
    """Raise :class:`HardwareLimitError` naming the first hardware limit the plan exceeds."""
    counts = {
        "meters per concentrator": len(plan.meters),
        "subnets per concentrator": 1 + max((m.subnet for m in plan.modules), default=0),
    }
    subnet_of = {m.serial: m.subnet for m in plan.modules}
    for subnet in range(counts["subnets per concentrator"]):
        on = sum(1 for m in plan.modules if m.subnet == subnet)
        counts["modules per subnet"] = max(counts.get("modules per subnet", 0), on)
        on = sum(1 for m in plan.meters if subnet_of[m.module] == subnet)
        counts["meters per subnet"] = max(counts.get("meters per subnet", 0), on)
    for limit, value in counts.items():
        if value > HARDWARE_LIMITS[limit]:
            raise HardwareLimitError(
                f"building {code}: {value} {limit} exceeds the limit of "
                f"{HARDWARE_LIMITS[limit]} {limit} (one J100G concentrator per building)"
            )


def _heat_meter(role: str, **where: Any) -> dict[str, Any]:
    return {
        "utility": "heat",
        "kind": "heat_meter",
        "role": role,
        "pulse_weight": Decimal(1),
        "unit": "kWh",
        "pipe": "return",
        **where,
    }


def _flow_meter(role: str, **where: Any) -> dict[str, Any]:
    return {
        "utility": "heat",
        "kind": "flow_meter",
        "role": role,
        "pulse_weight": Decimal("0.001"),
        "unit": "m3",
        "pipe": "return",
        **where,
    }


def _plan_heat(spec: BuildingSpec, eq: _Planner) -> None:
    layout = spec.layout
    if layout in ("1a", "1c"):
        make = _heat_meter if layout == "1a" else _flow_meter
        module = 0
        for i, flat in enumerate(spec.flats):
            if i % SHARED_MODULE_INPUTS == 0:
                module = eq.module(flat.floor)
            eq.meter(module, i % SHARED_MODULE_INPUTS, **make("flat", flat=flat.number))
    elif layout == "1b":
        for flat in spec.flats:
            module = eq.module(flat.floor, flat=flat.number)
            eq.meter(module, 0, **_flow_meter("flat", flat=flat.number))
            eq.pair(module, "flat", flat=flat.number)
    elif layout in ("2a", "2b"):
        for riser in spec.risers:
            module = eq.module(1, riser=riser)
            eq.meter(module, 0, **_flow_meter("riser", riser=riser))
            if layout == "2b":
                eq.pair(module, "riser", riser=riser)
            else:
                for flat in spec.flats:
                    if riser in flat.risers:
                        radiator = eq.module(flat.floor, flat=flat.number, riser=riser)
                        eq.pair(radiator, "flat", flat=flat.number, riser=riser)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    substation = eq.module(0)
    eq.meter(substation, 0, **_heat_meter("building"))
    eq.meter(
        substation,
        1,
        utility="cold_water",
        kind="water_meter",
        role="building",
        pulse_weight=Decimal("0.01"),
        unit="m3",
        pipe=None,
    )
    eq.pair(substation, "building")


FLAT_UTILITY_METERS = (
    ("cold_water", "water_meter", "0.01", "m3"),
    ("hot_water", "water_meter", "0.01", "m3"),
    ("gas", "gas_meter", "0.01", "m3"),
    ("electricity", "electricity_meter", "0.1", "kWh"),
)


def _plan_utilities(spec: BuildingSpec, eq: _Planner) -> None:
    for flat in spec.flats:
        if not flat.multi_utility:
            continue
        module = eq.module(flat.floor, flat=flat.number)
        for input_no, (utility, kind, weight, unit) in enumerate(FLAT_UTILITY_METERS):
            eq.meter(
                module,
                input_no,
                utility=utility,
                kind=kind,
                role="flat",
                pulse_weight=Decimal(weight),
                unit=unit,
                pipe=None,
                flat=flat.number,
                has_valve=utility in ("cold_water", "gas"),
            )


def plan_equipment(spec: BuildingSpec) -> EquipmentPlan:
    """The building's equipment after its layout; raises :class:`HardwareLimitError`
    when one concentrator could not serve it."""
    eq = _Planner(spec)
    _plan_heat(spec, eq)
    _plan_utilities(spec, eq)
    return eq.plan()


@dataclass
class _Ids:
    entrances: dict[int, int] = field(default_factory=dict)
    risers: dict[int, int] = field(default_factory=dict)
    flats: dict[str, int] = field(default_factory=dict)
    radiators: dict[tuple[str, int], int] = field(default_factory=dict)


async def write_building(
    conn: asyncpg.Connection, spec: BuildingSpec, vault: KeyVault, device_key: bytes | None = None
) -> int | None:
    """Insert a building and its equipment in one transaction; return its id, or None
    when a building with the same code exists already (seeding twice adds nothing)."""
    async with conn.transaction():
        if await conn.fetchval("select 1 from buildings where code = $1", spec.code):
            return None
        site = spec.site
        site_id = await conn.fetchval(
            """insert into sites (code, name, address, latitude, longitude, timezone)
               values ($1, $2, $3, $4, $5, $6)
               on conflict (code) do update set name = excluded.name returning id""",
            site.code,
            site.name,
            site.address,
            site.latitude,
            site.longitude,
            site.timezone,
        )
        building_id = await conn.fetchval(
            """insert into buildings (site_id, code, name, address, floors, layout, methodology)
               values ($1, $2, $3, $4, $5, $6, $7::jsonb) returning id""",
            site_id,
            spec.code,
            spec.name,
            spec.address,
            spec.floors,
            spec.layout,
            json.dumps(spec.methodology),
        )
        ids = _Ids()
        for entrance in range(1, spec.entrances + 1):
            ids.entrances[entrance] = await conn.fetchval(
                "insert into entrances (building_id, number) values ($1, $2) returning id",
                building_id,
                entrance,
            )
        for riser, entrance in spec.risers.items():
            ids.risers[riser] = await conn.fetchval(
                """insert into risers (building_id, entrance_id, number)
                   values ($1, $2, $3) returning id""",
                building_id,
                ids.entrances[entrance],
                riser,
            )
        for flat in spec.flats:
            flat_id = await conn.fetchval(
                """insert into flats (building_id, entrance_id, number, floor, rooms, area_m2)
                   values ($1, $2, $3, $4, $5, $6) returning id""",
                building_id,
                ids.entrances[flat.entrance],
                flat.number,
                flat.floor,
                flat.rooms,
                flat.area_m2,
            )
            ids.flats[flat.number] = flat_id
            for riser in flat.risers:
                ids.radiators[(flat.number, riser)] = await conn.fetchval(
                    "insert into radiators (flat_id, riser_id) values ($1, $2) returning id",
                    flat_id,
                    ids.risers[riser],
                )
            await conn.execute(
                """insert into accounts (number, holder_name, flat_id, residents)
                   values ($1, $2, $3, $4)""",
                f"{spec.code}-{flat.number}",
                f"Resident of flat {flat.number}",
                flat_id,
                flat.residents,
            )
        key = device_key or os.urandom(32)
        serial = spec.concentrator_serial
        concentrator_id = await conn.fetchval(
            """insert into concentrators (serial, building_id, key_ciphertext)
               values ($1, $2, $3) returning id""",
            serial,
            building_id,
            vault.seal(key, context=str(serial).encode()),
        )
        await _insert_equipment(
            conn, plan_equipment(spec), ids, int(building_id), int(concentrator_id)
        )
        return int(building_id)


async def _insert_equipment(
    conn: asyncpg.Connection, plan: EquipmentPlan, ids: _Ids, building_id: int, concentrator_id: int
) -> None:
    def flat_id(number: str | None) -> int | None:
        return None if number is None else ids.flats[number]

    def riser_id(number: int | None) -> int | None:
        return None if number is None else ids.risers[number]

    await conn.executemany(
        """insert into radio_modules
           (serial, concentrator_id, subnet, building_id, flat_id, riser_id, floor)
           values ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (
                m.serial,
                concentrator_id,
                m.subnet,
                building_id,
                flat_id(m.flat),
                riser_id(m.riser),
                m.floor,
            )
            for m in plan.modules
        ],
    )
    for m in plan.meters:
        meter_id = await conn.fetchval(
            """insert into meters (serial, utility, kind, role, building_id, flat_id, riser_id,
                                   pulse_weight, unit, pipe, has_valve)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id""",
            m.serial,
            m.utility,
            m.kind,
            m.role,
            building_id,
            flat_id(m.flat),
            riser_id(m.riser),
            m.pulse_weight,
            m.unit,
            m.pipe,
            m.has_valve,
        )
        await conn.execute(
            "insert into channels (meter_id, module_serial, input) values ($1, $2, $3)",
            meter_id,
            m.module,
            m.input,
        )
    await conn.executemany(
        """insert into sensor_pairs
           (module_serial, position, building_id, flat_id, riser_id, radiator_id)
           values ($1, $2, $3, $4, $5, $6)""",
        [
            (
                p.module,
                p.position,
                building_id,
                flat_id(p.flat),
                riser_id(p.riser),
                ids.radiators[(p.flat, p.riser)]
                if p.flat is not None and p.riser is not None
                else None,
            )
            for p in plan.pairs
        ],
    )


async def add_virtual_module(
    conn: asyncpg.Connection, meter_id: int, serial: int, model: str, input_: int
) -> None:
    """Give an existing meter a virtual radio module ``serial`` whose readings carry its
    registers on ``input_`` (a standard M-Bus meter forwarded by a concentrator).

    The module hangs off the first concentrator of the meter's building; a heat meter
    also gets a sensor pair for its flow and return temperatures. Call inside the caller's
    transaction. LookupError for an unknown meter or a building without a concentrator,
    ValueError for a meter that already has a channel.
    """
    meter = await conn.fetchrow(
        """select m.building_id, m.flat_id, m.riser_id, m.kind, m.role,
                  coalesce(f.floor, 0) as floor,
                  (select min(id) from concentrators c where c.building_id = m.building_id)
                    as concentrator_id
           from meters m left join flats f on f.id = m.flat_id where m.id = $1""",
        meter_id,
    )
    if meter is None:
        raise LookupError(f"no meter {meter_id}")
    if meter["concentrator_id"] is None:
        raise LookupError(f"building {meter['building_id']} has no concentrator")
    wired = await conn.fetchrow(
        "select module_serial, input from channels where meter_id = $1", meter_id
    )
    if wired is not None:
        raise ValueError(
            f"meter {meter_id} is already read through module {wired['module_serial']} "
            f"input {wired['input']}; a meter has one channel"
        )
    await conn.execute(
        """insert into radio_modules
             (serial, concentrator_id, subnet, model, building_id, flat_id, riser_id, floor)
           values ($1, $2, 0, $3, $4, $5, $6, $7)""",
        serial,
        meter["concentrator_id"],
        model,
        meter["building_id"],
        meter["flat_id"],
        meter["riser_id"],
        meter["floor"],
    )
    await conn.execute(
        "insert into channels (meter_id, module_serial, input) values ($1, $2, $3)",
        meter_id,
        serial,
        input_,
    )
    if meter["kind"] == "heat_meter" and meter["role"] in ("flat", "riser", "building"):
        await conn.execute(
            """insert into sensor_pairs (module_serial, position, building_id, flat_id, riser_id)
               values ($1, $2, $3, $4, $5)""",
            serial,
            meter["role"],
            meter["building_id"],
            meter["flat_id"],
            meter["riser_id"],
        )


def building_document(spec: BuildingSpec) -> dict[str, Any]:
    """The building as the world document describes it (``balans_db.provisioning``):
    what :func:`write_building` would store, named by natural keys, as plain JSON data.
    Used to generate import files (the import benchmark, docs/provisioning.md)."""
    plan = plan_equipment(spec)
    radiators: dict[str, list[dict[str, int]]] = {}
    for flat in spec.flats:
        radiators[flat.number] = [{"riser": r, "sections": 8} for r in flat.risers]
    return {
        "code": spec.code,
        "site": spec.site.code,
        "name": spec.name,
        "address": spec.address,
        "floors": spec.floors,
        "layout": spec.layout,
        "methodology": dict(spec.methodology),
        "entrances": [{"number": n} for n in range(1, spec.entrances + 1)],
        "risers": [{"number": r, "entrance": e} for r, e in spec.risers.items()],
        "flats": [
            {
                "number": f.number,
                "entrance": f.entrance,
                "floor": f.floor,
                "rooms": f.rooms,
                "area_m2": str(f.area_m2),
                "radiators": radiators[f.number],
            }
            for f in spec.flats
        ],
        "accounts": [
            {
                "number": f"{spec.code}-{f.number}",
                "flat": f.number,
                "holder_name": f"Resident of flat {f.number}",
                "residents": f.residents,
            }
            for f in spec.flats
        ],
        "concentrators": [{"serial": spec.concentrator_serial}],
        "modules": [
            {
                "serial": m.serial,
                "concentrator": spec.concentrator_serial,
                "subnet": m.subnet,
                "floor": m.floor,
                "flat": m.flat,
                "riser": m.riser,
            }
            for m in plan.modules
        ],
        "meters": [
            {
                "serial": m.serial,
                "utility": m.utility,
                "kind": m.kind,
                "role": m.role,
                "flat": m.flat,
                "riser": m.riser,
                "pulse_weight": str(m.pulse_weight),
                "unit": m.unit,
                "pipe": m.pipe,
                "has_valve": m.has_valve,
                "channel": {"module": m.module, "input": m.input},
            }
            for m in plan.meters
        ],
        "sensor_pairs": [
            {"module": p.module, "position": p.position, "flat": p.flat, "riser": p.riser}
            for p in plan.pairs
        ],
    }


def site_document(site: SiteSpec) -> dict[str, Any]:
    """The site as the world document describes it."""
    return {
        "code": site.code,
        "name": site.name,
        "address": site.address,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "timezone": site.timezone,
    }


def city_document(specs: list[BuildingSpec]) -> dict[str, Any]:
    """A world document of the buildings ``specs`` and their sites."""
    sites = {s.site.code: site_document(s.site) for s in specs}
    return {
        "format": "balans.world/1",
        "sites": list(sites.values()),
        "buildings": [building_document(s) for s in specs],
    }


async def change_tenant(
    conn: asyncpg.Connection,
    old_account: str,
    new_account: str,
    holder_name: str,
    residents: int,
    on: date,
) -> bool:
    """A move-out and move-in on ``on``: ``old_account`` closes that day (its last day is
    the day before) and ``new_account`` opens on the same flat from it; False (nothing
    written) when ``new_account`` exists already. Call inside a transaction. LookupError
    for an unknown ``old_account``."""
    if await conn.fetchval("select 1 from accounts where number = $1", new_account):
        return False
    flat_id = await conn.fetchval(
        "update accounts set closed_on = $2 where number = $1 returning flat_id", old_account, on
    )
    if flat_id is None:
        raise LookupError(f"no account {old_account}")
    await conn.execute(
        """insert into accounts (number, holder_name, flat_id, residents, opened_on)
           values ($1, $2, $3, $4, $5)""",
        new_account,
        holder_name,
        flat_id,
        residents,
        on,
    )
    return True
