"""Telegrams built from EN 13757-3 / OMS definitions: the four failure classes of issue 21
(type F day 31, unscaled reals, plain-text VIF with VIFE, encrypted long-header compact
frames) and water, electricity, gas and heat meters whose units must come out right."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balans_mbus.compact import FormatCache
from balans_mbus.conformance import CHECKED_QUANTITIES, close
from balans_mbus.crc import crc16_en13757
from balans_mbus.decoder import decode_telegram
from balans_mbus.model import DecodedTelegram, DecodeFailure
from balans_mbus.timepoints import decode_type_f

from .standard_cases import KEY, StandardCase, compact_pair, standard_cases
from .telegrams import (
    BCD8,
    CI_LONG,
    CI_LONG_COMPACT,
    ELECTRICITY,
    HEAT,
    IDLE_FILLER,
    INT16,
    INT32,
    PHASE,
    REAL32,
    VIF_DATE,
    VIF_DATETIME,
    VIF_HCA,
    VIFE_ACCUMULATE_NEGATIVE,
    VIFE_ACCUMULATE_POSITIVE,
    VIFE_COMBINABLE_EXTENSION,
    VIFE_CORRECTION_1E_2,
    WATER,
    Meter,
    bcd,
    compact_payload,
    dif_header,
    integer,
    long_frame,
    plain_text_vif,
    real32,
    record,
    short_compact_frame,
    short_frame,
    type_f,
    type_g,
    vif,
    vif_header,
)

HEAT_METER = Meter("KAM", "12345678", 0x1B, HEAT)


def _decode(records: bytes, meter: Meter = HEAT_METER) -> DecodedTelegram:
    decoded = decode_telegram(short_frame(meter, records))
    assert decoded.ok, decoded.reason
    return decoded


def _volume(litres: int) -> bytes:
    return record(dif_header(BCD8), vif_header(vif("m3", -3)), bcd(litres, BCD8))


# --- 1. type F date and time (EN 13757-3 annex A) -----------------------------------


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, month, day, 23, 59) for month, day in ((1, 31), (3, 31), (12, 31))]
    + [datetime(2024, 2, 29, 0, 0), datetime(2026, 4, 30, 12, 5), datetime(2026, 5, 1, 6, 0)],
    ids=str,
)
def test_type_f_date_and_time_reads_every_day_of_the_month(moment: datetime) -> None:
    """Day 31 is the 31st (not "every day"); the type G date of the same day agrees."""
    records = record(dif_header(INT32), vif_header(VIF_DATETIME), type_f(moment)) + record(
        dif_header(INT16), vif_header(VIF_DATE), type_g(moment.date())
    )
    decoded = _decode(records)
    assert [item.value for item in decoded.records] == [
        moment.isoformat(),
        moment.date().isoformat(),
    ]
    assert decoded.values.meter_datetime == moment.isoformat()


def test_type_f_periodic_and_invalid_values() -> None:
    """Day 0 is "every day" (written *), the IV bit makes the time no value, and an
    impossible date is reported while the records around it still count."""
    every_day = type_f(datetime(2026, 12, 1, 6, 0), every_day=True)
    invalid = type_f(datetime(2026, 12, 1, 6, 0), invalid=True)
    impossible = bytes([0x00, 0x06, 0x1F, 0x02 | (26 >> 3) << 4])  # 31 February
    records = (
        record(dif_header(INT32), vif_header(VIF_DATETIME), every_day)
        + record(dif_header(INT32, storage=1), vif_header(VIF_DATETIME), invalid)
        + record(dif_header(INT32, storage=2), vif_header(VIF_DATETIME), impossible)
        + _volume(1500)
    )
    decoded = _decode(records)
    assert [item.value for item in decoded.records] == ["2026-12-*T06:00:00", None, 1.5]
    assert decoded.values.volume_m3 == 1.5
    assert decoded.reason is not None
    assert "day is out of range for month" in decoded.reason


@settings(max_examples=500, deadline=None)
@given(st.datetimes(datetime(1981, 1, 1), datetime(2080, 12, 31, 23, 59)))
def test_type_f_round_trip(moment: datetime) -> None:
    """Every minute of 1981-2080 written as type F reads back as itself."""
    moment = moment.replace(second=0, microsecond=0)
    assert decode_type_f(type_f(moment)) == moment.isoformat()


# --- 2. 32-bit reals scaled by their VIF's exponent ---------------------------------


@pytest.mark.parametrize(
    ("unit", "exponent", "raw", "record_value", "name", "normalised"),
    [
        ("W", 0, 1500.0, 1500.0, "power_kw", 1.5),  # W
        ("W", 3, 1.5, 1500.0, "power_kw", 1.5),  # kW
        ("W", -1, 15000.0, 1500.0, "power_kw", 1.5),  # 0.1 W
        ("m3/h", -3, 1500.0, 1.5, "volume_flow_m3h", 1.5),  # l/h
        ("m3/h", 0, 1.5, 1.5, "volume_flow_m3h", 1.5),  # m3/h
        ("m3", -3, 12345.5, 12.3455, "volume_m3", 12.3455),  # litres
        ("Wh", 3, 123.25, 123250.0, "energy_kwh", 123.25),  # kWh
        ("flow °C", -1, 705.0, 70.5, "flow_temperature_c", 70.5),  # 0.1 °C
    ],
)
def test_real_values_are_scaled_by_the_vif_exponent(
    unit: str, exponent: int, raw: float, record_value: float, name: str, normalised: float
) -> None:
    """A 32-bit real decodes like an integer of the same VIF: in the VIF's base unit."""
    header = vif_header(vif(unit, exponent))
    decoded = _decode(record(dif_header(REAL32), header, real32(raw)))
    (only,) = decoded.records
    assert only.value == pytest.approx(record_value)
    assert (only.name, only.si_value) == (name, pytest.approx(normalised))


