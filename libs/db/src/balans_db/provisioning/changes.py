"""What importing a document would change: the stored buildings compared with the
document, entity by entity, by natural keys.

Each entity becomes a row: a key (its natural key) and a tuple of values. A building
in the document is described completely, so a stored entity of that building missing
from the document is deleted; entities of buildings outside the document are left
alone. Serials and account numbers are city-wide keys: one that moves between two
buildings of the same document is an update (its history stays with it), never a
delete and a create.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from balans_db.provisioning import mbus
from balans_db.provisioning.document import BuildingDoc, SiteDoc, WorldDocument
from balans_db.provisioning.export import channel_values, methodology_of, stored_channel_values

# the order entities are written in (parents first); deletes go the other way
ENTITIES = (
    "sites",
    "buildings",
    "entrances",
    "risers",
    "flats",
    "radiators",
    "accounts",
    "concentrators",
    "modules",
    "meters",
    "channels",
    "sensor_pairs",
    "mbus_meters",  # a meter's M-Bus address (balans_db.provisioning.mbus)
)
# keys unique city-wide (the others are unique within their building)
GLOBAL = frozenset(
    {
        "sites",
        "buildings",
        "accounts",
        "concentrators",
        "modules",
        "meters",
        "channels",
        "sensor_pairs",
        "mbus_meters",
    }
)
# value positions that a document may leave empty (None): the stored value is kept, and a
# new row gets today
_KEEP_IF_NONE = {
    "accounts": (4,),
    "concentrators": (1,),
    "modules": (6,),
    "meters": (10,),
    "mbus_meters": (mbus.KEY_POSITION,),
}

Row = tuple[Any, tuple[Any, ...]]  # (key, values)


def _site_row(s: SiteDoc) -> Row:
    return s.code, (s.name, s.address, s.latitude, s.longitude, s.timezone, s.retired_on)


def building_rows(b: BuildingDoc) -> Iterator[tuple[str, Row]]:
    """(entity, (key, values)) of everything in one building. Values name other entities
    by their natural keys; building-scoped keys start with the building's code."""
    code = b.code
    yield (
        "buildings",
        (
            code,
            (
                b.site,
                b.name,
                b.address,
                b.floors,
                b.layout,
                json.dumps(b.methodology, sort_keys=True, default=str),
                b.retired_on,
            ),
        ),
    )
    for e in b.entrances:
        yield "entrances", ((code, e.number), ())
    for r in b.risers:
        yield "risers", ((code, r.number), (r.entrance,))
    for f in b.flats:
        yield "flats", ((code, f.number), (f.entrance, f.floor, f.rooms, f.area_m2))
        for rad in f.radiators:
            yield "radiators", ((code, f.number, rad.riser), (rad.sections,))
    for a in b.accounts:
        yield (
            "accounts",
            (
                a.number,
                (code, a.flat, a.holder_name, a.residents, a.opened_on, a.email, a.closed_on),
            ),
        )
    for c in b.concentrators:
        yield "concentrators", (c.serial, (code, c.installed_on, c.model))
    for m in b.modules:
        yield (
            "modules",
            (
                m.serial,
                (code, m.concentrator, m.subnet, m.model, m.floor, m.flat, m.installed_on, m.riser),
            ),
        )
    for mt in b.meters:
        yield (
            "meters",
            (
                mt.serial,
                (
                    code,
                    mt.utility,
                    mt.kind,
                    mt.role,
                    mt.flat,
                    mt.riser,
                    mt.pulse_weight,
                    mt.unit,
                    mt.pipe,
                    mt.accuracy_class,
                    mt.installed_on,
                    mt.has_valve,
                    mt.verified_on,
                    mt.verification_interval_years,
                ),
            ),
        )
        if mt.channel is not None:
            yield "channels", (mt.serial, (code, *channel_values(mt.channel)))
        if mt.mbus is not None:
            yield "mbus_meters", (mt.serial, mbus.document_values(code, mt.mbus))
    for p in b.sensor_pairs:
        yield "sensor_pairs", (p.module, (code, p.position, p.flat, p.riser))


