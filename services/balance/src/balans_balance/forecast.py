"""Month-end forecasts normalised by heating degree-days, and the consumer's leak warning.

Daily use of a heat meter is modelled as ``base + per_hdd x HDD`` (HDD = max(0, 18 °C −
daily mean outdoor temperature)), fitted on the days seen so far; the rest of the month
is forecast with the expected degree-days (measured outdoor temperatures where
``outdoor_temperatures`` has them, else the climate normal). Water, gas and electricity
have no weather term: ``base`` only.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from balans_balance.episodes import runs

FloatArray = npt.NDArray[np.float64]
HDD_BASE_C = 18.0
# Chișinău monthly mean air temperature, °C (climate normal 1991-2020), January first
CHISINAU_NORMAL_C = (-2.3, -0.8, 4.2, 10.8, 16.5, 20.2, 22.3, 21.7, 16.6, 10.5, 4.6, -0.3)


def degree_days(daily_mean_c: FloatArray) -> FloatArray:
    return np.maximum(HDD_BASE_C - daily_mean_c, 0.0)


def normal_daily_mean_c(day: date) -> float:
    return CHISINAU_NORMAL_C[day.month - 1]


@dataclass(frozen=True)
class MonthForecast:
    consumed_to_date: float
    forecast_total: float
    hdd_to_date: float
    hdd_month: float


def month_end(
    daily_use: FloatArray,
    daily_hdd: FloatArray,
    remaining_hdd: FloatArray,
    *,
    days_in_month_so_far: int,
    weather_dependent: bool,
) -> MonthForecast:
    """Forecast from the history ``daily_use``/``daily_hdd`` (the last entries are this
    month's ``days_in_month_so_far`` days) and the degree-days of the days still to come."""
    return month_ends(
        daily_use[None, :],
        daily_hdd,
        remaining_hdd,
        days_in_month_so_far=days_in_month_so_far,
        weather_dependent=np.array([weather_dependent]),
    )[0]


def month_ends(
    daily_use: FloatArray,
    daily_hdd: FloatArray,
    remaining_hdd: FloatArray,
    *,
    days_in_month_so_far: int,
    weather_dependent: npt.NDArray[np.bool_],
) -> list[MonthForecast]:
    """:func:`month_end` of each row of ``daily_use`` [meter, day] (``weather_dependent``
    per row). A row without a missing day (every row, when the days are sums of hours)
    is fitted on the same days' degree-days as the others, so its mean, sums and rest of
    the month are reckoned for all such rows at once: numpy reduces each row of a 2-D
    array as it reduces a 1-D one, so the figures have the same bits; only the weather
    fit (``polyfit``) is per row."""
    rows = daily_use.shape[0]
    complete = np.asarray(~np.isnan(daily_use).any(axis=1))
    sums = daily_use.sum(axis=1)
    means = daily_use.mean(axis=1) if daily_use.shape[1] else sums
    hdd_spread, hdd_sum = (np.ptp(daily_hdd), daily_hdd.sum()) if daily_hdd.size else (0, 0)
    base, per_hdd = np.zeros(rows), np.zeros(rows)
    for r in range(rows):
        if not complete[r]:
            base[r], per_hdd[r] = _weather_fit(daily_use[r], daily_hdd, weather_dependent[r])
            continue
        base[r] = means[r] if daily_hdd.size else 0.0
        if weather_dependent[r] and daily_hdd.size >= 5 and hdd_spread > 1.0:
            slope, intercept = (float(v) for v in np.polyfit(daily_hdd, daily_use[r], 1))
            if not slope < 0:  # else use does not rise with cold: no weather term
                base[r], per_hdd[r] = intercept, slope
        elif weather_dependent[r] and daily_hdd.size and hdd_sum > 0:
            base[r], per_hdd[r] = 0.0, float(sums[r] / hdd_sum)
    so_far = days_in_month_so_far
    this_month = daily_use[:, -so_far:] if so_far else daily_use[:, :0]
    to_date = np.nansum(this_month, axis=1)
    rest = np.maximum(base[:, None] + per_hdd[:, None] * remaining_hdd[None, :], 0.0).sum(axis=1)
    month_hdd = daily_hdd[-so_far:] if so_far else daily_hdd[:0]
    hdd_to_date = float(month_hdd.sum())
    hdd_month = float(month_hdd.sum() + remaining_hdd.sum())
    return [
        MonthForecast(
            consumed_to_date=float(to_date[r]),
            forecast_total=float(to_date[r]) + float(rest[r]),
            hdd_to_date=hdd_to_date,
            hdd_month=hdd_month,
        )
        for r in range(rows)
    ]


def _weather_fit(
    daily_use: FloatArray, daily_hdd: FloatArray, weather_dependent: bool
) -> tuple[float, float]:
    """(base, per_hdd) of one meter's known days."""
    known = ~np.isnan(daily_use)
    use, hdd = daily_use[known], daily_hdd[known]
    base, per_hdd = float(np.mean(use)) if use.size else 0.0, 0.0
    if weather_dependent and use.size >= 5 and np.ptp(hdd) > 1.0:
        per_hdd, base = (float(v) for v in np.polyfit(hdd, use, 1))
        if per_hdd < 0:  # use does not rise with cold: no weather term
            base, per_hdd = float(np.mean(use)), 0.0
    elif weather_dependent and use.size and hdd.sum() > 0:
        base, per_hdd = 0.0, float(use.sum() / hdd.sum())
    return base, per_hdd


def remaining_days(today: date) -> list[date]:
    """The days of ``today``'s month after ``today``."""
    last = calendar.monthrange(today.year, today.month)[1]
    return [today.replace(day=d) for d in range(today.day + 1, last + 1)]


def continuous_night_flow(
    hourly_use: FloatArray, night: npt.NDArray[np.bool_], nights: int = 3
) -> int | None:
    """Consumer leak warning: index of the hour ending the ``nights``-th consecutive night
    during which the meter never stood still (a dripping tap or a running cistern keeps
    a water meter turning all night). None if there is no such run."""
    spans = runs(night)
    if not spans:
        return None
    use = hourly_use[np.flatnonzero(night)]  # the nights' hours, night after night
    offsets = np.concatenate(([0], np.cumsum([j - i for i, j in spans])[:-1]))
    known = np.add.reduceat((~np.isnan(use)).astype(np.int64), offsets)
    turning = np.add.reduceat((use > 0).astype(np.int64), offsets)  # NaN is not > 0
    flowing_nights = ((known >= 4) & (turning == known)).tolist()
    run = 0
    for (_, j), flowing in zip(spans, flowing_nights, strict=True):
        run = run + 1 if flowing else 0
        if run >= nights:
            return j - 1
    return None