def test_real_and_integer_of_the_same_vif_agree() -> None:
    """Volume flow 10^-3 m3/h: 845 as integer and 845.0 as real are the same 0.845 m3/h."""
    header = vif_header(vif("m3/h", -3))
    as_integer = _decode(record(dif_header(INT32), header, integer(845, INT32)))
    as_real = _decode(record(dif_header(REAL32), header, real32(845.0)))
    assert as_real.values.volume_flow_m3h == as_integer.values.volume_flow_m3h == 0.845


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["Wh", "m3", "W", "m3/h"]),
    st.integers(-3, 0),
    st.floats(min_value=-1e6, max_value=1e6, width=32, allow_nan=False),
)
def test_real_equals_its_value_times_ten_to_the_exponent(
    unit: str, exponent: int, raw: float
) -> None:
    """Any single under any exponent of these VIFs reads as raw x 10^exponent."""
    decoded = _decode(record(dif_header(REAL32), vif_header(vif(unit, exponent)), real32(raw)))
    (only,) = decoded.records
    assert only.value == pytest.approx(raw * 10.0**exponent, rel=1e-6, abs=1e-9)


# --- 3. plain-text VIF followed by VIFEs --------------------------------------------


@pytest.mark.parametrize(
    ("vib", "raw", "value"),
    [
        (plain_text_vif("%RH", VIFE_CORRECTION_1E_2), 3396, 33.96),  # 0xFC, text, VIFE
        (plain_text_vif("%RH"), 3396, 3396.0),  # 0x7C, text only
    ],
    ids=["with-vife", "without-vife"],
)
def test_plain_text_vif_and_the_records_after_it(vib: bytes, raw: int, value: float) -> None:
    """The unit text follows the VIF, its VIFEs follow the text; later records still decode."""
    records = (
        _volume(2500)
        + record(dif_header(INT16), vib, integer(raw, INT16))
        + record(dif_header(INT16), vif_header(vif("flow °C", -1)), integer(215, INT16))
        + record(dif_header(INT16), vif_header(VIF_HCA), integer(42, INT16))
    )
    decoded = _decode(records)
    assert decoded.reason is None
    text = decoded.records[1]
    assert (text.unit, text.value) == ("%RH", pytest.approx(value))
    assert decoded.values.volume_m3 == 2.5
    assert decoded.values.flow_temperature_c == 21.5
    assert decoded.values.hca_units == 42


