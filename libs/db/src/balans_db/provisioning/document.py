"""The world document: one JSON document describing sites and buildings with everything in
them, named by natural keys only (codes, numbers, serials, account numbers; never
database ids).

``balans import`` / ``POST /api/v1/imports`` read it, ``balans export`` /
``GET /api/v1/exports`` write it, and the provisioning routes edit one building of it.
A building in a document is described completely: importing it makes the building look
exactly like the document (docs/provisioning.md). Concentrator keys never appear in a
document: the server generates a key for each new concentrator and shows it once.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from balans_db.tables.base import UTILITIES
from balans_db.tables.world import LAYOUTS, METER_KINDS, METER_ROLES

FORMAT: Literal["balans.world/1"] = "balans.world/1"

Utility = Literal[UTILITIES]  # type: ignore[valid-type]
Layout = Literal[LAYOUTS]  # type: ignore[valid-type]
MeterKind = Literal[METER_KINDS]  # type: ignore[valid-type]
MeterRole = Literal[METER_ROLES]  # type: ignore[valid-type]
PairPosition = Literal["flat", "riser", "building"]


class Part(BaseModel):
    """Every part of a document: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class SiteDoc(Part):
    code: str = Field(min_length=1, max_length=64, examples=["chisinau-botanica"])
    name: str = Field(min_length=1, examples=["Chișinău, Botanica"])
    address: str = Field(examples=["bd. Dacia 27, Chișinău"])
    latitude: float = Field(ge=-90, le=90, examples=[46.9876])
    longitude: float = Field(ge=-180, le=180, examples=[28.8573])
    timezone: str = Field(
        "Europe/Chisinau",
        description="IANA time zone of the site and its buildings (hours, days and months "
        "of the series and bills are local to it).",
    )
    retired_on: date | None = None


class EntranceDoc(Part):
    number: int = Field(ge=1, le=99)


class RiserDoc(Part):
    number: int = Field(ge=1, le=999)
    entrance: int = Field(ge=1, description="number of the entrance the riser rises in")


class RadiatorDoc(Part):
    """A flat's radiator on a single-pipe riser (layouts 2a and 2b)."""

    riser: int = Field(ge=1)
    sections: int = Field(8, ge=1, le=60)


class FlatDoc(Part):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "17",
                    "entrance": 1,
                    "floor": 5,
                    "rooms": 2,
                    "area_m2": "48.20",
                    "radiators": [{"riser": 3, "sections": 8}, {"riser": 7, "sections": 10}],
                }
            ]
        }
    )
    number: str = Field(min_length=1, max_length=16, examples=["17"])
    entrance: int = Field(ge=1)
    floor: int = Field(ge=0, le=200)
    rooms: int = Field(ge=1, le=20)
    area_m2: Decimal = Field(gt=0, max_digits=8, decimal_places=2, examples=["48.20"])
    radiators: list[RadiatorDoc] = Field(default_factory=list)


class AccountDoc(Part):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "ref-2a-17",
                    "flat": "17",
                    "holder_name": "Ion Popescu",
                    "residents": 3,
                    "email": "ion@example.md",
                    "opened_on": "2026-01-01",
                }
            ]
        }
    )
    number: str = Field(min_length=1, max_length=64, examples=["ref-2a-17"])
    flat: str | None = Field(
        description="number of the flat in this building; null: the building's owner "
        "account (at most one), billed for vacant flats (docs/billing.md)"
    )
    holder_name: str = Field(min_length=1)
    residents: int = Field(1, ge=0, le=50)
    email: str | None = None
    opened_on: date | None = Field(
        None, description="first day it holds the flat; null: since metering began"
    )
    closed_on: date | None = Field(
        None, description="the move-out day, the first day it no longer holds the flat; null: open"
    )


class ConcentratorDoc(Part):
    serial: int = Field(ge=1, lt=2**32, examples=[1000001])
    model: str = "J100G"
    installed_on: date | None = None


class ModuleDoc(Part):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "serial": 100045,
                    "concentrator": 1000001,
                    "subnet": 0,
                    "floor": 5,
                    "flat": "17",
                    "riser": 3,
                }
            ]
        }
    )
    serial: int = Field(ge=1, lt=2**32, examples=[100001])
    concentrator: int = Field(description="serial of the concentrator it reports to")
    subnet: int = Field(0, ge=0, le=7)
    model: str = "D100FC"
    floor: int = Field(ge=0, le=200)
    flat: str | None = None
    riser: int | None = None
    installed_on: date | None = None


class ChannelDoc(Part):
    """Which input of which radio module counts the meter's pulses, and since and until
    when (a meter exchange closes the old meter's period and opens the new one's: the
    channel history, docs/provisioning.md "Meter exchange"). The period fields are left
    out of an export where they are empty (a meter on its input since always)."""

    module: int
    input: int = Field(ge=0, le=5, description="a D100FC has 6 pulse inputs, 0 to 5")
    valid_from: datetime | None = Field(None, description="on the input since (exclusive)")
    valid_to: datetime | None = Field(None, description="taken off the input at")
    count_at_start: int | None = Field(None, ge=0, description="module count at valid_from")
    count_at_end: int | None = Field(None, ge=0, description="module count at valid_to")
    register_offset: Decimal | None = Field(
        None,
        max_digits=18,
        decimal_places=6,
        description="register = register_offset + count × pulse_weight (none: 0)",
    )

    @model_serializer(mode="wrap")
    def _without_empty_period(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k in ("module", "input")}