def document_rows(doc: WorldDocument) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Every entity of the document as (key, values) rows, per entity."""
    rows: dict[str, dict[Any, tuple[Any, ...]]] = {e: {} for e in ENTITIES}
    for s in doc.sites:
        key, values = _site_row(s)
        rows["sites"][key] = values
    for b in doc.buildings:
        for entity, (key, values) in building_rows(b):
            rows[entity][key] = values
    return rows


@dataclass
class Changes:
    """Rows to create, update and delete, per entity (values as in :func:`building_rows`)."""

    create: dict[str, dict[Any, tuple[Any, ...]]] = field(
        default_factory=lambda: {e: {} for e in ENTITIES}
    )
    update: dict[str, dict[Any, tuple[Any, ...]]] = field(
        default_factory=lambda: {e: {} for e in ENTITIES}
    )
    delete: dict[str, list[Any]] = field(default_factory=lambda: {e: [] for e in ENTITIES})

    @property
    def empty(self) -> bool:
        return (
            not any(self.create.values())
            and not any(self.update.values())
            and not any(self.delete.values())
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """entity -> {"create": n, "update": n, "delete": n}, entities with changes only."""
        out = {}
        for e in ENTITIES:
            c = {
                "create": len(self.create[e]),
                "update": len(self.update[e]),
                "delete": len(self.delete[e]),
            }
            if any(c.values()):
                out[e] = c
        return out

    def lines(self, limit: int | None = None) -> list[str]:
        """One line per change, e.g. ``create meter heat-100002-0``."""
        out: list[str] = []
        for e in ENTITIES:
            what = e[:-1]  # "meters" -> "meter"
            for verb, keys in (
                ("create", self.create[e]),
                ("update", self.update[e]),
                ("delete", self.delete[e]),
            ):
                for key in keys:
                    out.append(f"{verb} {what} {_show(key)}")
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    def changed_buildings(self) -> set[str]:
        """Codes of the buildings in which anything changes."""
        codes: set[str] = set()
        for e in ENTITIES:
            if e == "sites":
                continue
            for rows in (self.create[e], self.update[e]):
                codes.update(_building_of(e, k, v) for k, v in rows.items())
        codes.update(self.deleted_in)
        return codes

    deleted_in: set[str] = field(default_factory=set)


def _building_of(entity: str, key: Any, values: tuple[Any, ...]) -> str:
    if entity == "buildings":
        return str(key)
    return str(key[0]) if entity not in GLOBAL else str(values[0])


def _show(key: Any) -> str:
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


Rows = dict[str, dict[Any, tuple[Any, ...]]]


def stored_rows(
    buildings: list[Any], sites: list[Any], parts: dict[str, dict[int, list[Any]]]
) -> Rows:
    """What :func:`document_rows` gives for the export of the same buildings, straight
    from the stored records (:func:`balans_db.provisioning.export.fetch_stored`): no
    document is built, which is what makes re-importing a city cheap."""
    rows: Rows = {e: {} for e in ENTITIES}
    for s in sites:
        rows["sites"][s["code"]] = (
            s["name"],
            s["address"],
            s["latitude"],
            s["longitude"],
            s["timezone"],
            s["retired_on"],
        )
    for b in buildings:
        code, bid = b["code"], b["id"]
        rows["buildings"][code] = (
            b["site"],
            b["name"],
            b["address"],
            b["floors"],
            b["layout"],
            json.dumps(methodology_of(b["methodology"]), sort_keys=True, default=str),
            b["retired_on"],
        )
        for r in parts["entrances"].get(bid, ()):
            rows["entrances"][(code, r["number"])] = ()
        for r in parts["risers"].get(bid, ()):
            rows["risers"][(code, r["number"])] = (r["entrance"],)
        for r in parts["flats"].get(bid, ()):
            rows["flats"][(code, r["number"])] = (
                r["entrance"],
                r["floor"],
                r["rooms"],
                r["area_m2"],
            )
        for r in parts["radiators"].get(bid, ()):
            rows["radiators"][(code, r["flat"], r["riser"])] = (r["sections"],)
        for r in parts["accounts"].get(bid, ()):
            rows["accounts"][r["number"]] = (
                code,
                r["flat"],
                r["holder_name"],
                r["residents"],
                r["opened_on"],
                r["email"],
                r["closed_on"],
            )
        for r in parts["concentrators"].get(bid, ()):
            rows["concentrators"][r["serial"]] = (code, r["installed_on"], r["model"])
        for r in parts["modules"].get(bid, ()):
            rows["modules"][r["serial"]] = (
                code,
                r["concentrator"],
                r["subnet"],
                r["model"],
                r["floor"],
                r["flat"],
                r["installed_on"],
                r["riser"],
            )
        for r in parts["meters"].get(bid, ()):
            rows["meters"][r["serial"]] = (
                code,
                r["utility"],
                r["kind"],
                r["role"],
                r["flat"],
                r["riser"],
                r["pulse_weight"],
                r["unit"],
                r["pipe"],
                r["accuracy_class"],
                r["installed_on"],
                r["has_valve"],
                r["verified_on"],
                r["verification_interval_years"],
            )
            if r["module_serial"] is not None:
                rows["channels"][r["serial"]] = (code, *stored_channel_values(r))
        for r in parts["pairs"].get(bid, ()):
            rows["sensor_pairs"][r["module_serial"]] = (code, r["position"], r["flat"], r["riser"])
        for r in parts["mbus"].get(bid, ()):
            rows["mbus_meters"][r["serial"]] = mbus.stored_values(code, r)
    return rows


def compare(old: Rows, wanted: WorldDocument) -> Changes:
    """The changes that make the stored buildings of ``wanted`` look like ``wanted``.

    ``old`` are the stored rows of the same building codes (:func:`stored_rows`;
    buildings not stored yet are simply absent). Values the document leaves empty are
    filled in from the stored row (see ``_KEEP_IF_NONE``)."""
    new = document_rows(wanted)
    changes = Changes()
    for e in ENTITIES:
        keep = _KEEP_IF_NONE.get(e, ())
        for key, values in new[e].items():
            before = old[e].get(key)
            if before is None:
                changes.create[e][key] = values
                continue
            if keep:
                values = tuple(
                    before[i] if i in keep and v is None else v for i, v in enumerate(values)
                )
            if values != before:
                changes.update[e][key] = values
        if e == "sites":
            continue  # a site is never deleted by an import (other buildings may use it)
        for key, values in old[e].items():
            if key not in new[e]:
                changes.delete[e].append(key)
                changes.deleted_in.add(_building_of(e, key, values))
    return changes
