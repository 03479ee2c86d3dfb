"""The leak, unauthorised-connection and faulty-balance-meter alerts of a group.

The imbalance of a group (balance meter − Σ subscribers) is judged as a share of the
balance meter (so cold snaps and weekends, which scale both, stay inside the band),
smoothed over a few hours, against a band learned day and night separately
(:mod:`balans_balance.bands`): that is the series operators see. The group's own
faults are found as *changes* of the balance meter's reading beyond what the
subscribers explain (:mod:`balans_balance.detectors.changes`), after the caller has
added back what named member meters missed (:mod:`balans_balance.detectors.meter_faults`):
a constant -> leak after the balance meter; a share of the subscribers' use ->
unauthorised connection before the meters; a ramp, or a reading below the
subscribers' -> faulty balance meter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from balans_balance.bands import MAD_TO_SIGMA, Band, learn_band
from balans_balance.detectors.changes import (
    LEVEL_SHAPES,
    Change,
    ChangeSettings,
    Window,
    fit_changes,
    window_shape,
)
from balans_balance.episodes import Episode
from balans_balance.medians import median, nanmedian

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ExcessSettings:
    smooth_hours: int = 24
    band_days: int = 14
    band_k: float = 5.0
    min_scale: float = 0.002  # share of the balance meter: the band is never narrower
    min_run: int = 12
    quiet_to_close: int = 12
    fit_days: int = 14  # days the expected balance is learned from
    min_fit_days: int = 7
    # the smallest group faults reported, as a share of the balance meter's reading
    min_leak_share: float = 0.012
    min_tap_share: float = 0.015
    min_under_read: float = 0.03
    min_drift: float = 0.03  # the balance meter's error reached at the end of a ramp
    # the building's return moved against its members' returns (mixing): by at least
    # this many °C and this many times its hourly noise before the change
    return_shift_k: float = 0.15
    return_shift_z: float = 5.0
    return_ref_hours: int = 168
    settle_gap: int = 12  # hours between a drift's ramp and the level it settles at
    # changes of one kind beginning within this many hours of each other while the first
    # runs are one fault's pieces (``with_slots``): the peers date a fault to its day
    together_hours: int = 24
    # another shape fits a change within this (rise of the residual SS over a block's
    # noise variance), or within this share of what the change itself explains: the
    # data cannot tell them apart, the finding says so. The share: no shape is exact (a
    # leak follows the network's pressure, a tapped-in consumer its own load, not the
    # flats'), so on a large change a rise of a percent or two is the shapes' own misfit
    ambiguous_z2: float = 25.0
    ambiguous_share: float = 0.02
    # days before a use-shaped change its daily levels are fitted with (``level_days``)
    daily_ref_days: int = 7
    # how much better (F, in the levels' residual variance) the days' use must fit them
    # than a constant for the days to rule a leak out
    daily_f: float = 4.0
    changes: ChangeSettings = field(default_factory=ChangeSettings)


@dataclass(frozen=True)
class GroupSeries:
    """Hourly series of one group, aligned on the same hours."""

    balance: FloatArray
    subscribers: FloatArray  # in the balance meter's unit
    night: npt.NDArray[np.bool_]
    members: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # [member, hour]
    tamper: npt.NDArray[np.bool_] | None = None  # [member, hour]: the module's tamper flag
    # kWh per m³ of coolant by the building's sensor pair, for heat groups: the changes
    # are fitted in coolant volume, where a leak (water lost at the supply temperature)
    # is a constant *flow* whose heat follows the building's ΔT. Where the members
    # meter volume, ``subscribers`` is their volume priced with it (coolant mass balance)
    heat_per_m3: FloatArray | None = None
    # [driver, hour]: what moves the balance meter's own unmetered part besides the
    # subscribers' use (for heat the supply temperature: pipe losses, common areas)
    drivers: FloatArray | None = None
    # ΔT (°C) of the balance meter's sensor pair, and the flow-weighted ΔT of the
    # members' own pairs (risers): the returning water as the members see it. Where
    # both are known, a change of the return temperature tells a consumer returning its
    # water at another ΔT from water lost or drawn off (which leaves it as it was)
    balance_dt: FloatArray | None = None
    members_dt: FloatArray | None = None


@dataclass(frozen=True)
class Diagnosis:
    episode: Episode
    kind: str
    evidence: dict[str, Any]
    sign: int = 1  # +1: the balance meter shows more than the subscribers' band allows
    # what the change adds to the balance meter's reading, hourly in its unit (zero
    # outside the change): the members' confirmation accounts for it
    contribution: FloatArray = field(default_factory=lambda: np.zeros(0))
    # which of the group's concurrent faults of this kind it is (``with_slots``): 0 for
    # the first; a fault of the same kind beginning while another runs (or within
    # ``quiet_to_close`` of its end) is a cause of its own, with its own alert
    slot: int = 0


def _rolling_sum(a: FloatArray, w: int) -> FloatArray:
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(a))])
    out = c[w:] - c[:-w]
    return np.concatenate([np.full(w - 1, np.nan), out])


@dataclass(frozen=True)
class Imbalance:
    """The group's imbalance against what its balance meter should read."""

    expected: FloatArray  # the balance meter's expected reading, hourly
    share: FloatArray  # (balance − expected) / balance, over smooth_hours
    band: Band  # of ``share``, day and night apart

    def excess(self, s: GroupSeries) -> FloatArray:
        """What the balance meter read beyond the expected reading and the band's median."""
        return s.balance - self.expected - np.nan_to_num(self.band.median) * s.balance


def _design(s: GroupSeries) -> FloatArray:
    """[hour, regressor]: 1, the subscribers' use and the drivers (NaN-free)."""
    columns = [np.ones(s.balance.size), s.subscribers]
    if s.drivers is not None:
        columns.extend(s.drivers)
    x = np.column_stack(columns)
    fill = nanmedian(x, axis=0)
    return np.where(np.isnan(x), np.nan_to_num(fill)[None, :], x)


