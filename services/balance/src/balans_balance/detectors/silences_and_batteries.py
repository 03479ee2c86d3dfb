"""The dead-module, silent-concentrator, missing-data and low-battery alerts.

A source (a module, or one meter's channel) is judged against its *own* reporting
pattern: for each hour of the day, the share of past days on which it reported at
that hour. A silence is alarming only when that pattern makes it improbable
(Π over the silent hours of (1 − p_hour) below ``max_probability``), so a meter that
reports only every few hours, or only by day, does not raise false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from balans_balance.episodes import Episode, runs

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReportingSettings:
    learn_days: int = 7
    max_probability: float = 1e-4
    min_silent_hours: int = 3
    floor_probability: float = 0.02  # a report is never taken as certain at any hour
    low_battery_mv: float = 3300.0
    cutoff_mv: float = 3000.0
    warn_days_to_cutoff: float = 14.0


def silences(
    present: BoolArray, hour_of_day: npt.NDArray[np.int_], cfg: ReportingSettings
) -> list[Episode]:
    """Improbable silent runs of one source (``present`` per hour)."""
    n = present.size
    found: list[Episode] = []
    if present.all():  # most sources: no silent hour (finding none costs a tenth)
        return found
    for i, j in runs(~present):
        lo = max(0, i - cfg.learn_days * 24)
        if i - lo >= 48:  # a pattern needs two days at least
            p = np.array(
                [
                    present[lo:i][hour_of_day[lo:i] == h].mean()
                    if np.any(hour_of_day[lo:i] == h)
                    else 0.0
                    for h in range(24)
                ]
            )
            p = np.minimum(p, 1 - cfg.floor_probability)
            log_q = np.cumsum(np.log1p(-p[hour_of_day[i:j]]))
            alarming = np.flatnonzero(
                (log_q < np.log(cfg.max_probability))
                & (np.arange(1, j - i + 1) >= cfg.min_silent_hours)
            )
            if alarming.size:
                found.append(Episode(i, i + int(alarming[0]), j - 1, active=j == n))
    return found


def battery_warning(mv: FloatArray, cfg: ReportingSettings, window: int = 72) -> int | None:
    """Index of the first hour at which the battery is low, or heading for cut-off within
    ``warn_days_to_cutoff`` days by a least-squares slope over the last ``window`` hours
    (at least two thirds of them reported), or None."""
    return battery_warnings(mv[None, :], cfg, window)[0]


def battery_warnings(mv: FloatArray, cfg: ReportingSettings, window: int = 72) -> list[int | None]:
    """:func:`battery_warning` of each row of ``mv`` [module, hour], all at once."""
    first = np.full(mv.shape[0], -1, dtype=np.int64)
    _first_warnings(
        np.asarray(mv, dtype=np.float64),
        cfg.low_battery_mv,
        cfg.cutoff_mv,
        cfg.warn_days_to_cutoff * 24,
        window,
        first,
    )
    return [None if f < 0 else f for f in first.tolist()]


@numba.njit(cache=True, error_model="numpy")
def _first_warnings(
    mv: FloatArray,
    low_mv: float,
    cutoff_mv: float,
    horizon_h: float,
    window: int,
    first: npt.NDArray[np.int64],
) -> None:
    """Each row's first warned hour (``first``, -1 where none), hour after hour until it
    is found. The slope's sums over the last ``window`` hours are differences of running
    sums, each added up from 0 in hour order, as numpy's ``cumsum`` adds them, and every
    figure is the same expression: the same bits as the whole array's arithmetic."""
    hours = mv.shape[1]
    sums = np.zeros((5, hours + 1))  # running sums of k, x·k, y, x·x·k, x·y
    for r in range(mv.shape[0]):
        for t in range(hours):
            v = mv[r, t]
            known = not np.isnan(v)
            k = 1.0 if known else 0.0
            y = v if known else 0.0
            x = float(t)
            sums[0, t + 1] = sums[0, t] + k
            sums[1, t + 1] = sums[1, t] + x * k
            sums[2, t + 1] = sums[2, t] + y
            sums[3, t + 1] = sums[3, t] + x * x * k
            sums[4, t + 1] = sums[4, t] + x * y
            if known and v <= low_mv:
                first[r] = t
                break
            if t < window - 1 or not known:
                continue
            j = t + 1 - window
            n = sums[0, t + 1] - sums[0, j]
            sx = sums[1, t + 1] - sums[1, j]
            sy = sums[2, t + 1] - sums[2, j]
            sxx = sums[3, t + 1] - sums[3, j]
            sxy = sums[4, t + 1] - sums[4, j]
            slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
            if n >= window * 2 / 3 and slope < 0 and (v - cutoff_mv) / -slope < horizon_h:
                first[r] = t
                break


@dataclass(frozen=True)
class Silence:
    kind: str  # concentrator_silent | dead_module | missing_data | low_battery
    episode: Episode
    concentrator: int | None = None
    module: int | None = None
    meter: int | None = None


def _covered(ep: Episode, by: list[Episode]) -> bool:
    return any(o.start <= ep.start + 1 and o.end >= ep.end - 1 for o in by)


def reporting_findings(
    modules: list[int],
    module_concentrator: dict[int, int],
    module_present: BoolArray,
    module_battery: FloatArray,
    meter_module: dict[int, int],
    meter_present: dict[int, BoolArray],
    hour_of_day: npt.NDArray[np.int_],
    cfg: ReportingSettings | None = None,
) -> list[Silence]:
    """The most specific explanation of each silence: a whole concentrator, else a
    module, else one meter whose module still reports; and battery warnings."""
    cfg = cfg or ReportingSettings()
    out: list[Silence] = []
    row = {serial: i for i, serial in enumerate(modules)}
    by_concentrator: dict[int, list[int]] = {}
    for serial, concentrator in module_concentrator.items():
        by_concentrator.setdefault(concentrator, []).append(row[serial])
    concentrator_silences: dict[int, list[Episode]] = {}
    for concentrator, rows in by_concentrator.items():
        eps = silences(np.asarray(module_present[rows].any(axis=0)), hour_of_day, cfg)
        concentrator_silences[concentrator] = eps
        out.extend(Silence("concentrator_silent", ep, concentrator=concentrator) for ep in eps)
    module_silences: dict[int, list[Episode]] = {}
    warnings = battery_warnings(module_battery, cfg) if modules else []
    for serial, i in row.items():
        eps = [
            ep
            for ep in silences(module_present[i], hour_of_day, cfg)
            if not _covered(ep, concentrator_silences[module_concentrator[serial]])
        ]
        module_silences[serial] = eps
        out.extend(Silence("dead_module", ep, module=serial) for ep in eps)
        warned = warnings[i]
        if warned is not None:
            known = np.flatnonzero(~np.isnan(module_battery[i]))
            recovered = known.size and module_battery[i, known[-1]] > cfg.low_battery_mv + 150
            last = int(known[-1]) if known.size else warned
            ep = Episode(warned, warned, last, active=not recovered)
            out.append(Silence("low_battery", ep, module=serial))
    for meter, present in meter_present.items():
        module = meter_module[meter]
        quiet = module_silences.get(module, []) + concentrator_silences.get(
            module_concentrator.get(module, -1), []
        )
        out.extend(
            Silence("missing_data", ep, module=module, meter=meter)
            for ep in silences(present, hour_of_day, cfg)
            if not _covered(ep, quiet)
        )
    return out
