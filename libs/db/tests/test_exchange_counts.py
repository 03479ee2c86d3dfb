"""The continuity model of a meter exchange (balans_db.exchanges.swap_counts): whatever the
module's counter does and whatever the two pulse weights are, the old meter's period ends
at its final register and the new one's starts at its start register, so the consumption
of the two periods adds up to what flowed (docs/provisioning.md, "Meter exchange")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balans_db.exchanges import swap_counts


def _consumption(counts: list[int], weight: Decimal, offset: Decimal) -> Decimal:
    """Register at the last count minus register at the first, in the meter's unit."""
    return (offset + counts[-1] * weight) - (offset + counts[0] * weight)


@pytest.mark.parametrize(
    ("counter_reset", "old_w", "new_w"),
    [
        (False, Decimal("1"), Decimal("1")),  # counter runs on, same meter type
        (True, Decimal("1"), Decimal("1")),  # counter reset at the swap
        (False, Decimal("0.01"), Decimal("0.001")),  # runs on, finer pulse
        (True, Decimal("0.01"), Decimal("0.001")),  # reset and finer pulse
    ],
)
def test_the_two_periods_add_up(counter_reset: bool, old_w: Decimal, new_w: Decimal) -> None:
    """Module counts 1000 -> swap -> 250 more of the new meter's pulses: the old meter
    used its final register minus its first, the new one its pulses since the swap; no
    negative step and nothing lost, and the new register starts at R2."""
    final, start = Decimal(1000) * old_w + Decimal("0"), Decimal("7")
    c = swap_counts(final, start, old_w, new_w, counter_reset=counter_reset)
    assert c.old_count_at_end == 1000
    assert c.new_count_at_start == (0 if counter_reset else 1000)
    after = c.new_count_at_start + 250  # the module's count an hour later
    old_used = _consumption([400, c.old_count_at_end], old_w, Decimal(0))
    new_used = _consumption([c.new_count_at_start, after], new_w, c.new_register_offset)
    assert old_used == 600 * old_w
    assert new_used == 250 * new_w
    assert c.new_register_offset + c.new_count_at_start * new_w == start
    assert c.new_register_offset + after * new_w == start + 250 * new_w


def test_an_old_meter_with_an_offset_and_a_module_count_read_off_the_module() -> None:
    """A meter that itself came from an exchange (offset 12.5 kWh): its final register
    is converted with its offset; a module count read on site overrides the rule."""
    c = swap_counts(
        Decimal("112.5"), Decimal("0"), Decimal("1"), Decimal("1"), Decimal("12.5"),
        module_count=42,
    )  # fmt: skip
    assert c.old_count_at_end == 100
    assert c.new_count_at_start == 42
    assert c.new_register_offset == Decimal(-42)


def test_a_final_register_between_pulses_rounds_to_the_nearest_pulse() -> None:
    assert swap_counts(Decimal("10.0049"), Decimal(0), Decimal("0.01"), Decimal("0.01")) == (
        swap_counts(Decimal("10.00"), Decimal(0), Decimal("0.01"), Decimal("0.01"))
    )