def _robust_fit(x: FloatArray, y: FloatArray) -> FloatArray:
    """Least squares, repeated once without the rows beyond 3 robust sigmas."""
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    r = y - x @ coef
    off = np.abs(r - median(r))
    keep = off <= 3 * max(MAD_TO_SIGMA * median(off), 1e-9)
    if keep.sum() >= x.shape[1] + 3:
        coef = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
    return np.asarray(coef)


def expected_balance(
    s: GroupSeries,
    usable: npt.NDArray[np.bool_],
    cfg: ExcessSettings,
    fits: dict[tuple[int, ...], FloatArray] | None = None,
) -> FloatArray:
    """The balance meter's expected reading, a + b·subscribers (+ c·driver), learned
    like a band: each day from the 24-hour sums of the ``fit_days`` usable days before
    it (robust least squares). Losses and common areas that follow the weather are then
    expected, not imbalance, so a fault of 1 % of the balance stands out. With too few
    usable days the last fit stays (a lasting fault is not learned); before the first
    fit the first fit is used. ``fits`` keeps the fits by the days they were made from,
    for another call on the same series (a day whose usable days did not change)."""
    fits = {} if fits is None else fits
    x = _design(s)
    n, k = x.shape
    known = ~np.isnan(s.balance) & ~np.isnan(s.subscribers)
    if s.drivers is not None:
        known &= ~np.isnan(s.drivers).any(axis=0)
    first = n % 24
    days = n // 24
    fit_ok = np.asarray((known & usable)[first:].reshape(days, 24).all(axis=1))
    xd = x[first:].reshape(days, 24, k).sum(axis=1)
    yd = np.nan_to_num(s.balance[first:]).reshape(days, 24).sum(axis=1)
    coefs: list[FloatArray | None] = [None] * days
    current = None
    ok_days = np.flatnonzero(fit_ok)
    for day, ok_before in enumerate(np.searchsorted(ok_days, np.arange(days)).tolist()):
        past = ok_days[max(0, ok_before - cfg.fit_days) : ok_before]
        if past.size >= max(cfg.min_fit_days, k + 3):
            key = tuple(past.tolist())
            if key not in fits:
                fits[key] = _robust_fit(xd[past], yd[past])
            current = fits[key]
        coefs[day] = current
    if current is None:  # too little history anywhere: the subscribers' usual ratio
        ok = known & (np.nan_to_num(s.subscribers) > 0)
        ratio = float(np.median(s.balance[ok] / s.subscribers[ok])) if ok.any() else 1.0
        return np.asarray(ratio * x[:, 1])
    first_fit = next(c for c in coefs if c is not None)
    per_hour = np.array([c if c is not None else first_fit for c in coefs])
    per_hour = np.concatenate([per_hour[:1].repeat(first, axis=0), per_hour.repeat(24, axis=0)])
    return np.asarray((x * per_hour).sum(axis=1))


def share_series(s: GroupSeries, expected: FloatArray, cfg: ExcessSettings) -> FloatArray:
    """Smoothed balance − expected as a share of the balance meter (NaN where ~0)."""
    known = ~np.isnan(s.balance) & ~np.isnan(s.subscribers)
    imbalance = np.where(known, s.balance - expected, 0.0)
    num = _rolling_sum(imbalance, cfg.smooth_hours)
    den = _rolling_sum(np.where(known, s.balance, 0.0), cfg.smooth_hours)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 1e-9, num / den, np.nan)


def imbalance_band(
    s: GroupSeries, cfg: ExcessSettings, faults: npt.NDArray[np.bool_] | None = None
) -> Imbalance:
    """Expected reading, share and band, twice: the second fit leaves out the hours the
    first band found anomalous (and the day before them, the smoothing's lag), so a
    fault is never part of what the balance meter is expected to read. ``faults``
    (hours of the group's diagnosed faults) are left out of both and of the band's
    learning altogether: the band is frozen while the fault lasts, however long."""
    classes = s.night.astype(np.int_)
    clear = np.ones(s.balance.size, dtype=bool) if faults is None else ~faults
    usable = clear
    fits: dict[tuple[int, ...], FloatArray] = {}
    for _ in range(2):
        expected = expected_balance(s, usable, cfg, fits)
        share = share_series(s, expected, cfg)
        band = learn_band(
            share,
            classes,
            window=cfg.band_days * 24,
            k=cfg.band_k,
            min_scale=cfg.min_scale,
            excluded=None if faults is None else faults,
        )
        lagged = _rolling_sum(band.anomalous[::-1].astype(np.float64), cfg.smooth_hours)[::-1]
        usable = clear & ~(band.anomalous | (np.nan_to_num(lagged) > 0))
    return Imbalance(expected, share, band)


def follows_use(flow: FloatArray, use: FloatArray) -> tuple[float, float]:
    """(t-statistic of the slope, share of the mean flow the slope accounts for) of
    ``flow = a + b·use`` by least squares: how clearly the excess follows the use."""
    x = use - use.mean()
    sxx = float(x @ x)
    if flow.size < 4 or sxx <= 0 or abs(float(flow.mean())) < 1e-12:
        return 0.0, 0.0
    slope = float(x @ (flow - flow.mean())) / sxx
    residual = flow - flow.mean() - slope * x
    se = np.sqrt(float(residual @ residual) / (flow.size - 2) / sxx)
    t = slope / se if se > 0 else float(np.copysign(np.inf, slope)) if slope else 0.0
    return float(t), slope * float(use.mean()) / float(flow.mean())


