"""Bits of the ``flags`` columns of meter_consumption, heat_allocation and building hours.

One vocabulary for every stage, so a consumer (balance, billing, the api) can tell from one
integer why a figure is what it is. docs/allocation.md states the rule behind each bit.
"""

from __future__ import annotations

from enum import IntFlag


class Flag(IntFlag):
    ESTIMATED = 1  # the value is not a plain measurement (any of the reasons below)
    GAP_INTERPOLATED = 2  # cumulative register interpolated linearly across missing hours
    NO_DATA = 4  # no reading after the hour: estimated from comparable flats
    REGISTER_BACKWARDS = 8  # register went down and is no rollover: hour counted as 0
    ROLLOVER = 16  # register wrapped around its modulus: counted across the wrap
    BURST = 32  # more pulses than the pipe can carry: the burst is discarded (0)
    TEMP_MISSING = 64  # a temperature was missing: riser neighbours or building average used
    TEMP_OUT_OF_RANGE = 128  # a temperature outside 0-150 °C: treated as missing
    NEGATIVE_DT = 256  # return warmer than flow: no heat delivered, counted as 0
    ABSURD_DT = 512  # ΔT above the plausible maximum: temperatures treated as missing
    CAP_HIT = 1024  # measured heat above the plausibility cap: capped, excess to common
    MIN_CHARGE = 2048  # raised to the minimum charge (vacant or zero-consumption flat)
    REVIEW = 4096  # estimates exceed the allowed share of area: period needs review
    BUILDING_BELOW_FLATS = 8192  # building meter below the sum of flats: scaled down
    CROSSCHECK_FAILED = 16384  # meter's own kWh disagrees with V·k·ΔT beyond its class
    VOLUME_SHARE_FALLBACK = 32768  # no volume at all in the hour (1c): shared by area
    SENSOR_FAULT = 65536  # a sensor pair the heat rests on is faulty (an alert): estimated


# Numba kernels take plain integers.
ESTIMATED = int(Flag.ESTIMATED)
GAP_INTERPOLATED = int(Flag.GAP_INTERPOLATED)
NO_DATA = int(Flag.NO_DATA)
REGISTER_BACKWARDS = int(Flag.REGISTER_BACKWARDS)
ROLLOVER = int(Flag.ROLLOVER)
BURST = int(Flag.BURST)
TEMP_MISSING = int(Flag.TEMP_MISSING)
TEMP_OUT_OF_RANGE = int(Flag.TEMP_OUT_OF_RANGE)
NEGATIVE_DT = int(Flag.NEGATIVE_DT)
ABSURD_DT = int(Flag.ABSURD_DT)
VOLUME_SHARE_FALLBACK = int(Flag.VOLUME_SHARE_FALLBACK)


def describe(flags: int) -> list[str]:
    """Names of the bits set, for people (the explanation trail)."""
    return [f.name.lower() for f in Flag if f.name and flags & f]
