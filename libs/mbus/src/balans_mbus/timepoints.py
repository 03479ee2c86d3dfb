"""EN 13757-3 annex A, data type F (CP32, date and time), decoded here instead of by
pymbusparser.

pymbusparser 0.5.3 takes day 31 of a type F value for the periodic marker "every day"
(and day 0, which is that marker, for a real day), and ignores the "time invalid" bit.
Type G (date only) it reads right, so only type F is replaced.

Bit layout (1 = least significant bit of the first byte):

| bits | field |
|---|---|
| 1-6 | minute, 0-59; 63 = every minute |
| 8 | IV: time invalid |
| 9-13 | hour, 0-23; 31 = every hour |
| 14-15 | hundred years (HY) |
| 16 | SU: summer time |
| 17-21 | day, 1-31; 0 = every day |
| 22-24, 29-32 | year, 0-99 (low three bits, high four bits); 127 = every year |
| 25-28 | month, 1-12; 15 = every month |

A periodic value ("every ...") is written with ``*`` in place of the repeating field,
e.g. ``2023-12-*T06:00:00`` for 06:00 on every day of December 2023.
"""

from __future__ import annotations

from datetime import datetime

TYPE_F_BYTES = 4
_EVERY_MINUTE, _EVERY_HOUR, _EVERY_DAY, _EVERY_MONTH, _EVERY_YEAR = 63, 31, 0, 15, 127
_CENTURY_BREAK = 81  # HY = 0: years 81-99 are 1981-1999, 0-80 are 2000-2080


class TimePointError(ValueError):
    """A type F value that names no time (a field outside its range, 31 February...)."""


def _year(two_digits: int, hundreds: int) -> int:
    year = 1900 + 100 * hundreds + two_digits
    return year + 100 if hundreds == 0 and two_digits < _CENTURY_BREAK else year


def _field(value: int, every: int, low: int, high: int, what: str) -> int | None:
    """The field's value, ``None`` for the "every" marker; raises when out of range."""
    if value == every:
        return None
    if not low <= value <= high:
        raise TimePointError(f"{what} {value} outside {low}..{high}")
    return value


def _text(value: int | None, width: int) -> str:
    return "*" if value is None else str(value).zfill(width)


def decode_type_f(data: bytes) -> str | None:
    """The ISO-8601 local time a type F value names; ``None`` when it is marked invalid.

    Raises :class:`TimePointError` for a value that is not a time.
    """
    if len(data) != TYPE_F_BYTES:
        raise TimePointError(f"type F needs {TYPE_F_BYTES} bytes, got {len(data)}")
    if data[0] & 0x80:
        return None
    minute = _field(data[0] & 0x3F, _EVERY_MINUTE, 0, 59, "minute")
    hour = _field(data[1] & 0x1F, _EVERY_HOUR, 0, 23, "hour")
    day = _field(data[2] & 0x1F, _EVERY_DAY, 1, 31, "day")
    month = _field(data[3] & 0x0F, _EVERY_MONTH, 1, 12, "month")
    two_digits = _field((data[2] >> 5) | (data[3] >> 4) << 3, _EVERY_YEAR, 0, 99, "year")
    year = None if two_digits is None else _year(two_digits, (data[1] >> 5) & 0x03)
    if year is not None and month is not None and day is not None:
        try:
            datetime(year, month, day)
        except ValueError as exc:
            raise TimePointError(f"{year}-{month}-{day}: {exc}") from exc
    return (
        f"{_text(year, 4)}-{_text(month, 2)}-{_text(day, 2)}T{_text(hour, 2)}:{_text(minute, 2)}:00"
    )