def level_days(cs: ChangeSeries, change: Change, cfg: ExcessSettings) -> bool | None:
    """Do the change's daily sums stay level rather than follow the days' use, or flow
    for a ``scale`` change (None with fewer than 3 whole days)? The same holds for a
    register over-reading by a factor, or a draw of a share of the flow: each day's
    excess follows that day's flow, while a leak's stays level; a leak whose flow
    follows the pressure over the day fits a share of the flow hour by hour as well as
    a constant. The hours alone cannot tell a tapped-in consumer from
    a leak driven by the network's pressure: both are highest at night, with the heating
    load. The days can: a consumer's draw follows each day's heat (its weather), so its
    daily level is proportional to the day's use, while water lost through a hole
    follows the pressure, whatever the weather, and its daily level stays constant.
    Each whole day of the change gets a free level over the baseline's regressors
    (fitted with the ``daily_ref_days`` before it); a constant that fits those levels
    as well as a share of the days' use (within ``daily_f`` of the levels' scatter)
    leaves a leak as likely as a draw."""
    first = change.start + (-change.start) % 24
    days = (change.end - first) // 24
    if days < 3:
        return None
    lo = max(0, first - cfg.daily_ref_days * 24)
    hours = slice(lo, first + days * 24)
    day_of = np.full(hours.stop - lo, -1)
    day_of[first - lo :] = np.repeat(np.arange(days), 24)
    levels = (day_of[:, None] == np.arange(days)[None, :]) * cs.weights["step"][hours, None]
    coef = np.linalg.lstsq(np.column_stack([cs.base[hours], levels]), cs.reading[hours])[0]
    level = coef[-days:]
    use = cs.weights[change.shape][first : first + days * 24].reshape(days, 24).mean(axis=1)
    share = float(level @ use) / float(use @ use) if float(use @ use) > 0 else 0.0
    constant = float(np.sum((level - level.mean()) ** 2))
    shared = float(np.sum((level - share * use) ** 2))
    # the days' use must fit the levels better than a constant by more than the levels'
    # own scatter allows: days whose use hardly varies (quality regulation) cannot tell
    return constant - shared <= cfg.daily_f * shared / (days - 1)


@dataclass(frozen=True)
class ChangeSeries:
    """What the changes are fitted on: the balance meter's reading (as coolant volume
    where the group balances volume), the baseline's regressors and each shape's weight;
    zero at hours whose balance or subscribers are unknown, so they count for nothing."""

    reading: FloatArray
    base: FloatArray  # [hour, regressor]
    weights: dict[str, FloatArray]
    to_balance_unit: FloatArray  # reading -> the balance meter's unit, hourly


def change_series(s: GroupSeries) -> ChangeSeries:
    known = ~np.isnan(s.balance) & ~np.isnan(s.subscribers)
    balance = np.where(known, s.balance, 0.0)
    subs = np.where(known, s.subscribers, 0.0)
    unit = np.ones(balance.size)
    if s.heat_per_m3 is not None:
        # a volume balance (coolant mass): the members' heat is their volume times the
        # building's heat per m³, and a leak or a tapping-in lifts that very ΔT, so it
        # would hide in the baseline. In volume a leak is a constant, a tapped-in
        # consumer draws coolant in proportion to the heat it takes (the building's)
        known &= np.nan_to_num(s.heat_per_m3) > 0
        unit = np.where(known, np.nan_to_num(s.heat_per_m3), 1.0)
        balance = np.where(known, balance, 0.0)
        reading, use = balance / unit, balance
        subs = np.where(known, subs / unit, 0.0)
    else:
        reading, use = balance, subs
    columns = [np.ones(balance.size), subs]
    if s.drivers is not None:
        columns.extend(np.nan_to_num(s.drivers, nan=float(np.nanmedian(s.drivers))))
    base = np.column_stack(columns) * known[:, None]
    weights = {"step": known.astype(np.float64), "use": use, "ramp": reading}
    # a loss growing from nothing (only measured against a ramp: see changes.GROWING_SHAPES)
    weights["grow"] = weights["step"]
    if s.heat_per_m3 is not None:
        # a heat meter off by a constant factor (a drift that stepped or settled), or
        # a draw of a share of the coolant's flow
        weights["scale"] = reading
    return ChangeSeries(reading, base, weights, unit)


def _corrects(change: Change, others: list[Change], same_end: int | None = None) -> bool:
    """Does a negative change only trim a larger positive one it overlaps (two
    overlapping faults, one of which ended, read as a long change and a correction)?
    With ``same_end``: one that also ends within that many hours of it."""
    own = float(np.sum(change.contribution))
    for other in others:
        overlap = min(change.end, other.end) - max(change.start, other.start)
        win = slice(change.start, change.end)
        if same_end is not None and abs(change.end - other.end) > same_end:
            continue
        if overlap > 0 and float(np.sum(other.contribution[win])) > abs(own):
            return True
    return False


def _within_excess(change: Change, others: list[Change], gap: int) -> Change | None:
    """The larger positive level change (a leak, a tapping-in) a drift lies in, from
    within ``gap`` hours before its start to within ``gap`` hours after its end, if any.
    A register's error scales the whole reading whatever the water does; while a larger
    excess runs, the water itself changed, so the ratio of the balance meter to its
    subscribers moving inside it says as much about the water as about the register."""
    return _larger_excess(
        change, others, lambda o: o.start - gap <= change.start and change.end <= o.end + gap
    )


def _larger_excess(
    change: Change, others: list[Change], placed: Callable[[Change], bool]
) -> Change | None:
    """The first of ``others`` that is a positive level change ``placed`` where wanted
    against ``change`` and that adds more over ``change``'s hours than ``change`` does."""
    own = abs(float(np.sum(change.contribution)))
    win = slice(change.start, change.end)
    return next(
        (
            o
            for o in others
            if o.shape in LEVEL_SHAPES
            and o.coef > 0
            and placed(o)
            and float(np.sum(o.contribution[win])) > own
        ),
        None,
    )


