"""Which buildings' newest registers are worth reading: not a catch-up's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from balans_allocation.recent import CATCH_UP, RECENT, worth_reading

H = timedelta(hours=1)
T = datetime(2026, 11, 1, tzinfo=UTC)


def test_an_hourly_event_reads_them() -> None:
    assert worth_reading(T, T, T)
    assert worth_reading(T, None, T + H)
    assert worth_reading(T, T, None)  # the span not known: as before


def test_events_reaching_the_catch_up_span_do_not() -> None:
    """Four registers per channel cover an event of two hours and its anchor; a span of
    ``RECENT`` hours or more past the earlier of the first hour and the watermark needs
    more of them."""
    assert CATCH_UP == RECENT * H
    assert worth_reading(T, T, T + CATCH_UP - H)
    assert not worth_reading(T, T, T + CATCH_UP)
    assert not worth_reading(T, None, T + 6 * H)


def test_a_watermark_behind_the_first_hour_counts() -> None:
    """Hours since the watermark are computed too: a watermark far behind makes it a
    catch-up even for a one-hour event."""
    assert not worth_reading(T, T - 5 * H, T)
    assert worth_reading(T, T + 3 * H, T + 3 * H)  # a late event behind the watermark