def test_plain_text_header_is_part_of_the_compact_format() -> None:
    """A full frame with a plain-text record teaches a format a compact frame can use."""
    text_record = record(dif_header(INT16), plain_text_vif("%RH", VIFE_CORRECTION_1E_2), b"")
    headers = dif_header(BCD8) + vif_header(vif("m3", -3)) + text_record
    data = bcd(2500, BCD8) + integer(3396, INT16)
    full = _volume(2500) + text_record + integer(3396, INT16)
    formats = FormatCache()
    assert decode_telegram(short_frame(HEAT_METER, full), formats=formats).ok
    compact_frame = short_compact_frame(HEAT_METER, compact_payload(headers, full, data))
    compact = decode_telegram(compact_frame, None, formats)
    assert compact.ok, compact.reason
    assert compact.records[1].value == pytest.approx(33.96)


# --- 4. encrypted compact frame with a long header ----------------------------------

WATER_METER = Meter("ZRI", "87654321", 0x33, WATER)


@pytest.mark.parametrize("fillers", [2, 3, 5])
def test_encrypted_long_header_compact_frame_reads_its_signature_after_the_fillers(
    fillers: int,
) -> None:
    """After decryption 2F 2F (and maybe more fillers) precede the format signature."""
    full, compact, expected = compact_pair(WATER_METER, fillers)
    formats = FormatCache()
    first = decode_telegram(full, KEY, formats)
    assert first.ok, first.reason
    second = decode_telegram(compact, KEY, formats)
    assert second.ok, second.reason
    assert second.transport is not None
    assert second.transport.ci == CI_LONG_COMPACT
    assert second.transport.decrypted
    assert second.header is not None
    assert (second.header.manufacturer, second.header.id) == ("ZRI", "87654321")
    assert second.values == first.values
    assert second.values.volume_m3 == expected["total_volume_m3"]
    assert second.values.meter_datetime == "2026-01-31T23:45:00"


def test_encrypted_compact_frame_without_its_format_names_the_signature() -> None:
    """Alone, the compact frame is unknown_format with the real signature, not 0x2F2F."""
    _, compact, _ = compact_pair(WATER_METER)
    decoded = decode_telegram(compact, KEY)
    assert decoded.failure is DecodeFailure.UNKNOWN_FORMAT
    assert decoded.transport is not None
    assert decoded.transport.compact_format_signature != 0x2F2F
    assert decode_telegram(compact).failure is DecodeFailure.KEY_MISSING


def test_signature_beginning_with_0x2f_is_not_taken_for_a_filler() -> None:
    """A format whose signature's first byte is 0x2F still decodes after the 2F 2F check."""
    for litres_exponent in range(-6, 2):
        for storage in range(64):
            headers = dif_header(BCD8, storage=storage) + vif_header(vif("m3", litres_exponent))
            if crc16_en13757(headers) & 0xFF == IDLE_FILLER:
                break
        else:
            continue
        break
    else:
        pytest.fail("no header with a signature starting 0x2F found")
    data = bcd(777, BCD8)
    records = headers + data
    full = long_frame(WATER_METER, CI_LONG, b"\x2f\x2f" + records, access=1, key=KEY)
    plain = b"\x2f\x2f" + compact_payload(headers, records, data)
    compact = long_frame(WATER_METER, CI_LONG_COMPACT, plain, access=2, key=KEY)
    formats = FormatCache()
    assert decode_telegram(full, KEY, formats).ok
    decoded = decode_telegram(compact, KEY, formats)
    assert decoded.ok, decoded.reason
    assert decoded.transport is not None
    assert decoded.transport.compact_format_signature == crc16_en13757(headers)


# --- water, electricity, gas and heat meters ----------------------------------------