def _corrects_drift(
    change: Change, others: list[Change], cfg: ExcessSettings, outer: bool = True
) -> bool:
    """Does a drift of the balance meter lie inside a larger drift of the other sign
    (ramp, scale or settled, itself large enough to be reported and not itself inside
    one)? One register has one error at a time: the inner change is the outer one's
    error moving (a plateau that sagged), part of that one finding, not a fault of its
    own."""
    own = float(np.sum(change.contribution))
    win = slice(change.start, change.end)
    return any(
        o.shape in ("ramp", "scale", "settled")
        and abs(o.coef) >= cfg.min_drift
        and o.coef * change.coef < 0
        and o.start - cfg.settle_gap <= change.start
        and change.end <= o.end + cfg.settle_gap
        and abs(float(np.sum(o.contribution[win]))) > abs(own)
        and not (
            outer and _corrects_drift(o, [c for c in [*others, change] if c is not o], cfg, False)
        )
        for o in others
    )


def _inside_drift(change: Change, others: list[Change], cfg: ExcessSettings) -> bool:
    """Does a positive level change lie inside (within ``settle_gap`` of both ends) a
    larger over-registering drift of the balance meter (ramp, scale or settled, large
    enough to be reported)?"""
    own = float(np.sum(change.contribution))
    win = slice(change.start, change.end)
    return change.coef > 0 and any(
        o.shape in ("ramp", "scale", "settled")
        and o.coef >= cfg.min_drift
        and o.start - cfg.settle_gap <= change.start
        and change.end <= o.end + cfg.settle_gap
        and float(np.sum(o.contribution[win])) > own
        for o in others
    )


def _spans(change: Change, other: Change, gap: int) -> bool:
    """Do two changes begin and end together (within ``gap`` hours each)?"""
    return abs(change.start - other.start) <= gap and abs(change.end - other.end) <= gap


def _leads_into(change: Change, others: list[Change], gap: int) -> bool:
    """Does a drift (a negative one, or any ramp) end within ``gap`` hours of the start
    of a larger positive change? A register's error does not vanish by itself at the
    hour another fault begins: the fit is shaping that fault's edge (its 3-hour blocks,
    a consumer's load coming in)."""
    own = abs(float(np.sum(change.contribution)))
    return any(
        abs(other.start - change.end) <= gap and float(np.sum(other.contribution)) > own
        for other in others
    )


def _rises_into(correction: Change, larger: Change, cfg: ExcessSettings) -> bool:
    """Is ``correction`` a negative level change that begins with the positive change
    ``larger`` (within ``together_hours``), ends ``min_run`` hours or more before it and
    takes less away over its hours than ``larger`` adds: ``larger``'s excess was smaller
    at first and rose where ``correction`` ends?"""
    win = slice(correction.start, correction.end)
    return (
        correction.shape in LEVEL_SHAPES
        and correction.coef < 0 < larger.coef
        and abs(larger.start - correction.start) <= cfg.together_hours
        and larger.end - correction.end >= cfg.min_run
        and float(np.sum(larger.contribution[win])) > abs(float(np.sum(correction.contribution)))
    )


def _rises_within(change: Change, others: list[Change], cfg: ExcessSettings) -> Change | None:
    """The larger positive level change that a negative level change begins with (within
    ``together_hours``) and ends ``min_run`` hours or more before, if any. Such a pair is
    one excess that was smaller at first and rose where the negative one ends: a second
    fault of the kind beginning while the first goes on (a second tapped-in consumer), or
    the first one widening. It is not the balance meter under-reading from the very hour
    another fault began, nor the fit trimming that fault's end."""
    return next(
        (o for o in others if o.shape in LEVEL_SHAPES and _rises_into(change, o, cfg)), None
    )


def _drift_rose_from(change: Change, others: list[Change], cfg: ExcessSettings) -> int | None:
    """The hour an over-registering drift (``scale`` or ``settled``) really began, where
    it began together (within ``together_hours``) with a leak or a tapping-in and with a
    negative level change that ends ``min_run`` hours or more before it
    (:func:`_rises_into`): the fit reads "an excess, then the register drifting from
    some hour on" as one drift from the excess's start with a correction until the
    drift came. A register's error does not begin the very hour water starts to be
    lost or drawn off; the excess there is the other fault's (its own finding). None
    where there is no such pair."""
    if change.shape not in ("scale", "settled") or change.coef <= 0:
        return None
    if not any(
        o.shape in ("step", "use")
        and o.coef > 0
        and abs(o.start - change.start) <= cfg.together_hours
        for o in others
    ):
        return None
    return max((n.end for n in others if _rises_into(n, change, cfg)), default=None)


def _rises(
    changes: list[Change], made: dict[int, Diagnosis], cfg: ExcessSettings
) -> list[Diagnosis]:
    """Where a leak's or a tapping-in's excess rose within it (:func:`_rises_within`):
    one more finding of its kind from the hour it rose, to its end (its own slot, so its
    own alert: the excess found at first does not stand for what came later)."""
    out = []
    for change in changes:
        larger = _rises_within(change, [c for c in changes if c is not change], cfg)
        if larger is None:
            continue
        d = made.get(id(larger))
        if d is None or d.kind not in ("leak", "unauthorised_connection"):
            continue
        ep = d.episode
        confirmed = change.end + cfg.min_run
        if confirmed > ep.end:
            continue
        win = slice(change.start, change.end)
        # the rise, as a share of the excess at first: its size against the balance
        rise = -float(np.sum(change.contribution[win])) / float(
            np.sum(larger.contribution[win]) + np.sum(change.contribution[win])
        )
        evidence = {
            **d.evidence,
            "rule": f"the excess of a {d.evidence['shape']} change rose within it by "
            f"{rise:.0%} of what it was at first, for >= {cfg.min_run} h",
            "excess_share": float(d.evidence["excess_share"]) * rise / (1 + rise),
            "rose_within_change_from": d.episode.start,
        }
        out.append(
            Diagnosis(
                Episode(change.end, confirmed, ep.end, ep.active),
                d.kind,
                evidence,
                1,
                np.zeros_like(d.contribution),
            )
        )
    return out


