"""Month-end forecasts by degree-days, and the consumer's continuous-night-flow warning."""

from __future__ import annotations

from datetime import date

import numpy as np

from balans_balance.forecast import (
    continuous_night_flow,
    degree_days,
    month_end,
    remaining_days,
)


def test_heat_forecast_follows_degree_days() -> None:
    """Use = 5 + 2 x HDD: the rest of the month is forecast from its degree-days."""
    hdd = degree_days(np.array([0.0, 2, 4, -1, 3, 5, 1, 0, 2, 6]))
    use = 5 + 2 * hdd
    rest_hdd = degree_days(np.array([-5.0, -5.0]))  # a cold snap ahead: 23 HDD a day
    f = month_end(use, hdd, rest_hdd, days_in_month_so_far=10, weather_dependent=True)
    assert f.consumed_to_date == use.sum()
    assert abs(f.forecast_total - (use.sum() + 2 * (5 + 2 * 23))) < 1e-6
    assert f.hdd_month == hdd.sum() + 46


def test_water_forecast_has_no_weather_term() -> None:
    """Water: the mean daily use continues whatever the weather."""
    use = np.array([1.0, 1.2, 0.8, 1.0])
    f = month_end(
        use, np.zeros(4), np.array([20.0, 20.0]), days_in_month_so_far=4, weather_dependent=False
    )
    assert abs(f.forecast_total - (4.0 + 2.0)) < 1e-9


def test_remaining_days() -> None:
    """Days after today within its month."""
    assert remaining_days(date(2026, 2, 26)) == [date(2026, 2, 27), date(2026, 2, 28)]


def test_continuous_night_flow() -> None:
    """Three nights without a still hour warn; ordinary nights with still hours do not."""
    hours = 24 * 6
    night = (np.arange(hours) % 24) < 5
    normal = np.where(night, 0.0, 0.02)
    normal[np.arange(hours) % 24 == 2] = 0.01  # a night-time toilet flush
    assert continuous_night_flow(normal, night) is None
    leaking = normal + 0.004
    warned = continuous_night_flow(leaking, night)
    assert warned == 24 * 2 + 4
