"""Faults that need no history before them: a register that has not counted while its
peers used, a module not heard at all, a module that raised its tamper flag.

The detectors against peers and against a source's own reporting pattern look for a
*change*: a fault older than the analysed window (a meter reading zero since
September, a module never heard since installation) is part of what they learn as
normal and would never alert; a change that began a few days ago has too little
history after it to be told from the peers' noise. These rules need neither, so the
fault alerts whenever it is found, a still register dated by the last hour it advanced
(or "before the data read" when it never did within it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from balans_balance.episodes import Episode, find_episodes

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LongStandingSettings:
    min_still_hours: int = 72  # a register still this long at the end of the data
    # ... while the median peer used this many of the meter's pulses meanwhile
    min_peer_quanta: float = 20.0
    flag_gap: int = 12  # hours without the tamper flag still within one episode
    flag_quiet: int = 24  # hours without it before the episode ends
    share_days: int = 7  # days before the flag a member's usual share is taken over
    # a flagged member that lost less than this share of its use is not the tampered one
    min_tamper_loss: float = 0.15


@dataclass(frozen=True)
class StillRegister:
    member: int
    start: int  # first hour after the register's last advance; 0: before the data read
    peer_use: float  # what the median peer used meanwhile, in the members' unit
    missed: FloatArray  # hourly, in the members' unit (none before the data read: the
    # balance's baseline already holds it)


def _missed(values: FloatArray, i: int, start: int, end: int, days: int) -> FloatArray:
    """[hour] what member ``i`` did not register over [start, end]: its usual share of
    the others' use (over the ``days`` before ``start``, else the members' median share)
    less what it registered."""
    total = values.sum(axis=0)
    others = total - values[i]
    before = slice(max(0, start - days * 24), start)
    if before.stop - before.start >= 24 and others[before].sum() > 0:
        share = values[i, before].sum() / others[before].sum()
    else:  # no history before it: a typical member's share of the others
        typical = float(np.median(values.sum(axis=1)))
        share = typical / max(float(total.sum()) - typical, 1e-9)
    missed = np.zeros(values.shape[1])
    # net, hour by hour: a pulse register's hourly rounding cancels in the sums
    missed[start : end + 1] = share * others[start : end + 1] - values[i, start : end + 1]
    return missed


def still_registers(
    raw: FloatArray, quantum: FloatArray, cfg: LongStandingSettings | None = None
) -> list[StillRegister]:
    """Members ([member, hour] as registered, NaN where missing) whose register has not
    advanced over the last ``min_still_hours`` or more while the median of the others
    used at least ``min_peer_quanta`` of its pulses. A member that mostly did not report
    meanwhile is a silence (the reporting detectors' case), not a still register."""
    cfg = cfg or LongStandingSettings()
    n = raw.shape[1]
    out: list[StillRegister] = []
    if raw.shape[0] < 3:
        return out
    for i in range(raw.shape[0]):
        advanced = np.flatnonzero(np.nan_to_num(raw[i]) > 0)
        start = int(advanced[-1]) + 1 if advanced.size else 0
        if n - start < cfg.min_still_hours:
            continue
        if np.count_nonzero(~np.isnan(raw[i, start:])) < (n - start) / 2:
            continue
        peers = np.delete(raw[:, start:], i, axis=0)
        peer_use = float(np.median(np.nansum(peers, axis=1)))
        if peer_use >= cfg.min_peer_quanta * quantum[i]:
            missed = (
                _missed(np.nan_to_num(raw), i, start, n - 1, cfg.share_days)
                if start > 0
                else np.zeros(n)
            )
            out.append(StillRegister(i, start, peer_use, missed))
    return out


def never_present(present: BoolArray) -> list[int]:
    """Rows (modules) with no report at all in the data read."""
    return [int(i) for i in np.flatnonzero(~present.any(axis=1))]


@dataclass(frozen=True)
class Tampered:
    member: int
    episode: Episode  # the flag's run (gaps up to ``flag_gap`` hours bridged)
    missed: FloatArray  # hourly, in the members' unit: what it did not register


def tampered(
    raw: FloatArray, tamper: BoolArray, cfg: LongStandingSettings | None = None
) -> list[Tampered]:
    """Members whose module raised its tamper flag: a magnet, whatever the peers' history
    (one that began too recently, or too long ago, for a change against the peers to be
    seen) when it lost at least ``min_tamper_loss`` of its use. What it missed is its
    usual share of the others' use less what it registered (:func:`_missed`), so the
    group's balance is not read as a leak of it."""
    cfg = cfg or LongStandingSettings()
    out: list[Tampered] = []
    if raw.shape[0] < 3 or tamper is None:
        return out
    values = np.nan_to_num(raw)
    for i in np.flatnonzero(tamper.any(axis=1)):
        for ep in find_episodes(
            tamper[i], min_run=1, quiet_to_close=cfg.flag_quiet, max_gap=cfg.flag_gap
        ):
            missed = _missed(values, int(i), ep.start, ep.end, cfg.share_days)
            # a multi-channel module's flag covers all its meters: the magnet is on the
            # one that lost its use
            if _lost_share(values, int(i), missed, ep.start, ep.end) >= cfg.min_tamper_loss:
                out.append(Tampered(int(i), ep, missed))
    return out


def _lost_share(values: FloatArray, i: int, missed: FloatArray, start: int, end: int) -> float:
    """The share of member ``i``'s use over [start, end] that it did not register
    (``missed``: :func:`_missed`)."""
    lost = float(missed.sum())
    got = float(values[i, start : end + 1].sum())
    return lost / (lost + got) if lost + got > 0 else 0.0


def lost_shares(
    raw: FloatArray,
    members: npt.NDArray[np.int_],
    start: int,
    end: int,
    cfg: LongStandingSettings | None = None,
) -> FloatArray:
    """[member of ``members``] the share of its use each did not register over [start,
    end], against its usual share of the others' use (:func:`_missed`)."""
    days = (cfg or LongStandingSettings()).share_days
    values = np.nan_to_num(raw)
    return np.array(
        [
            _lost_share(values, int(i), _missed(values, int(i), start, end, days), start, end)
            for i in members
        ]
    )