def _change_kind(
    change: Change,
    others: list[Change],
    balance: FloatArray,
    cfg: ExcessSettings,
    clogs: tuple[int, ...] = (),
) -> str | None:
    """The group fault a change stands for, or None when it is too small to be one.
    ``clogs``: the hours clogged risers of the group began (a constant deficit that
    begins with one is the clog's, see :func:`_under_reads`)."""
    win = slice(change.start, change.end)
    mean_balance = float(np.mean(balance[win]))
    if mean_balance <= 0:
        return None
    size = float(np.mean(change.contribution[win])) / mean_balance
    if _rises_within(change, others, cfg) is not None:
        return None  # the larger one's excess rose where this ends (_rises_within)
    if change.shape in ("ramp", "scale", "settled"):
        if (change.coef < 0 or change.shape == "ramp") and (
            (change.coef < 0 and _corrects(change, others, same_end=cfg.settle_gap))
            or _leads_into(change, others, cfg.settle_gap)
        ):
            # an under-reading inside a larger excess it overlaps and ending with it: the
            # fit's correction of that excess's shape (a consumer's own load is no exact
            # share of the flats'), not a meter fault, which would end on its own; or one
            # whose error vanishes the hour a larger excess begins: that excess's edge
            return None
        if _corrects_drift(change, others, cfg):
            return None
        larger = _within_excess(change, others, cfg.settle_gap)
        if larger is not None and _spans(change, larger, cfg.settle_gap):
            # the ratio moved while the water did, and only then: a drift that begins and
            # ends with a larger excess (within hours each) is that excess's shape (a
            # leak opening over hours, a flow following the pressure), not the register's
            # error, which begins and ends on its own
            return None
        if abs(change.coef) >= cfg.min_drift:
            return "faulty_balance_meter"
        return "leak" if _widened_leak(change, size, cfg) else None
    if change.shape == "step":
        if size + _growth_with(change, others, balance, cfg) >= cfg.min_leak_share:
            return "leak"
        return "faulty_balance_meter" if _under_reads(change, others, size, cfg, clogs) else None
    if size >= cfg.min_tap_share:
        return "unauthorised_connection"
    # the balance meter stepping down (it under-reads), unless it trims a larger excess
    if size <= -cfg.min_under_read and not _corrects(change, others):
        return "faulty_balance_meter"
    return None


def _widened_leak(change: Change, size: float, cfg: ExcessSettings) -> bool:
    """Is a drift too small to report one (``settled`` below ``min_drift``) a leak: an
    excess that grew from nothing and then held, which a loss growing from nothing fits
    as well (a crack that widened and stayed), at least the smallest leak reported?
    Such a growth reads as a register's drift only from ``min_drift`` of the reading
    on, while as water lost it counts from ``min_leak_share``."""
    within = max(cfg.ambiguous_z2, cfg.ambiguous_share * change.z2)
    return (
        change.shape == "settled"
        and change.coef > 0
        and size >= cfg.min_leak_share
        and change.alternatives.get("grow", np.inf) < within
    )


def _growth_with(
    change: Change, others: list[Change], balance: FloatArray, cfg: ExcessSettings
) -> float:
    """What the rising ramps that begin and end with a positive step (within
    ``settle_gap`` each), and that a loss growing from nothing fits as well, add to it,
    as a share of the reading: a crack that widens loses a constant and a growth, which
    the fit takes as two pieces, each of them perhaps below the smallest leak reported,
    while the water lost is their sum."""
    if change.coef <= 0:
        return 0.0
    win = slice(change.start, change.end)
    grown = sum(
        float(np.mean(o.contribution[win]))
        for o in others
        if o.shape == "ramp"
        and o.coef > 0
        and _spans(change, o, cfg.settle_gap)
        and o.alternatives.get("grow", np.inf) < max(cfg.ambiguous_z2, cfg.ambiguous_share * o.z2)
    )
    return grown / float(np.mean(balance[win]))


def _under_reads(
    change: Change, others: list[Change], size: float, cfg: ExcessSettings, clogs: tuple[int, ...]
) -> bool:
    """Does a constant deficit (the balance meter reading less than its subscribers) say
    the balance meter under-reads? No group fault takes water or heat away from the
    subscribers, and the members' own faults are added back before, so it does; unless
    it only trims a larger excess it overlaps, or begins with a clogged riser: in a
    group balanced in coolant volume whose flats meter heat, the clog's cooler returning
    water lifts the building's ΔT, which shrinks the flats' heat in volume by a step (the
    peers date a clog to its day: within a day and ``settle_gap`` of it)."""
    if size > -cfg.min_under_read or _corrects(change, others):
        return False
    return not any(-cfg.settle_gap <= change.start - h <= 24 + cfg.settle_gap for h in clogs)


def _split_scale(change: Change, others: list[Change], cfg: ExcessSettings) -> bool:
    """Does a positive constant (or share of the use) begin and end together (within
    ``settle_gap`` each) with a positive change of the other of the two shapes? A
    register off by a factor scales the whole reading, which is the baseline's constant
    and its share of the use alike, so the fit may take it as the two pieces together:
    the balance meter over-registering is as possible as water lost or drawn off."""
    return (
        change.shape in ("step", "use")
        and change.coef > 0
        and any(
            o.shape in ("step", "use")
            and o.shape != change.shape
            and o.coef > 0
            and _spans(change, o, cfg.settle_gap)
            for o in others
        )
    )


