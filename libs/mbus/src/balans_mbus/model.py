"""What a decoded telegram looks like: pydantic models, JSON-ready for the CLI and NATS."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DecodeFailure(StrEnum):
    """Why a telegram could not be (fully) decoded. The value is stable; the text says more."""

    EMPTY = "empty"
    TRUNCATED = "truncated"
    BAD_LENGTH = "bad_length"
    BAD_CHECKSUM = "bad_checksum"
    BAD_CRC = "bad_crc"
    BAD_MAC = "bad_mac"
    BAD_DATA_CRC = "bad_data_crc"
    UNSUPPORTED_CI = "unsupported_ci"
    MANUFACTURER_SPECIFIC = "manufacturer_specific"
    KEY_MISSING = "key_missing"
    BAD_KEY = "bad_key"
    UNSUPPORTED_SECURITY = "unsupported_security"
    DECRYPTION_FAILED = "decryption_failed"
    UNKNOWN_FORMAT = "unknown_format"
    RECORDS_INVALID = "records_invalid"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceHeader(_Frozen):
    """Who sent the telegram: the EN 13757 address (manufacturer, id, version, device type)."""

    manufacturer: str = Field(description="three-letter FLAG code, e.g. KAM")
    id: str = Field(description="the 8-digit identification number as printed on the meter")
    version: int = Field(ge=0, le=255)
    device_type: int = Field(ge=0, le=255)
    device_type_name: str


class Transport(_Frozen):
    """Transport-layer facts: access number, status byte, security."""

    ci: int
    access_number: int | None = None
    status: int | None = None
    security_mode: int = 0
    encrypted_blocks: int = 0
    decrypted: bool = Field(False, description="the payload was decrypted with the given key")
    plaintext_in_place: bool = Field(
        False, description="header announces encryption but the payload arrived decrypted"
    )
    compact_format_signature: int | None = None
    message_counter: int | None = Field(None, description="AFL.MCR, when the AFL carries one")
    authenticated: bool = Field(False, description="the AFL MAC was checked and matched")


class DataRecord(_Frozen):
    """One EN 13757-3 data record (DIF/DIFE/VIF/VIFE + data), values already scaled.

    ``quantity`` and ``unit`` are EN 13757-3 terms as decoded; ``name``/``si_value`` are the
    balans normalisation (energy in kWh, volume in m3, power in kW, flow in m3/h, °C, HCA
    units) where the record is one of those quantities, else ``None``. A plain-text VIF's
    ``unit`` is its text.
    """

    function: Literal["instantaneous", "maximum", "minimum", "error"]
    storage: int
    tariff: int
    subunit: int
    quantity: str
    unit: str | None
    value: float | str | None
    name: str | None = None
    si_value: float | None = None
    header_hex: str
    data_hex: str


class MeterValues(_Frozen):
    """The current values balans uses, taken from storage 0, tariff 0, subunit 0 records.

    ``energy_kwh`` is a heat meter's energy or an electricity meter's import (A+);
    ``export_energy_kwh`` an electricity meter's export (A-); ``power_l1_kw`` .. ``_l3_``
    the power of one phase where the meter reports it (VIFE 0xFC 0x01..0x03), and
    ``energy_l1_kwh`` .. / ``export_energy_l1_kwh`` .. an electricity meter's import / export
    register of one phase.
    """

    energy_kwh: float | None = None
    cooling_energy_kwh: float | None = None
    export_energy_kwh: float | None = None
    volume_m3: float | None = None
    flow_temperature_c: float | None = None
    return_temperature_c: float | None = None
    power_kw: float | None = None
    power_l1_kw: float | None = None
    power_l2_kw: float | None = None
    power_l3_kw: float | None = None
    energy_l1_kwh: float | None = None
    energy_l2_kwh: float | None = None
    energy_l3_kwh: float | None = None
    export_energy_l1_kwh: float | None = None
    export_energy_l2_kwh: float | None = None
    export_energy_l3_kwh: float | None = None
    volume_flow_m3h: float | None = None
    hca_units: float | None = None
    meter_datetime: str | None = None


class DecodedTelegram(_Frozen):
    """The outcome of decoding one telegram: values, or a failure with its reason.

    A failure can still carry the header (who sent it) when only the payload was unreadable.
    """

    ok: bool
    failure: DecodeFailure | None = None
    reason: str | None = None
    frame: Literal["wired", "wireless"] | None = None
    header: DeviceHeader | None = None
    transport: Transport | None = None
    records: tuple[DataRecord, ...] = ()
    values: MeterValues = MeterValues()
