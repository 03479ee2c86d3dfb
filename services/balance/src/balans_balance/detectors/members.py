"""A member whose share of its group moved, and whether its meter or its use changed.

Each member's share of the group's subscribers (24-hour sums) is judged against its own
band (:mod:`balans_balance.bands`), which is far more sensitive to one meter than the
group's imbalance band. When a share falls (or rises), the group's imbalance decides:

- it rose by about what the member stopped registering (the balance meter still saw the
  water): the *meter* is wrong -> stuck (zeros), magnet (a step, or the tamper flag),
  drifting (a ramp); the meter is named;
- it did not move: the *use* changed (a flat away, a riser clogged) -> no meter fault;
  the caller may report it (clogged riser) or not (a flat's behaviour is its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from balans_balance.bands import learn_band
from balans_balance.detectors.excess import (
    GroupSeries,
    _rolling_sum,
    _rolling_sum_2d,
    longest_zero_run,
)
from balans_balance.episodes import Episode, find_episodes

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MemberSettings:
    smooth_hours: int = 24
    band_days: int = 14
    band_k: float = 5.0
    min_scale: float = 0.015  # relative to the member's usual share
    min_run: int = 12
    reference_days: int = 7
    meter_closure: tuple[float, float] = (0.5, 2.0)
    min_coverage: float = 0.5  # below it the group's balance is mostly unmetered use,
    # too noisy to confirm what one member stopped registering
    min_correlation: float = 0.6  # daily deficit against daily imbalance, around the start
    use_closure: float = 0.25
    significance: float = 3.0


@dataclass(frozen=True)
class MemberShift:
    member: int
    episode: Episode
    verdict: str  # stuck_meter | magnet | drifting_meter | use_changed | unclear
    closure: float  # observed rise of the imbalance / what the member stopped registering
    missing: float  # in the balance meter's unit, over the episode
    evidence: dict[str, float]


def _relative_shares(members: FloatArray, smooth: int) -> FloatArray:
    sums = _rolling_sum_2d(np.nan_to_num(members), smooth)
    total = np.nansum(sums, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, sums / total, np.nan)
        level = np.nanmedian(share, axis=1, keepdims=True)
        return np.where(level > 0, share / level, np.nan)


def _meter_kind(s: GroupSeries, i: int, ep: Episode, ratio: FloatArray) -> str:
    values = np.nan_to_num(s.members[i, ep.start : ep.end + 1])
    if s.tamper is not None and s.tamper[i, max(0, ep.start - 24) : ep.end + 1].any():
        return "magnet"
    if longest_zero_run(values) >= max(12, 0.6 * values.size):
        return "stuck_meter"
    r = ratio[ep.start : ep.end + 1]
    r = r[~np.isnan(r)]
    if r.size >= 24:
        t = np.arange(r.size)
        slope = np.polyfit(t, r, 1)[0] * r.size  # change of the ratio over the episode
        first, last = np.median(r[: r.size // 4]), np.median(r[-r.size // 4 :])
        if abs(slope) > 0.6 * abs(1 - last) and abs(1 - first) < 0.5 * abs(1 - last):
            return "drifting_meter"
    return "drifting_meter" if np.median(r) > 1 else "magnet"


def member_shifts(
    s: GroupSeries, excess: FloatArray, cfg: MemberSettings | None = None
) -> list[MemberShift]:
    """Every episode of a member's share out of its band, with the verdict; ``excess`` is
    the group's imbalance beyond its expected level (:meth:`Imbalance.excess`)."""
    cfg = cfg or MemberSettings()
    m, n = s.members.shape
    coverage = np.nanmedian(s.subscribers / np.where(s.balance > 0, s.balance, np.nan))
    if m < 3 or not coverage >= cfg.min_coverage:
        return []
    ratio = _relative_shares(s.members, cfg.smooth_hours)
    # what one unit of a member's register is worth in the balance meter's unit
    own_total = np.nansum(s.members, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        worth = np.where(own_total > 0, s.subscribers / own_total, np.nan)
    daily_excess = _rolling_sum(np.nan_to_num(excess), 24)
    classes = np.zeros(n, dtype=np.int_)
    members = np.nan_to_num(s.members)
    candidates: list[_Candidate] = []
    for i in range(m):
        band = learn_band(
            ratio[i], classes, window=cfg.band_days * 24, k=cfg.band_k, min_scale=cfg.min_scale
        )
        known = ~np.isnan(band.median) & ~np.isnan(ratio[i])
        for mask in (known & (ratio[i] < band.low), known & (ratio[i] > band.high)):
            for ep in find_episodes(mask, min_run=cfg.min_run, quiet_to_close=12):
                # the share left its line some hours before the smoothed ratio shows it
                start = max(0, ep.start - cfg.smooth_hours // 2)
                ref = slice(max(0, start - cfg.reference_days * 24), start)
                if ref.stop - ref.start < 48:
                    continue
                win = slice(start, ep.end + 1)
                share_ref = members[i, ref].sum() / max(members[:, ref].sum(), 1e-12)
                others = members[:, win].sum(axis=0) - members[i, win]
                deficit = np.zeros(n)
                deficit[win] = (
                    share_ref / max(1 - share_ref, 1e-9) * others - members[i, win]
                ) * np.nan_to_num(worth[win])
                daily = daily_excess[ref][23::24]
                hours = win.stop - win.start
                noise = float(np.nanstd(daily)) * np.sqrt(hours / 24) if daily.size > 2 else np.inf
                candidates.append(
                    _Candidate(
                        i, Episode(start, ep.confirmed, ep.end, ep.active), ref, deficit, noise
                    )
                )
    return _explain(s, excess, candidates, ratio, cfg)


@dataclass
class _Candidate:
    member: int
    episode: Episode
    ref: slice
    deficit: FloatArray  # what the member stopped registering, hourly, balance units
    noise: float


def _follows(c: _Candidate, residual: FloatArray) -> float:
    """Correlation of the member's daily deficit with the group's daily imbalance, from
    the reference days through the episode: a meter fault steps in with the imbalance."""
    span = slice(c.ref.start, c.episode.end + 1)
    days = (span.stop - span.start) // 24
    if days < 4:
        return 0.0
    cut = slice(span.stop - days * 24, span.stop)
    d = c.deficit[cut].reshape(days, 24).sum(axis=1)
    e = residual[cut].reshape(days, 24).sum(axis=1)
    if d.std() == 0 or e.std() == 0:
        return 0.0
    return float(np.corrcoef(d, e)[0, 1])


def _closure(c: _Candidate, residual: FloatArray) -> tuple[float, float, float]:
    win = slice(c.episode.start, c.episode.end + 1)
    base = float(np.nanmean(residual[c.ref]))
    observed = float(np.nansum(residual[win] - base))
    missing = float(c.deficit.sum())
    return (observed / missing if missing else 0.0), observed, missing


def _explain(
    s: GroupSeries,
    excess: FloatArray,
    candidates: list[_Candidate],
    ratio: FloatArray,
    cfg: MemberSettings,
) -> list[MemberShift]:
    """Greedy explaining-away: the shift whose deficit best matches the imbalance's rise
    is a meter fault; its deficit is taken out of the imbalance before the others are
    judged (two flats changing at once must not both be blamed for one meter's fault)."""
    residual = np.nan_to_num(excess).copy()
    lo, hi = cfg.meter_closure
    pending = [c for c in candidates if abs(c.deficit.sum()) >= cfg.significance * c.noise]
    out = [
        MemberShift(c.member, c.episode, "unclear", 0.0, float(c.deficit.sum()), {})
        for c in candidates
        if c not in pending
    ]
    while pending:
        scored = [(c, *_closure(c, residual)) for c in pending]
        best = min(scored, key=lambda t: abs(np.log(t[1])) if t[1] > 0 else np.inf)
        c, closure, observed, missing = best
        if not lo <= closure <= hi:
            break
        if _follows(c, residual) < cfg.min_correlation:
            pending.remove(c)
            out.append(
                MemberShift(
                    c.member, c.episode, "unclear", closure, missing, _evidence(c, observed, ratio)
                )
            )
            continue
        residual -= c.deficit
        pending.remove(c)
        verdict = _meter_kind(s, c.member, c.episode, ratio[c.member])
        out.append(
            MemberShift(
                c.member, c.episode, verdict, closure, missing, _evidence(c, observed, ratio)
            )
        )
    for c in pending:
        closure, observed, missing = _closure(c, residual)
        verdict = "use_changed" if abs(closure) <= cfg.use_closure else "unclear"
        out.append(
            MemberShift(
                c.member, c.episode, verdict, closure, missing, _evidence(c, observed, ratio)
            )
        )
    return out


def _evidence(c: _Candidate, observed: float, ratio: FloatArray) -> dict[str, float]:
    return {
        "missing": float(c.deficit.sum()),
        "imbalance_rise": observed,
        "noise": c.noise,
        "share_ratio": float(np.nanmedian(ratio[c.member, c.episode.start : c.episode.end + 1])),
    }