def _also_possible(
    change: Change, kind: str | None, cfg: ExcessSettings, others: list[Change] | None = None
) -> list[str]:
    """Other group faults the same data fits as well, by physics: water lost at the
    supply temperature (a leak) and water drawn off and not returned (an unauthorised
    draw) are the same to the meters, and where the building's flow hardly varies
    (quality-regulated networks, constant-flow risers) so is a balance meter that
    over-registers by a constant factor (a draw of a share of the flow looks exactly
    like that). Said when the other shape fits within ``ambiguous_z2``. An
    over-registering drift that rose inside a larger excess (``others``) may as well be
    more water lost or drawn off: while the water changes, the ratio of the balance
    meter to its subscribers does not tell the register from the water."""
    if (
        kind == "faulty_balance_meter"
        and change.coef > 0
        and _within_excess(change, others or [], cfg.settle_gap) is not None
    ):
        also = _also_possible(change, kind, cfg)
        return [*also, *(k for k in ("leak", "unauthorised_connection") if k not in also)]
    within = max(cfg.ambiguous_z2, cfg.ambiguous_share * change.z2)
    close = {shape for shape, rise in change.alternatives.items() if rise < within}
    if (
        kind in ("leak", "unauthorised_connection")
        and "scale" not in close
        and _inside_drift(change, others or [], cfg)
    ):
        # the same the other way round: a level that rose and fell again inside a larger
        # drift of the balance meter may be that register's error changing its pace
        close.add("scale")
    if kind in ("leak", "unauthorised_connection") and _split_scale(change, others or [], cfg):
        close.add("scale")
    if kind == "leak":
        # a constant volume lost at the supply temperature, or drawn off and never
        # returned: the same water to every meter (only a return that moved tells a
        # consumer returning it cooler, :func:`_by_return`)
        return ["unauthorised_connection"] + (["faulty_balance_meter"] if "scale" in close else [])
    if kind == "unauthorised_connection" and close & {"step", "scale"}:
        # a draw of a share of the use that a constant loss or an over-registering
        # balance meter fits as well
        return (["leak"] if "step" in close else []) + (
            ["faulty_balance_meter"] if "scale" in close else []
        )
    if kind == "faulty_balance_meter" and change.shape in ("ramp", "settled") and change.coef > 0:
        # an over-registering drift that a loss growing from nothing (a widening crack,
        # water lost at the supply temperature) fits as well: the flow hardly varied
        return ["leak"] if "grow" in close else []
    if kind == "faulty_balance_meter" and change.shape == "scale" and change.coef > 0:
        # over-registering by a constant factor: a draw of that share of the flow
        return ["unauthorised_connection"] + (["leak"] if "step" in close else [])
    return []


def return_shift(
    s: GroupSeries, start: int, end: int, cfg: ExcessSettings, since: int = 0
) -> tuple[float, float] | None:
    """(shift, noise) in °C of the balance meter's ΔT against the members' returns
    during [start, end), from a fit ΔT_balance = a + b·ΔT_members over the
    ``return_ref_hours`` before (from ``since`` on at the earliest); None without both
    ΔTs there and then.

    Water lost or drawn off after the balance meter never returns, so the returning
    water, and the ΔT the meter sees, stays the members' mix; a consumer tapped in
    before the meters returns its water at its own ΔT and moves it."""
    if s.balance_dt is None or s.members_dt is None:
        return None
    lo = max(0, start - cfg.return_ref_hours, since)
    ref = np.isfinite(s.balance_dt[lo:start]) & np.isfinite(s.members_dt[lo:start])
    win = np.isfinite(s.balance_dt[start:end]) & np.isfinite(s.members_dt[start:end])
    if ref.sum() < 48 or win.sum() < 12:
        return None
    x, y = s.members_dt[lo:start][ref], s.balance_dt[lo:start][ref]
    coef = np.linalg.lstsq(np.column_stack([np.ones(x.size), x]), y, rcond=None)[0]
    before = y - coef[0] - coef[1] * x
    during = s.balance_dt[start:end][win] - coef[0] - coef[1] * s.members_dt[start:end][win]
    noise = MAD_TO_SIGMA * float(np.median(np.abs(before - np.median(before))))
    return float(np.median(during) - np.median(before)), noise


def _begins_with_another(change: Change, others: tuple[Change, ...], cfg: ExcessSettings) -> bool:
    """Does another positive level change of another shape begin within
    ``together_hours`` of ``change``?"""
    return any(
        o.shape in LEVEL_SHAPES
        and o.shape != change.shape
        and o.coef > 0
        and abs(o.start - change.start) <= cfg.together_hours
        for o in others
    )


def _by_return(
    kind: str | None,
    change: Change,
    s: GroupSeries,
    cfg: ExcessSettings,
    others: tuple[Change, ...] = (),
) -> tuple[str | None, list[str] | None, dict[str, float]]:
    """The kind the return temperature says for a positive level change (a leak, a
    tapping-in, a scaled-up reading), with what stays possible; ``None`` for the
    second when the return says nothing (no ΔT of the members, or another change)."""
    if kind not in ("leak", "unauthorised_connection", "faulty_balance_meter") or (
        change.shape not in ("step", "use", "scale") or change.coef <= 0
    ):
        return kind, None, {}
    # another change already running when this one begins (a tapping-in returning its
    # water cooler) moved the return before it: the reference starts after its start,
    # so this change is not credited with that one's shift (too few hours: no verdict)
    since = max((o.start for o in others if o.start < change.start < o.end), default=0)
    shift = return_shift(s, change.start, change.end, cfg, since)
    if shift is None:
        return kind, None, {}
    moved, noise = shift
    evidence = {"return_dt_shift_k": round(moved, 3), "return_dt_noise_k": round(noise, 3)}
    if abs(moved) >= max(cfg.return_shift_k, cfg.return_shift_z * noise):
        if _begins_with_another(change, others, cfg):
            # the return moved, but another excess began within hours of this one:
            # which of them returns its water cooler the return cannot tell, so this
            # one keeps the kind its shape gives (a leak lists the draw as well)
            return kind, None, evidence
        # the returning water changed: a consumer returning its water at another ΔT
        return "unauthorised_connection", [], evidence
    if kind == "faulty_balance_meter":
        return kind, ["unauthorised_connection"], evidence  # a draw of a share of the flow
    # water that never returns: lost (a leak) or drawn off (an unauthorised draw)
    return "leak", ["unauthorised_connection"], evidence