@pytest.mark.parametrize("case", standard_cases(), ids=lambda case: case.case_id)
def test_meter_values_in_their_units(case: StandardCase) -> None:
    """Each medium's registers come out in balans units (m3, kWh, kW, m3/h, °C); the one
    case without its key is refused as key_missing."""
    formats = FormatCache()
    decoded = DecodedTelegram(ok=False)
    for telegram in case.telegrams:
        decoded = decode_telegram(telegram, case.key, formats)
    assert decoded.header is not None
    assert decoded.header.device_type == case.device_type
    if not case.standard:
        assert decoded.failure is DecodeFailure.KEY_MISSING
        return
    assert decoded.ok, decoded.reason
    assert decoded.reason is None
    for key, expected in case.expected.items():
        got = getattr(decoded.values, CHECKED_QUANTITIES[key])
        assert close(expected, got), (key, expected, got)
    assert decoded.values.meter_datetime == "2026-01-31T23:45:00"
    units = {record.name: record.unit for record in decoded.records if record.name}
    assert units == {name: RECORD_UNITS[name] for name in units}


# The unit each named record keeps from its VIF (EN 13757-3 table 10, as pymbusparser names it)
RECORD_UNITS = {
    "energy_kwh": "W.h",
    "export_energy_kwh": "W.h",
    "volume_m3": "m3",
    "volume_flow_m3h": "m3.h-1",
    "power_kw": "W",
    "power_l1_kw": "W",
    "power_l2_kw": "W",
    "power_l3_kw": "W",
    "flow_temperature_c": "Cel",
    "return_temperature_c": "Cel",
}


def test_electricity_records_keep_their_standard_units() -> None:
    """The records say Wh and W; the phase is in the quantity; export is not heat's cooling."""
    (case,) = [case for case in standard_cases() if case.case_id == "electricity#0"]
    decoded = decode_telegram(case.telegrams[0], KEY)
    named = {record.name: record for record in decoded.records if record.name}
    assert named["energy_kwh"].unit == "W.h"
    assert named["energy_kwh"].value == 123_456_780.0
    assert named["export_energy_kwh"].quantity.endswith("Accumulation only if value is negative")
    assert named["power_l2_kw"].unit == "W"
    assert named["power_l2_kw"].quantity == "Power / At phase L2"
    assert decoded.values.cooling_energy_kwh is None


def test_electricity_registers_per_phase() -> None:
    """Energy with the phase VIFE (0xFC 0x01..0x03): import plain or A+, export A-; a meter
    without a total import register counts the sum of its phases."""
    meter = Meter("EMH", "40000002", 0x02, ELECTRICITY)
    records = b""
    for phase, sign, raw in (
        ("L1", (), 1_000),
        ("L2", (VIFE_ACCUMULATE_POSITIVE,), 2_005),
        ("L3", (), 3_010),
        ("L1", (VIFE_ACCUMULATE_NEGATIVE,), 40),
    ):
        chain = (*sign, VIFE_COMBINABLE_EXTENSION, PHASE[phase])
        records += record(dif_header(INT32), vif_header(vif("Wh", 1), *chain), integer(raw, INT32))
    values = _decode(records, meter).values
    assert (values.energy_l1_kwh, values.energy_l2_kwh, values.energy_l3_kwh) == (10, 20.05, 30.1)
    assert values.export_energy_l1_kwh == 0.4
    assert values.energy_kwh == 60.15  # no total register: the phases' sum, exactly
    assert values.export_energy_kwh is None
    # the same records of a heat meter are no electricity phases
    assert _decode(records).values.energy_l1_kwh is None


def test_signed_energy_of_a_heat_meter_is_heating_and_cooling() -> None:
    """The same VIFE 0x3C on a heat meter is cooling energy, not export."""
    records = record(
        dif_header(INT32), vif_header(vif("Wh", 3), 0x3C), integer(321, INT32)
    ) + record(dif_header(INT32), vif_header(vif("Wh", 3), 0x3B), integer(654, INT32))
    decoded = _decode(records)
    assert decoded.values.cooling_energy_kwh == 321
    assert decoded.values.energy_kwh == 654
    assert decoded.values.export_energy_kwh is None


def test_date_only_records_of_every_month_end() -> None:
    """Type G dates (right before the fix too) keep decoding the 31st as the 31st."""
    decoded = _decode(record(dif_header(INT16), vif_header(VIF_DATE), type_g(date(2026, 10, 31))))
    assert decoded.records[0].value == "2026-10-31"