# EN 13757-3 device type (medium) codes a standard meter of each utility may send
MBUS_MEDIA: dict[str, int] = {
    "electricity": 0x02,
    "gas": 0x03,
    "heat": 0x04,
    "warm_water": 0x06,
    "water": 0x07,
    "heat_inlet": 0x0C,
    "heat_cooling": 0x0D,
    "hot_water": 0x15,
    "cold_water": 0x16,
    "dual_water": 0x17,
}
MbusMedium = Literal[tuple(MBUS_MEDIA)]  # type: ignore[valid-type]


class MbusDoc(Part):
    """The M-Bus address of a standard meter whose telegrams a concentrator forwards
    (docs/mbus.md). Its readings come from the telegrams, so the meter has no channel."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"manufacturer": "KAM", "id": "67676767", "version": 27, "medium": "water"}
            ]
        }
    )
    manufacturer: str = Field(
        pattern=r"^[@A-Za-z]{3}$", description="the three-letter FLAG code (M field)"
    )
    id: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}$", description="the 8-digit identification number (A field)"
    )
    version: int | None = Field(None, ge=0, le=255, description="null: any version")
    medium: MbusMedium | None = Field(  # type: ignore[valid-type]
        None, description="device type; null: any"
    )
    key: str | None = Field(
        None,
        pattern=r"^([0-9A-Fa-f]{32})?$",
        description="AES-128 key in hex, write-only: stored sealed, never shown again. "
        'Left out: the stored key is kept; "": the stored key is removed.',
    )


class MeterDoc(Part):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "serial": "CW-2026-00017",
                    "utility": "cold_water",
                    "kind": "water_meter",
                    "role": "flat",
                    "flat": "17",
                    "pulse_weight": "0.01",
                    "unit": "m3",
                    "has_valve": True,
                    "verified_on": "2026-03-01",
                    "channel": {"module": 100045, "input": 1},
                }
            ]
        }
    )
    serial: str = Field(min_length=1, max_length=64, examples=["heat-100002-0"])
    utility: Utility
    kind: MeterKind
    role: MeterRole
    flat: str | None = None
    riser: int | None = None
    pulse_weight: Decimal = Field(gt=0, max_digits=12, decimal_places=6, examples=["0.001"])
    unit: Literal["kWh", "m3"]
    pipe: Literal["flow", "return"] | None = None
    accuracy_class: str = "2"
    has_valve: bool = False
    installed_on: date | None = None
    verified_on: date | None = None
    verification_interval_years: int | None = Field(
        None,
        ge=1,
        le=50,
        description="re-verification interval; null: the utility's default "
        "(docs/provisioning.md, 'Verification (calibration) intervals')",
    )
    channel: ChannelDoc | None = None
    mbus: MbusDoc | None = Field(None, description="a standard M-Bus meter's address")


class SensorPairDoc(Part):
    """Two DTI2 temperature sensors on a radio module (supply and return)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"module": 100045, "position": "flat", "flat": "17", "riser": 3}]
        }
    )

    module: int
    position: PairPosition
    flat: str | None = None
    riser: int | None = None


class BuildingDoc(Part):
    code: str = Field(min_length=1, max_length=64, examples=["ref-2a"])
    site: str = Field(description="code of the site (in this document or already stored)")
    name: str
    address: str
    floors: int = Field(ge=1, le=200)
    layout: Layout
    methodology: dict[str, Any] = Field(default_factory=dict)
    retired_on: date | None = None
    entrances: list[EntranceDoc] = Field(default_factory=list)
    risers: list[RiserDoc] = Field(default_factory=list)
    flats: list[FlatDoc] = Field(default_factory=list)
    accounts: list[AccountDoc] = Field(default_factory=list)
    concentrators: list[ConcentratorDoc] = Field(default_factory=list)
    modules: list[ModuleDoc] = Field(default_factory=list)
    meters: list[MeterDoc] = Field(default_factory=list)
    sensor_pairs: list[SensorPairDoc] = Field(default_factory=list)


class WorldDocument(Part):
    """A building, a few, or a whole city."""

    format: Literal["balans.world/1"] = FORMAT
    sites: list[SiteDoc] = Field(default_factory=list)
    buildings: list[BuildingDoc] = Field(default_factory=list)


# the collections of a building an operator edits one item at a time, and the field that
# names an item (its natural key within the building or city)
COLLECTIONS: dict[str, tuple[type[Part], str]] = {
    "entrances": (EntranceDoc, "number"),
    "risers": (RiserDoc, "number"),
    "flats": (FlatDoc, "number"),
    "accounts": (AccountDoc, "number"),
    "concentrators": (ConcentratorDoc, "serial"),
    "modules": (ModuleDoc, "serial"),
    "meters": (MeterDoc, "serial"),
    "sensor_pairs": (SensorPairDoc, "module"),
}