def _from_hour(s: GroupSeries, first: int) -> GroupSeries:
    """The series from hour ``first`` on."""

    def cut(a: npt.NDArray[Any] | None) -> npt.NDArray[Any] | None:
        return None if a is None else a[..., first:]

    return replace(
        s,
        balance=s.balance[first:],
        subscribers=s.subscribers[first:],
        night=s.night[first:],
        members=s.members[..., first:] if s.members.size else s.members,
        tamper=cut(s.tamper),
        heat_per_m3=cut(s.heat_per_m3),
        drivers=cut(s.drivers),
        balance_dt=cut(s.balance_dt),
        members_dt=cut(s.members_dt),
    )


def diagnose_group(
    s: GroupSeries, cfg: ExcessSettings | None = None, clogs: tuple[int, ...] = ()
) -> list[Diagnosis]:
    """Every change of the group's balance beyond what its subscribers explain, with its
    likely cause: concurrent faults (a leak during a tapping-in) are separate changes.

    Only the hours from the first one with both readings count: a building connected a
    few days ago has no history before that, and its first readings are no change.
    ``clogs``: the hours the group's clogged risers began (named by the members' checks)."""
    cfg = cfg or ExcessSettings()
    known = np.flatnonzero(~np.isnan(s.balance) & ~np.isnan(s.subscribers))
    first = int(known[0]) if known.size else s.balance.size
    history = cfg.changes.min_start_blocks * cfg.changes.block_hours
    if s.balance.size - first < history + cfg.changes.min_blocks * cfg.changes.block_hours:
        return []
    return with_slots(
        [
            replace(
                d,
                episode=_shifted(d.episode, first),
                contribution=np.concatenate([np.zeros(first), d.contribution]),
            )
            for d in _diagnose_known(_from_hour(s, first), cfg, tuple(h - first for h in clogs))
        ],
        cfg.quiet_to_close,
        cfg.together_hours,
    )


def with_slots(diagnoses: list[Diagnosis], gap: int, together: int = 0) -> list[Diagnosis]:
    """Each diagnosis with its slot: the lowest not held by an earlier one of the same
    kind that is still running ``gap`` hours before it begins. Two changes the fit
    keeps apart are two faults (a second tapping-in while the first goes on, a leak
    beginning as another ends): one alert per group and kind would report the second
    as the first one growing, from the first one's start. Changes of a kind that follow
    each other with a quiet gap share a slot (each its own episode of that alert); a
    slot stays with its change while the change lasts, however the others move.

    A change beginning within ``together`` hours of the start of a running one of its
    kind takes that one's slot: the fit splits a fault whose shape is none of its own
    exactly (a pressure-driven leak as a level and a share of the use, a drift as a
    ramp and a scale) into pieces that begin together, and a second fault of the kind
    beginning the same day cannot be told from such a piece; one alert from the first
    one's start covers both, where one per piece raised several for one fault."""
    out: list[Diagnosis] = []
    for d in sorted(diagnoses, key=lambda d: d.episode.start):
        start = d.episode.start
        twin = next(
            (
                o
                for o in out
                if o.kind == d.kind
                and o.episode.end >= start >= o.episode.start
                and start - o.episode.start <= together
            ),
            None,
        )
        if twin is not None:
            out.append(replace(d, slot=twin.slot))
            # one alert, the first piece's, stands for the fault: what any piece may as
            # well be, the fault may be (a drift's ramp whose scale piece fits a draw)
            also = [
                k
                for k in d.evidence.get("also_possible", ())
                if k != twin.kind and k not in twin.evidence.get("also_possible", ())
            ]
            if also:
                merged = [*twin.evidence.get("also_possible", ()), *also]
                out[out.index(twin)] = replace(
                    twin, evidence={**twin.evidence, "also_possible": merged}
                )
            continue
        held = {o.slot for o in out if o.kind == d.kind and o.episode.end + gap >= start}
        out.append(replace(d, slot=min(set(range(len(held) + 1)) - held)))
    return out


def _shifted(ep: Episode, hours: int) -> Episode:
    return Episode(ep.start + hours, ep.confirmed + hours, ep.end + hours, ep.active)


def _level(contribution: FloatArray, hours: slice) -> float:
    return float(np.mean(contribution[hours])) if hours.stop > hours.start else 0.0


def join_settled_drifts(changes: list[Change], cfg: ExcessSettings) -> list[Change]:
    """A register that drifts and then settles is one fault: a ramp followed (within
    ``settle_gap`` hours, or overlapping its end) by a level change of the same sign
    that carries on at about the level the ramp reached (0.5-2 x) becomes one change,
    ``settled``, from the ramp's start to the level's end (its coefficient: the error
    it settled at), rather than a drift that ended and a new leak or tapping-in."""
    out = list(changes)
    for ramp in [c for c in changes if c.shape == "ramp"]:
        reached = _level(ramp.contribution, slice(max(ramp.start, ramp.end - 24), ramp.end))
        for level in out:
            if level.shape not in LEVEL_SHAPES or not (
                ramp.start < level.start <= ramp.end + cfg.settle_gap and level.end > ramp.end
            ):
                continue
            held = _level(level.contribution, slice(level.start, min(level.end, level.start + 24)))
            if reached * held > 0 and 0.5 <= held / reached <= 2.0:
                joined = Change(
                    "settled",
                    ramp.start,
                    level.end,
                    level.coef if level.shape == "scale" else ramp.coef,
                    ramp.z2 + level.z2,
                    ramp.contribution + level.contribution,
                    # as the growth that settled: how a loss growing from 0 fits its ramp
                    {k: v for k, v in ramp.alternatives.items() if k == "grow"},
                )
                out = [c for c in out if c is not ramp and c is not level] + [joined]
                break
    return sorted(out, key=lambda c: c.start)


