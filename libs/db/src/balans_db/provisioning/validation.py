"""Is a world document a building that can exist? Every problem, each with its path.

:func:`parse_document` turns bytes or a dict into a :class:`WorldDocument` or raises
:class:`InvalidDocumentError` with every schema problem; :func:`check_document` then checks
what a schema cannot: references inside a building, uniqueness of natural keys, the
equipment each piping layout needs (docs/domain.md, "Piping layouts") and the hardware
limits of one concentrator. A refusal lists every problem, never only the first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from pydantic import ValidationError

from balans_db.provisioning.document import (
    AccountDoc,
    BuildingDoc,
    ChannelDoc,
    MeterDoc,
    WorldDocument,
)
from balans_db.provisioning.mbus import MEDIA_OF_UTILITY
from balans_db.topology import HARDWARE_LIMITS

MODULE_INPUTS = 6  # pulse inputs of a D100FC (docs/domain.md)
UNITS = {
    "heat_meter": "kWh",
    "electricity_meter": "kWh",
    "water_meter": "m3",
    "flow_meter": "m3",
    "gas_meter": "m3",
}


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "buildings[0].meters[12].channel.module"
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidDocumentError(ValueError):
    """A document refused as a whole: nothing of it is written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s): "
            + "; ".join(f"{p.path}: {p.message}" for p in self.problems[:5])
        )


def path_of(loc: Iterable[Any]) -> str:
    """("buildings", 0, "meters", 3) -> "buildings[0].meters[3]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def parse_document(data: bytes | str | dict[str, Any]) -> WorldDocument:
    """The document, or :class:`InvalidDocumentError` listing every schema problem."""
    try:
        if isinstance(data, dict):
            return WorldDocument.model_validate(data)
        return WorldDocument.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidDocumentError(
            [Problem(path_of(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
        ) from exc


def check_document(doc: WorldDocument, known_sites: Iterable[str] = ()) -> list[Problem]:
    """Every problem of the document; ``known_sites`` are site codes already stored."""
    problems: list[Problem] = []
    sites = {s.code for s in doc.sites} | set(known_sites)
    problems += _duplicates("sites", [s.code for s in doc.sites], "site code")
    problems += _duplicates("buildings", [b.code for b in doc.buildings], "building code")
    # serials and account numbers are unique city-wide, not only in their building
    for collection, key, what in (
        ("accounts", "number", "account number"),
        ("concentrators", "serial", "concentrator serial"),
        ("modules", "serial", "module serial"),
        ("meters", "serial", "meter serial"),
    ):
        seen: dict[Any, str] = {}
        for i, b in enumerate(doc.buildings):
            for j, item in enumerate(getattr(b, collection)):
                value = getattr(item, key)
                where = f"buildings[{i}].{collection}[{j}]"
                if value in seen:
                    problems.append(
                        Problem(f"{where}.{key}", f"{what} {value} also at {seen[value]}")
                    )
                else:
                    seen[value] = where
    problems += _mbus_addresses(doc)
    for i, b in enumerate(doc.buildings):
        if b.site not in sites:
            problems.append(Problem(f"buildings[{i}].site", f"no site {b.site!r}"))
        problems += check_building(b, f"buildings[{i}]")
    return problems


def _mbus_addresses(doc: WorldDocument) -> list[Problem]:
    """An M-Bus address names one meter city-wide."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    for i, b in enumerate(doc.buildings):
        for j, m in enumerate(b.meters):
            if m.mbus is None:
                continue
            address = (m.mbus.manufacturer.upper(), m.mbus.id.upper())
            where = f"buildings[{i}].meters[{j}].mbus"
            if address in seen:
                problems.append(
                    Problem(where, f"M-Bus address {' '.join(address)} also at {seen[address]}")
                )
            else:
                seen[address] = where
    return problems


def _duplicates(path: str, keys: list[Any], what: str) -> list[Problem]:
    counts = Counter(keys)
    return [
        Problem(f"{path}[{i}]", f"{what} {k!r} appears {counts[k]} times")
        for i, k in enumerate(keys)
        if counts[k] > 1 and keys.index(k) != i
    ]


