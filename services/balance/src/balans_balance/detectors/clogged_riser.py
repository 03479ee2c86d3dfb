"""The clogged-riser alert: a riser flow change told by its ΔT (a clog, or its meter errs).

Water that really slows cools more on its way down the riser, so its ΔT rises against
the building's other risers (which share the supply temperature and the weather). A
flow meter that registers less (a magnet, a slowed register) leaves the ΔT where it was.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from balans_balance.detectors.meter_faults import FLAGGED, STILL, MemberSettings, MemberShift
from balans_balance.episodes import Episode
from balans_balance.findings import Finding
from balans_balance.loading import BuildingData

FloatArray = npt.NDArray[np.float64]
HOURS = 24
BLOCK = 6  # hours in each median of the ΔT when dating where it rose


@dataclass(frozen=True)
class RiserSettings:
    # the riser's ΔT against its peers just before the change: a clog moves the ΔT when
    # the flow falls, so a ΔT that moved days earlier (a displaced or drifting sensor of
    # the riser's pair) is the reference, not part of this change
    ref_hours: int = 48
    min_hours: int = 12  # hours with a ΔT needed in the reference and in the episode
    clog_rise: float = 0.08  # ΔT up at least this much: the flow really fell
    steady: float = 0.03  # ΔT within this: the flow did not fall, its meter reads low


def without_faulty_pairs(data: BuildingData, sensors: list[Finding]) -> dict[int, FloatArray]:
    """Each riser meter's ΔT (``data.riser_dt``) unknown over the hours a sensor pair
    it rests on (``data.riser_pairs``: the riser's own pair, or its radiators' in a
    single-pipe riser) was found faulty (``sensors``): a drifting or swapped pair moves
    the ΔT by itself, and a reference taken then makes a clog of a steady riser, or a
    meter's fault of a clog. Another riser's faulty pair leaves this one's ΔT as it is."""
    hours = data.hours
    spans = [  # (module, first index, last index) of each faulty pair's finding
        (
            f.module_serial,
            round((f.first_hour - hours[0]) / timedelta(hours=1)),
            round((f.last_hour - hours[0]) / timedelta(hours=1)),
        )
        for f in sensors
    ]
    out = {}
    for meter, dt in data.riser_dt.items():
        on_riser = set(data.riser_pairs.get(meter, ()))
        faulty = np.zeros(len(hours), dtype=bool)
        for module, first, last in spans:
            if module in on_riser:
                faulty[first : last + 1] = True
        out[meter] = np.where(faulty, np.nan, dt)
    return out


def dt_change(
    dt: FloatArray,
    riser: int,
    start: int,
    end: int,
    cfg: RiserSettings | None = None,
    moved: npt.NDArray[np.bool_] | None = None,
    ref_end: int | None = None,
) -> float | None:
    """Relative change of ``riser``'s ΔT against the median of the other risers' over
    hours [start, end] compared with the ``ref_hours`` before; None without enough ΔT.

    ``dt`` is [riser, hour] in °C (NaN where no reading). ``moved`` [hour]: the hours
    the riser's flow really was away (:func:`moved_hours`); where at least ``min_hours``
    of the window are, only they count: an episode dated by whole days holds hours
    before the flow fell and after it came back, whose ΔT did not move. ``ref_end``:
    the reference ends there instead (before an earlier fault of the same riser that
    this one followed)."""
    cfg = cfg or RiserSettings()
    if dt.shape[0] < 2:
        return None
    relative = _relative(dt, riser)
    ref_end = start if ref_end is None else ref_end
    ref = relative[max(0, ref_end - cfg.ref_hours) : ref_end]
    win = relative[start : end + 1]
    if moved is not None and np.count_nonzero(moved[start : end + 1]) >= cfg.min_hours:
        win = win[moved[start : end + 1]]
    ref, win = ref[np.isfinite(ref)], win[np.isfinite(win)]
    if ref.size < cfg.min_hours or win.size < cfg.min_hours:
        return None
    base = float(np.median(ref))
    return float(np.median(win)) / base - 1 if base > 0 else None


def _relative(dt: FloatArray, riser: int) -> FloatArray:
    """[hour] ``riser``'s ΔT over the median of the other risers' (NaN where unknown).
    Water cools on its way through a heated riser: a ΔT of 0 or less is no reading of
    it (a swapped or detached sensor of its pair), and the others' under 0.5 °C is the
    heating off."""
    others = np.delete(dt, riser, axis=0)
    with warnings.catch_warnings():  # hours without any other riser's ΔT: NaN, as meant
        warnings.simplefilter("ignore", RuntimeWarning)
        peer = np.nanmedian(others, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where((peer > 0.5) & (dt[riser] > 0), dt[riser] / peer, np.nan))