def shrunk_deficits(
    changes: list[Change], weights: dict[str, FloatArray], cfg: ExcessSettings
) -> list[Change]:
    """A deficit that shrank, said as what it is: a negative level change (``step``,
    ``use``, ``scale``) beginning with a larger deficit (within ``together_hours``) and
    ending ``min_run`` hours or more before it is the same model as that change carried
    on to the larger one's end plus the same shape, positive, from its end on. The fit
    reads "the balance meter under-reading, then more water lost or drawn off from some
    hour on" as an under-reading that was deeper at first; the register's error moving
    and more water are the same to the ratio, so the rise is judged as any positive
    change is (its kind by its shape, its alternatives the correction's), where before
    it only trimmed the under-reading and the water that came was never named."""
    out = list(changes)
    for c in changes:
        if c.shape not in LEVEL_SHAPES or c.coef >= 0 or _corrects(c, changes):
            continue  # (one that trims a larger excess is that excess's shape)
        win = slice(c.start, c.end)
        own = abs(float(np.sum(c.contribution)))
        larger = next(
            (
                o
                for o in changes
                if o is not c
                and o.coef < 0
                and abs(o.start - c.start) <= cfg.together_hours
                and o.end - c.end >= cfg.min_run
                and abs(float(np.sum(o.contribution[win]))) > own
            ),
            None,
        )
        if larger is None:
            continue
        rest = c.coef * window_shape(Window(c.shape, c.end, larger.end), weights)
        carried = replace(c, end=larger.end, contribution=c.contribution + rest)
        rise = replace(c, start=c.end, end=larger.end, coef=-c.coef, contribution=-rest)
        out = [o for o in out if o is not c] + [carried, rise]
    return sorted(out, key=lambda c: c.start)


def _drift_reportable(change: Change, reading: FloatArray, cfg: ExcessSettings) -> int:
    """The first hour a drifting register's error reached ``min_drift`` of its reading
    (-1 for a change that is no drift). A register drifting from 0 is, near its start,
    the same data as one that reads right: the fitted start of a ramp is uncertain by
    as much as the hours its error stays below the noise, so the fault is not known, and
    not reported, before its error reached the smallest error a drift is reported at
    (one that never reaches it is reported only as a leak, :func:`_widened_leak`: from
    the hour its excess reached the smallest leak)."""
    if change.shape not in ("ramp", "settled"):
        return -1
    win = slice(change.start, change.end)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(change.contribution[win]) / reading[win]
    least = cfg.min_drift if abs(change.coef) >= cfg.min_drift else cfg.min_leak_share
    reached = np.flatnonzero(np.nan_to_num(error) >= least)
    return change.start + int(reached[0]) if reached.size else change.end - 1


def _diagnose_known(
    s: GroupSeries, cfg: ExcessSettings, clogs: tuple[int, ...] = ()
) -> list[Diagnosis]:
    cs = change_series(s)
    balance, weights = cs.reading, cs.weights
    n = balance.size
    min_hours = cfg.changes.min_blocks * cfg.changes.block_hours
    diagnoses: list[Diagnosis] = []
    made: dict[int, Diagnosis] = {}  # id of a change -> its diagnosis
    changes = join_settled_drifts(fit_changes(balance, cs.base, weights, cfg.changes), cfg)
    changes = shrunk_deficits(changes, weights, cfg)
    for change in changes:
        # still running when it reaches the last hours: an open episode up to now
        active = change.end >= n - cfg.quiet_to_close
        end = n - 1 if active else change.end - 1
        confirmed = max(change.start + cfg.min_run, _drift_reportable(change, balance, cfg))
        ep = Episode(change.start, min(confirmed, end), end, active)
        win = slice(change.start, change.end)
        use_t, _ = follows_use(change.contribution[win], weights["use"][win])
        sign = 1 if np.sum(change.contribution[win]) >= 0 else -1
        evidence: dict[str, Any] = {
            "rule": f"the balance meter's reading changed by a {change.shape} beyond "
            f"what the subscribers' use explains, for >= {min_hours} h",
            "shape": change.shape,
            "coefficient": change.coef,
            "significance_z2": change.z2,
            "excess_total": float(np.sum((change.contribution * cs.to_balance_unit)[win])),
            "excess_share": float(np.sum(change.contribution[win]) / np.sum(balance[win])),
            "use_slope_t": use_t,
            # how much worse each other level shape fits the same window (rise of the
            # residual SS over a block's noise variance)
            "alternatives_z2": {k: round(v, 1) for k, v in change.alternatives.items()},
        }
        others = [c for c in changes if c is not change]
        group_kind = _change_kind(change, others, balance, cfg, clogs)
        group_kind, by_return, return_evidence = _by_return(
            group_kind, change, s, cfg, tuple(others)
        )
        evidence.update(return_evidence)
        also = _also_possible(change, group_kind, cfg, others)
        if change.coef > 0 and (group_kind, change.shape) in (
            ("unauthorised_connection", "use"),
            ("faulty_balance_meter", "scale"),
        ):
            level = level_days(cs, change, cfg)
            if level is not None:
                evidence["daily_level"] = level
            if (level is None or level) and "leak" not in also:
                # hour by hour a leak whose flow follows the pressure (highest at night,
                # with the heating load and the flow) fits a share of the use, or of the
                # flow, as well as a consumer or a scaled register does; only the days
                # tell them apart: days whose sums stay level, or too few of them, leave
                # a leak possible
                also = ["leak", *also]
        if by_return is not None:
            # a moved return rules the others out; an unmoved one rules nothing out that
            # the shapes left open (water lost or drawn off leaves the return alike)
            also = (
                by_return + [k for k in also if k not in by_return and k != group_kind]
                if by_return
                else []
            )
        if also:
            evidence["also_possible"] = also
        rose = (
            None if group_kind != "faulty_balance_meter" else _drift_rose_from(change, others, cfg)
        )
        if rose is not None:
            # the register's error came where the correction ends (_drift_rose_from)
            ep = Episode(rose, min(max(rose + cfg.min_run, confirmed), end), end, active)
            evidence["rose_within_change_from"] = change.start
        if group_kind is not None:
            added = change.contribution * cs.to_balance_unit
            diagnoses.append(Diagnosis(ep, group_kind, evidence, sign, added))
            made[id(change)] = diagnoses[-1]
    return diagnoses + _rises(changes, made, cfg)