# methodology settings with a fixed set of values: billing's vacant-flat rule
# (docs/billing.md) and allocation's rule for expired meters (docs/allocation.md)
METHODOLOGY_CHOICES: dict[str, tuple[str, ...]] = {
    "vacant_flat": ("owner", "owner_consumption", "none"),
    "expired_meter_readings": ("measured", "estimated"),
}


def check_building(b: BuildingDoc, at: str) -> list[Problem]:
    """Every problem inside one building (see the module docstring)."""
    return _BuildingCheck(b, at).run()


class _BuildingCheck:
    def __init__(self, b: BuildingDoc, at: str) -> None:
        self.b = b
        self.at = at
        self.problems: list[Problem] = []
        self.entrances = {e.number for e in b.entrances}
        self.risers = {r.number for r in b.risers}
        self.flats = {f.number: f for f in b.flats}
        self.concentrators = {c.serial for c in b.concentrators}
        self.modules = {m.serial: m for m in b.modules}

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(f"{self.at}.{path}", message))

    def run(self) -> list[Problem]:
        b = self.b
        for collection, key in (
            ("entrances", "number"),
            ("risers", "number"),
            ("flats", "number"),
            ("sensor_pairs", "module"),
        ):
            for p in _duplicates(
                collection, [getattr(x, key) for x in getattr(b, collection)], key
            ):
                self.add(p.path, p.message)
        self._structure()
        self._equipment()
        self._layout()
        self._limits()
        self._rules()
        return self.problems

    def _rules(self) -> None:
        """The methodology's rules for account periods and expired meters."""
        for name, allowed in METHODOLOGY_CHOICES.items():
            value = self.b.methodology.get(name)
            if value is not None and value not in allowed:
                self.add(f"methodology.{name}", f"{value!r} is not one of {', '.join(allowed)}")

    def _flat_ref(self, path: str, flat: str | None) -> None:
        if flat is not None and flat not in self.flats:
            self.add(path, f"no flat {flat!r} in building {self.b.code}")

    def _riser_ref(self, path: str, riser: int | None) -> None:
        if riser is not None and riser not in self.risers:
            self.add(path, f"no riser {riser} in building {self.b.code}")

    def _structure(self) -> None:
        b = self.b
        for i, r in enumerate(b.risers):
            if r.entrance not in self.entrances:
                self.add(f"risers[{i}].entrance", f"no entrance {r.entrance}")
        for i, f in enumerate(b.flats):
            if f.entrance not in self.entrances:
                self.add(f"flats[{i}].entrance", f"no entrance {f.entrance}")
            if not 0 <= f.floor <= b.floors:
                self.add(f"flats[{i}].floor", f"floor {f.floor} outside 0..{b.floors}")
            risers = [r.riser for r in f.radiators]
            for j, riser in enumerate(risers):
                self._riser_ref(f"flats[{i}].radiators[{j}].riser", riser)
                if risers.index(riser) != j:
                    self.add(f"flats[{i}].radiators[{j}].riser", f"two radiators on riser {riser}")
        held: dict[str | None, list[tuple[int, AccountDoc]]] = {}
        for i, a in enumerate(b.accounts):
            self._flat_ref(f"accounts[{i}].flat", a.flat)
            if a.opened_on and a.closed_on and a.closed_on <= a.opened_on:
                self.add(f"accounts[{i}].closed_on", f"not after opened_on {a.opened_on}")
            held.setdefault(a.flat, []).append((i, a))
        for flat, accounts in held.items():
            if flat is None and len(accounts) > 1:
                self.add(f"accounts[{accounts[1][0]}].flat", "a second owner account (flat null)")
            elif flat is not None:
                self._one_holder_a_day(flat, accounts)

    def _one_holder_a_day(self, flat: str, accounts: list[tuple[int, AccountDoc]]) -> None:
        """Accounts of one flat hold it one after another ([opened_on, closed_on) apart)."""
        ordered = sorted(accounts, key=lambda ia: ia[1].opened_on or date.min)
        for (_, a), (j, b) in pairwise(ordered):
            if a.closed_on is None or (b.opened_on or date.min) < a.closed_on:
                self.add(
                    f"accounts[{j}].opened_on",
                    f"flat {flat} is still held by account {a.number} then",
                )

    def _equipment(self) -> None:
        b = self.b
        for i, m in enumerate(b.modules):
            if m.concentrator not in self.concentrators:
                self.add(
                    f"modules[{i}].concentrator",
                    f"no concentrator {m.concentrator} in building {b.code}",
                )
            self._flat_ref(f"modules[{i}].flat", m.flat)
            self._riser_ref(f"modules[{i}].riser", m.riser)
        inputs: dict[tuple[int, int], list[int]] = {}
        for i, m in enumerate(b.meters):
            at = f"meters[{i}]"
            self._flat_ref(f"{at}.flat", m.flat)
            self._riser_ref(f"{at}.riser", m.riser)
            if m.role == "flat" and m.flat is None:
                self.add(f"{at}.flat", "a flat meter names the flat (of this building) it serves")
            if m.role == "riser" and m.riser is None:
                self.add(f"{at}.riser", "a riser meter names its riser")
            if m.unit != UNITS[m.kind]:
                self.add(f"{at}.unit", f"a {m.kind} counts {UNITS[m.kind]}, not {m.unit}")
            if m.mbus is not None:
                self._mbus(at, m)
            if m.channel is None:
                continue
            if m.channel.module not in self.modules:
                self.add(
                    f"{at}.channel.module", f"no module {m.channel.module} in building {b.code}"
                )
            start, end = m.channel.valid_from, m.channel.valid_to
            if start is not None and end is not None and start >= end:
                self.add(f"{at}.channel.valid_to", "a channel period ends after it starts")
            where = (m.channel.module, m.channel.input)
            for j in inputs.get(where, []):
                if _overlap(m.channel, b.meters[j].channel):
                    self.add(
                        f"{at}.channel",
                        f"module {where[0]} input {where[1]} already counts meter "
                        f"{b.meters[j].serial}",
                    )
            inputs.setdefault(where, []).append(i)
        for i, p in enumerate(b.sensor_pairs):
            at = f"sensor_pairs[{i}]"
            if p.module not in self.modules:
                self.add(f"{at}.module", f"no module {p.module} in building {b.code}")
            self._flat_ref(f"{at}.flat", p.flat)
            self._riser_ref(f"{at}.riser", p.riser)
            if p.position == "flat" and p.flat is None:
                self.add(f"{at}.flat", "a flat's sensor pair names its flat")
            if p.position == "riser" and p.riser is None:
                self.add(f"{at}.riser", "a riser's sensor pair names its riser")
            if p.flat is not None and p.riser is not None:
                flat = self.flats.get(p.flat)
                if flat is not None and p.riser not in {r.riser for r in flat.radiators}:
                    self.add(at, f"flat {p.flat} has no radiator on riser {p.riser}")

    def _mbus(self, at: str, m: MeterDoc) -> None:
        """A standard M-Bus meter is read from its telegrams, which a concentrator of its
        building forwards, and reports a medium of its utility."""
        assert m.mbus is not None
        if m.channel is not None:
            self.add(
                f"{at}.channel",
                "a meter with an M-Bus address is read from its telegrams, not "
                "through a module input: leave channel out",
            )
        if not self.concentrators:
            self.add(
                f"{at}.mbus", f"building {self.b.code} has no concentrator to forward its telegrams"
            )
        if m.mbus.medium is not None and m.mbus.medium not in MEDIA_OF_UTILITY[m.utility]:
            self.add(
                f"{at}.mbus.medium",
                f"medium {m.mbus.medium} does not measure {m.utility}; a {m.utility} meter "
                f"sends {' or '.join(sorted(MEDIA_OF_UTILITY[m.utility]))}",
            )

    def _layout(self) -> None:
        """What each piping layout needs (docs/domain.md, "Piping layouts")."""
        b = self.b
        heat = [m for m in b.meters if m.utility == "heat"]
        if not any(m.role == "building" and m.kind == "heat_meter" for m in heat):
            self.add("meters", "the building needs a building heat meter (role building)")
        riser_flow = {m.riser for m in heat if m.role == "riser" and m.kind == "flow_meter"}
        flat_heat = {m.flat: m.kind for m in heat if m.role == "flat"}
        pairs = {(p.flat, p.riser) for p in b.sensor_pairs}
        if b.layout in ("2a", "2b"):
            for i, r in enumerate(b.risers):
                if r.number not in riser_flow:
                    self.add(
                        f"risers[{i}]", f"single-pipe riser {r.number} needs a riser flow meter"
                    )
                if b.layout == "2b" and (None, r.number) not in pairs:
                    self.add(f"risers[{i}]", f"riser {r.number} needs a sensor pair (layout 2b)")
        if b.layout == "2a":
            for i, f in enumerate(b.flats):
                for j, rad in enumerate(f.radiators):
                    if (f.number, rad.riser) not in pairs:
                        self.add(
                            f"flats[{i}].radiators[{j}]",
                            f"the radiator of flat {f.number} on riser {rad.riser} needs a "
                            "sensor pair (layout 2a)",
                        )
        wanted = {"1a": "heat_meter", "1b": "flow_meter", "1c": "flow_meter"}.get(b.layout)
        if wanted is not None:
            for i, f in enumerate(b.flats):
                if flat_heat.get(f.number) != wanted:
                    self.add(f"flats[{i}]", f"flat {f.number} needs a {wanted} (layout {b.layout})")
                if b.layout == "1b" and (f.number, None) not in pairs:
                    self.add(f"flats[{i}]", f"flat {f.number} needs a sensor pair (layout 1b)")

    def _limits(self) -> None:
        """docs/domain.md: 6 inputs per module, 240 modules and 540 meters per subnet,
        8 subnets and 720 meters per concentrator."""
        b = self.b
        per_module = Counter(  # meters in service: an exchanged one left its input
            m.channel.module for m in b.meters if m.channel is not None and not m.channel.valid_to
        )
        for i, m in enumerate(b.modules):
            if per_module[m.serial] > MODULE_INPUTS:
                self.add(
                    f"modules[{i}]", f"{per_module[m.serial]} meters on {MODULE_INPUTS} inputs"
                )
        modules_on: Counter[tuple[int, int]] = Counter(
            (m.concentrator, m.subnet) for m in b.modules
        )
        meters_on: Counter[tuple[int, int]] = Counter()
        meters_of: Counter[int] = Counter()
        for m in b.meters:
            in_service = m.channel is not None and m.channel.valid_to is None
            module = self.modules.get(m.channel.module) if m.channel and in_service else None
            if module is not None:
                meters_on[(module.concentrator, module.subnet)] += 1
                meters_of[module.concentrator] += 1
        for (serial, subnet), n in sorted(modules_on.items()):
            if n > HARDWARE_LIMITS["modules per subnet"]:
                self.add(
                    "modules",
                    f"concentrator {serial} subnet {subnet}: {n} modules, the limit is "
                    f"{HARDWARE_LIMITS['modules per subnet']}",
                )
        for (serial, subnet), n in sorted(meters_on.items()):
            if n > HARDWARE_LIMITS["meters per subnet"]:
                self.add(
                    "meters",
                    f"concentrator {serial} subnet {subnet}: {n} meters, the limit is "
                    f"{HARDWARE_LIMITS['meters per subnet']}",
                )
        for serial, n in sorted(meters_of.items()):
            if n > HARDWARE_LIMITS["meters per concentrator"]:
                self.add(
                    "meters",
                    f"concentrator {serial}: {n} meters, the limit is "
                    f"{HARDWARE_LIMITS['meters per concentrator']}",
                )


def _overlap(a: ChannelDoc | None, b: ChannelDoc | None) -> bool:
    """Whether two channel periods [valid_from, valid_to) share a moment (None: open)."""
    if a is None or b is None:
        return False
    starts_before_b_ends = b.valid_to is None or a.valid_from is None or a.valid_from < b.valid_to
    ends_after_b_starts = a.valid_to is None or b.valid_from is None or b.valid_from < a.valid_to
    return starts_before_b_ends and ends_after_b_starts