def dt_rise_hour(
    dt: FloatArray, riser: int, start: int, end: int, ref_end: int, cfg: RiserSettings | None = None
) -> int | None:
    """The hour within [start, end] from which ``riser``'s ΔT against the others' rose
    by ``clog_rise`` or more over the ``ref_hours`` before ``ref_end``, where the whole
    days before it stayed in line (within ``steady``): a flow that fell with its ΔT in
    line (its meter) and then fell on with the ΔT up (a clog) is two faults. None where
    the ΔT moved from the start, never rose, or there is too little of it. 6-hour
    medians; the split is the first block from which the ΔT stays up."""
    cfg = cfg or RiserSettings()
    if dt.shape[0] < 2 or end - start + 1 < 2 * HOURS:
        return None
    relative = _relative(dt, riser)
    ref = relative[max(0, ref_end - cfg.ref_hours) : ref_end]
    ref = ref[np.isfinite(ref)]
    if ref.size < cfg.min_hours or float(np.median(ref)) <= 0:
        return None
    blocks = (end + 1 - start) // BLOCK
    window = relative[start : start + blocks * BLOCK].reshape(blocks, BLOCK)
    known = np.asarray(np.isfinite(window).any(axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(window, axis=1) / float(np.median(ref)) - 1
    up = np.where(known, level >= cfg.clog_rise, True)
    # the first block from which every later known block is up
    stays = np.flip(np.logical_and.accumulate(np.flip(up)))
    first = int(np.argmax(stays)) if stays.any() else blocks
    if first * BLOCK < HOURS or blocks - first < HOURS // BLOCK:
        return None
    before = level[:first][known[:first]]
    if before.size * BLOCK < cfg.min_hours or abs(float(np.median(before))) > cfg.steady:
        return None
    return start + first * BLOCK


def split_at_dt_rise(
    shift: MemberShift,
    dt: FloatArray,
    riser: int,
    registered: FloatArray,
    missed: FloatArray,
    cfg: RiserSettings | None = None,
) -> list[MemberShift]:
    """A riser meter's fall whose ΔT stayed in line for whole days and then rose
    (:func:`dt_rise_hour`): its meter read low (a magnet, a drift), then the riser
    clogged behind it. Two shifts, split where the ΔT rose, each judged on its own; the
    first with its own loss (``missed`` over ``registered`` plus it, hourly in the
    member's unit). A still register or a tamper flag decided its kind by itself, and a
    rise of the flow is no clog: one shift, as it came."""
    ep, evidence = shift.episode, shift.evidence
    if evidence["basis"] in (*STILL, *FLAGGED) or float(evidence["loss"]) <= 0:
        return [shift]
    rise = dt_rise_hour(dt, riser, ep.start, ep.end, int(evidence["reference_end"]), cfg)
    if rise is None:
        return [shift]
    hours = np.arange(shift.deficit.size)
    lost = float(missed[ep.start : rise].sum())
    got = float(np.nansum(registered[ep.start : rise]))
    loss = lost / (lost + got) if lost + got > 0 else 0.0
    first = replace(
        shift,
        episode=Episode(ep.start, ep.confirmed, rise - 1, False),
        deficit=np.where(hours < rise, shift.deficit, 0.0),
        evidence={**evidence, "loss": round(loss, 4)},
    )
    then = replace(
        shift,
        episode=Episode(rise, max(ep.confirmed, rise), ep.end, ep.active),
        deficit=np.where(hours >= rise, shift.deficit, 0.0),
    )
    return [first, then]


def moved_hours(registered: FloatArray, missed: FloatArray, loss: float) -> npt.NDArray[np.bool_]:
    """[hour] where a member's flow left its prediction (what it registered plus what it
    ``missed``) by at least half its episode's ``loss`` in the loss's direction."""
    predicted = np.nan_to_num(registered) + missed
    away = np.sign(loss) * missed >= abs(loss) / 2 * predicted
    return np.asarray(away & (predicted > 0) & (missed != 0))


def riser_verdict(
    verdict: str,
    loss: float,
    dt_change: float | None,
    magnet_loss: float = MemberSettings().magnet_loss,
    cfg: RiserSettings | None = None,
) -> str:
    """A riser meter whose flow moved against its peers: its ΔT against the other
    risers' says whether the water really changed speed or the meter reads wrong, where
    it can; a still register stays stuck. The same heat carried by less water cools
    more, by more water less.

    - flow down, ΔT up by ``clog_rise`` or more: the water slowed -> clogged;
    - flow up, ΔT down by ``clog_rise`` or more: the water sped up (a valve opened) ->
      no meter fault;
    - ΔT in line (within ``steady``): the flow did not move, the meter registers it
      wrong -> a magnet when it lost ``magnet_loss`` or more, else a drifting meter (a
      riser's flow does not follow its flats' use, so no change of use explains it);
    - ΔT in between: not enough for a clog (the rule needs the ΔT to rise), so the
      balance's verdict stands and an unconfirmed change blames nothing;
    - no ΔT readings: the balance's verdict, and a fall it does not confirm is a clog."""
    cfg = cfg or RiserSettings()
    if verdict == "stuck_meter":
        return verdict
    if dt_change is None:
        return "clogged_riser" if verdict == "use_changed" and loss > 0 else verdict
    if loss > 0 and dt_change >= cfg.clog_rise:
        return "clogged_riser"
    if loss < 0 and dt_change <= -cfg.clog_rise:
        return "use_changed"
    if abs(dt_change) <= cfg.steady:
        return "magnet" if loss >= magnet_loss else "drifting_meter"
    return verdict
