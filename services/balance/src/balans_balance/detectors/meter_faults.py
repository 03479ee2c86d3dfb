"""The stuck-meter, magnet and drifting-meter alerts: a member meter that stopped, slowed or drifts.

Each member is judged against its peers (:mod:`balans_balance.detectors.peers`): an
episode opens where its daily use left the peers' prediction (a step or a ramp GLR of
``detect`` noise units) and lasts while it stays away. What caused it:

- the register stood still for hours while the peers say it should have counted ->
  **stuck** (a **magnet** when the module raised its tamper flag as it stopped; without
  the flag a magnet that stopped the register reads the same, so ``also_possible`` says
  so; a flag raised well before, while the register still counted, is an earlier
  magnet's, one raised after it had stood still for longer a magnet laid on the stuck
  register from that hour, and the days the change was away before the register
  stopped are a fault of their own);
- the module's tamper flag -> **magnet**, from the hour the flag rose;
- the departure grows steadily (a ramp fits clearly better than a step) -> **drifting**;
- a step that the group's balance confirms (the balance meter saw what the member
  stopped registering, or did not see what it added) -> a meter fault: a loss of more
  than ``magnet_loss`` of the use at once is a **magnet** (a slowed or stopped
  impeller), a smaller loss or any over-reading a **drifting** meter (one that
  stepped, or ramped and settled: the balance confirms it, so it is no change of use);
- a heat meter's step the balance cannot confirm (one flat is too small a share of
  the building) whose deficit (6-hour sums) follows the predicted use rather than
  staying level -> **drifting** (a **magnet** where a flat's meter lost more than its
  occupants' setpoint can take off, ``behaviour_loss``): a register off by a factor
  misses a share of every hour's heat, while a flat that turned its thermostat down or
  went away lowers its loss by UA x the setpoint's change, the same heat whatever the
  weather (``follows_use``);
- otherwise the *use* changed (a flat away, a clogged riser): ``use_changed``, which the
  caller reports or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from balans_balance.detectors.changes import least_squares
from balans_balance.detectors.leak_tapping_balance_meter import GroupSeries
from balans_balance.detectors.long_standing import lost_shares
from balans_balance.detectors.peers import (
    PeerModel,
    PeerSettings,
    block_sums,
    daily_sums,
    peer_model,
)
from balans_balance.episodes import Episode

FloatArray = npt.NDArray[np.float64]
HOURS = 24
BLOCK = 6  # hours summed when the balance confirms a member's miss
CLOSURES = np.linspace(0.0, 2.5, 26)  # share of a member's miss the balance may have seen
WHOLE = int(np.argmin(np.abs(CLOSURES - 1.0)))  # CLOSURES[WHOLE] == 1: the balance saw all of it
METER_FAULTS = ("stuck_meter", "magnet", "drifting_meter")
STILL = ("register_still", "register_still_tamper_flag")  # the register stood still
FLAGGED = ("register_still_tamper_flag", "tamper_flag")  # the module's tamper flag decided


@dataclass(frozen=True)
class MemberSettings:
    peers: PeerSettings = field(default_factory=PeerSettings)
    detect: float = 5.5  # GLR, in noise units, that opens an episode
    stay: float = 2.0  # daily residual (noise units) that keeps it open
    min_ramp_days: int = 3
    ramp_preference: float = 0.8  # the ramp's squared error must be this much smaller
    magnet_loss: float = 0.25
    # a drift is a calibration error: it grows to at most drift_loss
    drift_loss: float = 0.2
    min_stuck_hours: int = 12
    min_stuck_quanta: float = 5.0  # the peers say it should have counted this many pulses
    # the balance confirms a miss when the best share of it added back (the closure)
    # fits better than none by confirm_z noise units, and that share is in ``closure``
    confirm_z: float = 2.2
    closure: tuple[float, float] = (0.6, 2.0)
    # the balance refutes a miss the days' shape alone would name (follows_use) where
    # adding all of it back fits worse than its best closure (below ``closure``) by this
    # many noise units, the evidence that opens an episode (:func:`_refuted`): a share
    # of a flat's use is much like the subscribers' own shape, so a true miss can fit
    # worse by 4 noise units
    refute_z: float = 5.5
    balance_lead_days: tuple[int, ...] = (3, 5, 7, 10)
    min_balance_dof: int = 8
    max_episodes: int = 3  # per member and analysis
    # a tamper flag rising this many hours before a register stopped is the stop's own
    flag_lead: int = 12
    # the hourly deficit dates a departure within this many hours of its first day
    refine_hours: int = 48
    # a share of the predicted use must fit a heat meter's deficit (6-hour sums: the
    # weather's swing within each day as well as between days) better than a constant by
    # this F (the drop of the residual sum of squares in units of one block's residual
    # variance: less is no evidence) to name a drift the balance cannot confirm; blocks
    # whose use hardly varies cannot tell the two apart
    follow_f: float = 1.0
    # a constant must fit a flat heat meter's deficit better than a share of the use by
    # this F for its level to overrule the balance's verdict of a drift (_level_deficit)
    level_f: float = 4.0
    # more than a flat's occupants take off its heat by their setpoint (left at 15 °C
    # instead of 21 °C, 6 K of the 15-25 K it is heated above the heating season's
    # weather: a third or less): a flat meter's loss beyond it whose deficit follows
    # the use is a slowed register, whatever the balance could confirm
    behaviour_loss: float = 0.4


@dataclass(frozen=True)
class MemberShift:
    member: int
    episode: Episode  # hours
    verdict: str  # stuck_meter | magnet | drifting_meter | use_changed
    deficit: FloatArray  # hourly, in the balance meter's unit: what the member missed
    evidence: dict[str, Any]


@dataclass(frozen=True)
class _Change:
    member: int
    fit_day: int  # the peers' prediction is the one fitted before this day
    first_day: int
    detected_day: int
    last_day: int
    sign: int
    step: float
    ramp: float


def _change(pm: PeerModel, i: int, cfg: MemberSettings) -> _Change | None:
    """The member's first departure from its peers, if any."""
    glr = np.where(np.abs(pm.ramp[i]) > np.abs(pm.step[i]), pm.ramp[i], pm.step[i])
    over = np.flatnonzero(np.abs(glr) >= cfg.detect)
    if over.size == 0:
        return None
    detected = int(over[0])
    sign = int(np.sign(glr[detected]))
    # the episode's best evidence: the largest GLR of that sign until it turns
    same = np.flatnonzero(np.sign(glr[detected:]) != sign)
    stop = detected + (int(same[0]) if same.size else glr.size - detected)
    t = detected + int(np.argmax(np.abs(glr[detected:stop])))
    step, ramp = float(pm.step[i, t]), float(pm.ramp[i, t])
    fit = int(pm.ramp_from[i, t] if abs(ramp) > abs(step) else pm.step_from[i, t])
    z = pm.z[i, fit]
    # the fit (a ramp's above all) may start well before the departure shows, and one
    # day of noise 2 sigma away can precede it: the episode starts where the days went
    # away and stayed away up to the strongest evidence
    first = t
    while first > fit and sign * np.nan_to_num(z[first - 1]) >= cfg.stay:
        first -= 1
    if detected < first:
        # the first crossing came before this departure (a GLR over days before an
        # earlier episode, carried on): it is detected when evidence from its own fit
        # crossed
        frm = np.where(np.abs(pm.ramp[i]) > np.abs(pm.step[i]), pm.ramp_from[i], pm.step_from[i])
        own = over[(over >= first) & (frm[over] >= fit)]
        detected = int(own[0]) if own.size else t
    last = t
    for d in range(t + 1, z.size):
        if sign * np.nan_to_num(z[d]) >= cfg.stay:
            last = d
        elif d - last > 1:
            break
    return _Change(i, fit, first, detected, last, sign, step, ramp)


def member_shifts(
    s: GroupSeries,
    raw: FloatArray,
    quantum: FloatArray,
    cfg: MemberSettings | None = None,
    group_changes: FloatArray | None = None,
    *,
    heat: bool = False,
    flats: npt.NDArray[np.bool_] | None = None,
) -> list[MemberShift]:
    """Every member's departures from its peers with their verdicts.

    ``raw`` [member, hour] as registered (NaN where missing); ``quantum`` [member] the
    register's pulse weight; ``group_changes`` [change, hour] what the group's own
    faults (a leak, a tapping-in, its balance meter's error) add to the balance meter,
    in its unit. A still register or the tamper flag decides the kind; the others are
    judged by the balance (:func:`_confirm`), every overlapping change, the group's
    included, fitted at once so that two faults cannot both claim one move of the
    balance. ``heat``: the members meter heat, whose use follows the weather (a deficit
    following the days' use then tells a drifting register from a change of the
    setpoint, :func:`deficit_follows_use`); ``flats`` [member]: the members that meter
    a flat's heat (a riser's flow does not follow its flats' use), whose deficit must
    not stay level for the balance's verdict of a drift to stand (:func:`_level_deficit`)."""
    cfg = cfg or MemberSettings()
    if raw.shape[0] < 3:
        return []
    daily, first_hour = daily_sums(raw)
    nd = daily.shape[1]
    unsound = _unsound_days(s, raw, first_hour, cfg, heat=heat)
    base = [np.ones(nd * HOURS // BLOCK)]
    if s.drivers is not None:
        base.extend(_blocks(s.drivers, first_hour) / BLOCK)
    ctx = _Context(
        s,
        raw,
        daily,
        first_hour,
        quantum,
        _hourly_profile(raw, first_hour, unsound),
        cfg,
        _blocks(s.balance, first_hour),
        np.column_stack(base),
        _blocks(group_changes, first_hour)
        if group_changes is not None and group_changes.size
        else np.zeros((0, nd * HOURS // BLOCK)),
    )
    changes: list[tuple[_Change, PeerModel, FloatArray]] = []
    masked = daily.copy()
    todo = set(range(raw.shape[0]))
    for _ in range(cfg.max_episodes):
        if not todo:
            break
        pm = peer_model(masked, quantum, cfg.peers, unsound)
        found = [c for c in (_change(pm, i, cfg) for i in sorted(todo)) if c is not None]
        todo = {c.member for c in found}
        for c in found:
            changes.append((c, pm, masked[c.member].copy()))
            masked[c.member, c.first_day : c.last_day + 1] = np.nan
    drafts = [d for c, pm, own in changes for d in _drafts(c, pm, own, ctx)]
    out = []
    for d in drafts:
        # a still register or the tamper flag decides the kind; the balance's view is
        # still evidence (did the tampering show in the group's imbalance?)
        judged = _confirm(d, drafts, ctx)
        flat = flats is not None and bool(flats[d.change.member])
        if heat and d.verdict is None and judged.verdict == "use_changed":
            judged = _by_the_days(judged, cfg, flat=flat)
        elif heat and flat and d.verdict is None:
            judged = _level_deficit(judged, cfg)
        verdict = d.verdict or judged.verdict or "use_changed"
        out.append(MemberShift(d.change.member, d.episode, verdict, d.deficit, judged.evidence))
    return out


def _unsound_days(
    s: GroupSeries, raw: FloatArray, first_hour: int, cfg: MemberSettings, *, heat: bool
) -> npt.NDArray[np.bool_]:
    """[member, day] (the whole days from ``first_hour``): the days a register is known
    not to measure its use, whatever its peers say, left out of the group's level and
    of its hours' profile: its module's tamper flag was up (a module of one channel: a
    multi-channel module's flag is every channel's, and one magnet slows one of them),
    or (heat only: a flat or riser always draws heat in the heating season, while a
    water meter stands still on a day nobody is home) it stood still for
    ``min_stuck_hours`` or more. Several members faulty at once otherwise drag the
    median with them: with three of five risers stopped, slowed or tampered with, the
    level fell to 0.6, the two sound ones read as over-registering and a fourth's drift
    was hidden; and a large riser that stopped at 22 h moved its day's hours to the
    morning, where what it missed was then added back."""
    bad = np.zeros(raw.shape, dtype=bool)
    if s.tamper is not None and s.tamper.shape == raw.shape:
        _, row, count = np.unique(s.tamper, axis=0, return_inverse=True, return_counts=True)
        bad |= s.tamper & (count[row.ravel()] == 1)[:, None]
    if heat:
        bad |= _still_runs(raw == 0, cfg.min_stuck_hours)
    return daily_sums(bad[:, first_hour:].astype(np.float64))[0] > 0


def _still_runs(zero: npt.NDArray[np.bool_], min_hours: int) -> npt.NDArray[np.bool_]:
    """[member, hour]: the hours of runs of ``zero`` at least ``min_hours`` long."""
    edge = np.diff(np.pad(zero.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, ends = np.nonzero(edge == 1), np.nonzero(edge == -1)[1]
    keep = ends - starts[1] >= min_hours
    mark = np.zeros((zero.shape[0], zero.shape[1] + 1), dtype=np.int64)
    np.add.at(mark, (starts[0][keep], starts[1][keep]), 1)
    np.add.at(mark, (starts[0][keep], ends[keep]), -1)
    return np.cumsum(mark, axis=1)[:, :-1] > 0


@dataclass(frozen=True)
class _Context:
    s: GroupSeries
    raw: FloatArray
    daily: FloatArray
    first_hour: int
    quantum: FloatArray
    profile: FloatArray
    cfg: MemberSettings
    # 6-hour sums over the whole days analysed, for the balance's confirmation
    balance_blocks: FloatArray
    base_blocks: FloatArray  # [block, regressor]: 1, the drivers
    group_blocks: FloatArray  # [change, block]: the group's own faults, as the balance's


@dataclass(frozen=True)
class _Draft:
    change: _Change
    episode: Episode
    deficit: FloatArray
    deficit_blocks: FloatArray  # the deficit's 6-hour sums, as the balance's
    loss: float
    verdict: str | None  # None: the balance decides
    evidence: dict[str, Any]


def _hourly_profile(
    members: FloatArray, first_hour: int, unsound: npt.NDArray[np.bool_]
) -> FloatArray:
    """[hour] each hour's share of its day in the group's total use, over the members
    whose day is not ``unsound`` [member, day] (all of them on a day none is sound): a
    register stopped or slowed from some hour of a day moves the day's total to the
    hours before it, and what the group's faulty meters missed, spread by such a day,
    went to the wrong hours (read as a group fault of its own, down then up)."""
    nd = unsound.shape[1]
    by_day = members[:, first_hour:].reshape(members.shape[0], nd, HOURS)
    sound = ~unsound | np.asarray(unsound.all(axis=0))[None, :]
    total = np.nansum(np.where(sound[:, :, None], by_day, np.nan), axis=0)
    day = total.sum(axis=1, keepdims=True)
    flat = np.full_like(total, 1.0 / HOURS)
    return np.asarray(np.where(day > 0, total / np.where(day > 0, day, 1.0), flat).ravel())


def _own_profile(ctx: _Context, i: int, fit_day: int, days: slice) -> FloatArray:
    """[hour] of ``days``: each hour's share of its day in member ``i``'s predicted use.
    The group's profile carries each day's weather (colder nights); the member's own
    habits (when its occupants are home, its radiators' settings) move its hours against
    the group's the same way every day: the ratio of its hour-of-day shares to the
    group's over the ``ref_days`` before ``fit_day``."""
    group = ctx.profile.reshape(-1, HOURS)
    ref = slice(max(0, fit_day - ctx.cfg.peers.ref_days), fit_day)
    own = ctx.raw[i, ctx.first_hour :].reshape(-1, HOURS)[ref]
    ok = np.isfinite(own).all(axis=1)
    habit = np.ones(HOURS)
    if ok.sum() >= ctx.cfg.peers.min_ref_days:
        with np.errstate(divide="ignore", invalid="ignore"):
            mine = own[ok].sum(axis=0) / own[ok].sum()
            theirs = group[ref][ok].mean(axis=0)
            habit = np.where((mine > 0) & (theirs > 0), mine / theirs, 1.0)
    shaped = group[days] * habit
    total = shaped.sum(axis=1, keepdims=True)
    return np.asarray(
        np.where(total > 0, shaped / np.where(total > 0, total, 1.0), group[days]).ravel()
    )


def _worth(s: GroupSeries) -> FloatArray:
    """The balance meter's unit per member unit, hourly (kWh per m³ for flow meters)."""
    own_total = np.nansum(s.members, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(own_total > 0, s.subscribers / own_total, np.nan))


def _draft(c: _Change, pm: PeerModel, own: FloatArray, ctx: _Context) -> _Draft:
    """What the member missed, and the verdicts that need no balance."""
    cfg, i, n = ctx.cfg, c.member, ctx.raw.shape[1]
    days = slice(c.first_day, c.last_day + 1)
    expected_daily = np.nan_to_num(pm.expected[i, c.fit_day, days])
    offset = ctx.first_hour
    hours = slice(offset + HOURS * c.first_day, offset + HOURS * (c.last_day + 1))
    expected = np.repeat(expected_daily, HOURS) * _own_profile(ctx, i, c.fit_day, days)
    deficit = np.zeros(n)
    deficit[hours] = (expected - np.nan_to_num(ctx.raw[i, hours])) * np.nan_to_num(
        _worth(ctx.s)[hours]
    )
    follows = deficit_follows_use(
        _in_blocks(expected), _in_blocks(ctx.raw[i, hours]), cfg.min_ramp_days * HOURS // BLOCK
    )
    relative = _relative(c, pm, own)
    loss = float(relative[np.argmax(np.abs(relative))]) if relative.size else 0.0
    start, end = hours.start, hours.stop - 1
    lo = max(0, start - HOURS)
    run_start, run = _longest_zero_run(ctx.raw[i, lo : end + 1])
    should = float(expected_daily.sum() / max(expected_daily.size * HOURS, 1) * run)
    tamper = ctx.s.tamper
    flagged = (
        tamper is not None and bool(tamper[i, lo : end + 1].any()) and _flag_is_own(ctx, i, lo, end)
    )
    verdict: str | None = None
    basis = "balance_confirmed"  # unless a rule below decides without the balance
    if run >= cfg.min_stuck_hours and should >= cfg.min_stuck_quanta * ctx.quantum[i]:
        start, end = lo + run_start, lo + run_start + run - 1
        # a magnet that stops the register raises the flag as it is laid on: a flag that
        # rose as the register stopped (within ``flag_lead`` hours either side) is this
        # fault's; one that was up well before while the register still counted is an
        # earlier magnet's (its own finding, _drafts), one raised while it had stood
        # still for longer a magnet laid on a stuck register (_flag_split), and one
        # raised after the register counted again the next fault's
        still_flag = (
            tamper is not None
            and _first_rise(tamper[i], start - cfg.flag_lead, start + cfg.flag_lead) is not None
        )
        verdict = "magnet" if still_flag else "stuck_meter"
        basis = "register_still_tamper_flag" if still_flag else "register_still"
    elif flagged:
        verdict, basis = "magnet", "tamper_flag"
        assert tamper is not None
        # the magnet was laid on when the module raised the flag: days of the episode
        # before it are the daily sums' coarse dating (or their noise), not the fault
        start = max(start, lo + int(np.argmax(tamper[i, lo : end + 1])))
    elif abs(loss) <= cfg.drift_loss and _ramp_shaped(_relative(c, pm, own, lead=3), cfg):
        verdict, basis = "drifting_meter", "growing_error"
    if basis not in (*STILL, *FLAGGED):
        # the days date the departure to a day, and a day of the member's own noise
        # before it can open the episode early: the hour its hourly deficit steps from
        registered = ctx.raw[i, hours]
        gap = np.where(np.isnan(registered), np.nan, expected - registered)
        start = hours.start + _step_hour(-c.sign * gap, cfg.refine_hours)
        deficit[:start] = 0.0
    active = c.last_day == ctx.daily.shape[1] - 1
    detected = min(max(offset + HOURS * (c.detected_day + 1) - 1, start), n - 1)
    evidence = {
        "step_glr": round(c.step, 2),
        "ramp_glr": round(c.ramp, 2),
        "loss": round(loss, 4),
        "basis": basis,  # the one rule that decided the kind
        "still_hours": run if basis.startswith("register_still") else 0,
        # the peers' prediction is fitted on the member's days before this hour (those of
        # an earlier episode left out): what its use is measured against, and so what
        # its riser's ΔT is (a piece after a still register, or after another fault)
        "reference_end": offset + HOURS * _last_known(own, c.fit_day),
    }
    if follows is not None:
        evidence["deficit_follows_use_f"], evidence["deficit_use_share"] = follows
    if verdict == "stuck_meter":
        # a magnet strong enough to stop the register entirely, on a module that raised
        # no tamper flag, leaves the same data as a stuck register: say both
        evidence["also_possible"] = ["magnet"]
    return _Draft(
        c,
        Episode(start, detected, min(end, n - 1), active),
        deficit,
        _blocks(deficit, offset),
        loss,
        verdict,
        evidence,
    )


def _flag_is_own(ctx: _Context, i: int, lo: int, hi: int) -> bool:
    """Is the tamper flag member ``i``'s module raised within hours [lo, hi] its own?
    A multi-channel module's flag is every channel's (the members whose flag rows are
    the same); a magnet slows the register it is laid on, so the flag names the channel
    that lost the largest share of its use over the flag's hours (:func:`lost_shares`).
    A drift of another channel beside it is judged by its own departure."""
    tamper = ctx.s.tamper
    assert tamper is not None
    sharing = np.flatnonzero((tamper == tamper[i]).all(axis=1))
    if sharing.size < 2:
        return True
    on = lo + np.flatnonzero(tamper[i, lo : hi + 1])
    losses = lost_shares(ctx.raw, sharing, int(on[0]), int(on[-1]))
    return bool(losses[int(np.flatnonzero(sharing == i)[0])] >= losses.max())


def _last_known(own: FloatArray, day: int) -> int:
    """The day after the last one before ``day`` with a known use (``day`` if none)."""
    known = np.flatnonzero(np.isfinite(own[:day]))
    return int(known[-1]) + 1 if known.size else day


def _step_hour(gap: FloatArray, span: int, within: float = 4.0) -> int:
    """The hour (from 0, before ``span``) at which ``gap`` (hourly, the departure's
    sign positive, NaN where unknown) steps up from zero, over the first ``span`` hours
    and the ``span`` after them: the earliest hour whose step fits within ``within`` of
    the best one's drop of the squared error (in the hourly spread about the best step's
    level: 4, about a 95 % interval); 0 when no step is positive. The hours a noisy
    deficit leaves uncertain go to the earlier start."""
    window = gap[: 2 * span]
    known = np.isfinite(window)
    tail = np.cumsum(np.where(known, window, 0.0)[::-1])[::-1]
    count = np.cumsum(known[::-1])[::-1]
    k = min(span, max(window.size - 12, 1))
    # a step from hour j drops the squared error by tail² / count (its level fitted)
    drop = np.where((count[:k] > 0) & (tail[:k] > 0), tail[:k] ** 2 / np.maximum(count[:k], 1), 0)
    best = int(np.argmax(drop))
    if drop[best] <= 0:
        return 0
    after = window[best:][known[best:]]
    spread = float(after.std()) if after.size > 1 else 0.0
    return int(np.argmax(drop >= drop[best] - within * spread**2)) if spread > 0 else best


def _first_rise(flag: npt.NDArray[np.bool_], lo: int, hi: int) -> int | None:
    """The first hour within [lo, hi] at which ``flag`` rose (went up from down, or was
    up at the first hour read), if any."""
    lo = max(lo, 0)
    window = flag[lo : hi + 1]
    before = np.concatenate([[flag[lo - 1] if lo > 0 else False], window[:-1]])
    rises = np.flatnonzero(window & ~before)
    return lo + int(rises[0]) if rises.size else None


def deficit_follows_use(
    expected: FloatArray, registered: FloatArray, min_points: int
) -> tuple[float, float] | None:
    """(F, share) of the deficit ``expected - registered`` (per period: 6-hour sums) as
    a share of the predicted use against a constant (F: how much a share fits better
    than a constant, in the share's residual variance; None with fewer than
    ``min_points`` periods with both).

    A heat meter whose register is off by a factor misses that share of every hour's
    heat, so its deficit follows the weather, night and day and from day to day. A flat
    whose occupants turn the thermostat down or leave loses UA x the setpoint's change
    less heat, the same on a cold night as on a mild afternoon: its deficit stays level.
    Both are one number fitted, so the better fit decides; 6-hour sums see the weather's
    swing within each day, which daily sums average away (days of one weather could not
    tell the two apart)."""
    ok = np.isfinite(expected) & np.isfinite(registered) & (expected > 0)
    use, deficit = expected[ok], expected[ok] - registered[ok]
    if use.size < max(min_points, 2):
        return None
    share = float(deficit @ use) / float(use @ use)
    shared = float(np.sum((deficit - share * use) ** 2))
    constant = float(np.sum((deficit - deficit.mean()) ** 2))
    return round((constant - shared) / max(shared / (use.size - 1), 1e-12), 2), round(share, 4)


def _by_the_days(d: _Draft, cfg: MemberSettings, *, flat: bool) -> _Draft:
    """A step of a heat meter the balance cannot confirm, whose deficit follows the
    predicted use (a share of it fitting better than a constant by ``follow_f``): a
    drift where that share is at most ``drift_loss``; a magnet where a flat's meter lost
    ``behaviour_loss`` or more of its use (no setpoint its occupants choose takes that
    much: what they save is a level, UA x the setpoint's change, and one that follows
    the weather is a register missing a share of every hour's heat). Else left a
    change of use."""
    f = d.evidence.get("deficit_follows_use_f")
    share = float(d.evidence.get("deficit_use_share", 0.0))
    if f is None or f <= cfg.follow_f or _refuted(d, cfg):
        return d
    if abs(share) <= cfg.drift_loss:
        return replace(d, verdict="drifting_meter", evidence={**d.evidence, "basis": "follows_use"})
    if flat and d.change.sign < 0 and d.loss >= cfg.behaviour_loss:
        return replace(d, verdict="magnet", evidence={**d.evidence, "basis": "follows_use"})
    return d


def _refuted(d: _Draft, cfg: MemberSettings) -> bool:
    """Does the balance speak against the member's miss? Its best closure is below
    ``closure`` (it fits best with little of the miss added back) and adding all of it
    back fits worse by ``refute_z`` noise units: the balance meter, which saw every
    flat's real heat, did not see what the meter is said to have missed (or added), so
    the use changed, whatever shape its deficit has. Not while a fault of the group
    itself overlaps the episode (:func:`_confirm` gives no ``refute_z`` then)."""
    closure = float(d.evidence.get("closure", 0.0))
    return closure < cfg.closure[0] and float(d.evidence.get("refute_z", 0.0)) >= cfg.refute_z


def _level_deficit(d: _Draft, cfg: MemberSettings) -> _Draft:
    """A flat's heat meter that the balance calls drifting (a share of the use missed or
    added) while its deficit stays level: a constant fits the 6-hour sums better than a
    share of the predicted use by ``level_f`` (F, as in :func:`deficit_follows_use`). A
    register off by a factor is off by a share of every hour's heat, on cold nights
    most; a flat whose occupants came home or turned the thermostat up uses UA x the
    setpoint's change more, the same heat whatever the weather. The shape outweighs a
    balance that barely confirmed (one flat is a small share of a building): a change
    of use."""
    f = d.evidence.get("deficit_follows_use_f")
    if d.verdict != "drifting_meter" or f is None or f > -cfg.level_f:
        return d
    return replace(d, verdict="use_changed")


def _drafts(c: _Change, pm: PeerModel, own: FloatArray, ctx: _Context) -> list[_Draft]:
    """The change's draft; where its register stood still or its module raised the
    tamper flag after whole days the change was already away from its peers by itself
    (a magnet, a clog or a drift, then a register that stopped or a magnet laid on), the
    drafts of those days first (judged the same way); and where its register stood still
    and then counted again while it stayed away for two days more (a riser clogging
    behind a stuck register, a meter slowed after it stood still), a draft from the day
    after it counted again. Each is a fault of its own, judged on its own; each one's
    miss ends where the next begins."""
    d = _draft(c, pm, own, ctx)
    basis = str(d.evidence["basis"])
    out: list[_Draft] = []
    from_day = (d.episode.start - ctx.first_hour) // HOURS
    if basis in (*FLAGGED, *STILL) and _away_before(c, pm, from_day, ctx):
        # it was away from its peers for whole days before its register stood still or
        # its module raised the flag (a clog, a drift or a flagless magnet, then a
        # register that stopped or a magnet laid on): that departure is a fault of its
        # own, from its own start to the day before (itself judged the same way)
        out = _drafts(replace(c, last_day=from_day - 1), pm, own, ctx)
        d = _cut(d, ctx.first_hour + HOURS * from_day, d.deficit.size, ctx)
    if basis not in STILL:
        return [*out, d]
    *before, d = _flag_split(d, ctx)
    rest = (d.episode.end + 1 - ctx.first_hour) // HOURS + 1
    if rest > c.last_day - 1:
        return [*out, *before, d]
    after = _draft(replace(c, first_day=rest, detected_day=max(c.detected_day, rest)), pm, own, ctx)
    return [*out, *before, _cut(d, 0, ctx.first_hour + HOURS * rest, ctx), after]


def _flag_split(d: _Draft, ctx: _Context) -> list[_Draft]:
    """A stuck register's draft, or, where its module raised the tamper flag while it
    had already stood still for more than ``flag_lead`` hours, two: the stuck meter up
    to the flag's hour, then a magnet from it. A magnet raises the flag as it is laid on;
    a register that stood still for hours before the flag rose stopped by itself, and
    the magnet laid on it later is a fault of its own (it adds nothing the register
    shows, so the flag alone dates it)."""
    ep, tamper = d.episode, ctx.s.tamper
    if d.evidence["basis"] != "register_still" or tamper is None:
        return [d]
    rose = _first_rise(tamper[d.change.member], ep.start + ctx.cfg.flag_lead + 1, ep.end)
    if rose is None:
        return [d]
    stuck = replace(
        _cut(d, 0, rose, ctx),
        episode=Episode(ep.start, max(ep.start, min(ep.confirmed, rose - 1)), rose - 1, False),
        evidence={**d.evidence, "still_hours": rose - ep.start},
    )
    magnet = replace(
        _cut(d, rose, d.deficit.size, ctx),
        episode=Episode(rose, max(rose, ep.confirmed), ep.end, ep.active),
        verdict="magnet",
        evidence={
            **{k: v for k, v in d.evidence.items() if k != "also_possible"},
            "basis": "register_still_tamper_flag",
            "still_hours": ep.end + 1 - rose,
        },
    )
    return [stuck, magnet]


def _cut(d: _Draft, lo: int, hi: int, ctx: _Context) -> _Draft:
    """The draft with its deficit kept on hours [lo, hi) only (a neighbouring piece of
    its episode is another fault's)."""
    hours = np.arange(d.deficit.size)
    deficit = np.where((hours >= lo) & (hours < hi), d.deficit, 0.0)
    return replace(d, deficit=deficit, deficit_blocks=_blocks(deficit, ctx.first_hour))


def _away_before(c: _Change, pm: PeerModel, still_day: int, ctx: _Context) -> bool:
    """Were the whole days of the change before ``still_day`` away from the peers by
    themselves, as a change is (their residuals' sum beyond ``detect`` noise units), and
    did the evidence cross before the register stopped?"""
    days = slice(c.first_day, still_day)
    if still_day <= c.first_day or c.detected_day >= still_day:
        return False
    z = np.nan_to_num(pm.z[c.member, c.fit_day, days])
    return bool(c.sign * z.sum() / np.sqrt(z.size) >= ctx.cfg.detect)


def _relative(c: _Change, pm: PeerModel, own: FloatArray, lead: int = 0) -> FloatArray:
    """1 − registered / predicted per day of the episode (and ``lead`` days before it,
    where the departure of a ramp is still small)."""
    fit = max(
        min(c.fit_day, c.first_day - lead), int(np.argmax(~np.isnan(pm.expected[c.member, :, -1])))
    )
    days = slice(max(fit, c.first_day - lead), c.last_day + 1)
    expected = np.nan_to_num(pm.expected[c.member, fit, days])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(expected > 0, 1 - np.nan_to_num(own[days]) / expected, 0.0))


def _ramp_shaped(relative: FloatArray, cfg: MemberSettings) -> bool:
    """The departure grows from nothing rather than jumping to a level: the best ramp
    (zero until some day, then rising linearly) leaves a clearly smaller squared error
    than the best step (zero until some day, then one level)."""
    if relative.size < cfg.min_ramp_days:
        return False
    ramp_sse = step_sse = np.inf
    for start in range(relative.size - 1):
        before = float((relative[:start] ** 2).sum())
        after = relative[start:]
        k = np.arange(1, after.size + 1, dtype=np.float64)
        slope = float(k @ after / (k @ k))
        ramp_sse = min(ramp_sse, before + float(((after - slope * k) ** 2).sum()))
        step_sse = min(step_sse, before + float(((after - after.mean()) ** 2).sum()))
    return ramp_sse < cfg.ramp_preference * step_sse


def _in_blocks(hourly: FloatArray) -> FloatArray:
    """BLOCK-hour sums of whole days of hours (NaN where an hour is missing)."""
    return np.asarray(hourly.reshape(-1, BLOCK).sum(axis=1))


def _blocks(hourly: FloatArray, first_hour: int) -> FloatArray:
    """BLOCK-hour sums over the whole days analysed (the last axis; missing hours 0)."""
    return block_sums(np.nan_to_num(hourly[..., first_hour:]), BLOCK)[0]


def _confirm(d: _Draft, drafts: list[_Draft], ctx: _Context) -> _Draft:
    """Did the balance meter see what the member missed? The balance (6-hour sums) is
    fitted on the subscribers with a share (the *closure*) of this member's miss added
    back, the drivers, what every other member with a change missed and what the
    group's own faults added (free weights), from some days before the change to its
    end. The closure that fits best says it:
    1, the balance saw the heat the member did not register (the meter is wrong); 0,
    the use really changed. It is confirmed when it fits better than 0 by ``confirm_z``
    noise units. Fitting the overlapping changes together (stuck meters too) keeps two
    changes from both claiming one move of the balance; of the lead-ins tried, the one
    the balance fits best is kept (a leak that began a week earlier must not stand in
    the way)."""
    cfg, c = ctx.cfg, d.change
    per_day = HOURS // BLOCK
    subscribers = _blocks(ctx.s.subscribers, ctx.first_hour)
    best: tuple[float, float, float, float] | None = None  # spread, closure, z, refute z
    missing = float(d.deficit.sum())
    for lead in cfg.balance_lead_days:
        window = slice(max(0, c.first_day - lead) * per_day, (c.last_day + 1) * per_day)
        others = [o.deficit_blocks for o in drafts if o is not d] + list(ctx.group_blocks)
        fixed = np.column_stack([ctx.base_blocks, *(o for o in others if o[window].any())])[window]
        own, subs, y = d.deficit_blocks[window], subscribers[window], ctx.balance_blocks[window]
        dof = y.size - fixed.shape[1] - 2
        if dof < cfg.min_balance_dof:
            continue
        sse = [least_squares(y, np.column_stack([subs + t * own, fixed]))[0] for t in CLOSURES]
        rss = np.array([float(r @ r) for r in sse])
        k = int(np.argmin(rss))
        spread = float(np.sqrt(rss[k] / dof))
        z = float(np.sqrt(max(rss[0] - rss[k], 0.0))) / spread if spread > 0 else 0.0
        whole = float(np.sqrt(max(rss[WHOLE] - rss[k], 0.0))) / spread if spread > 0 else 0.0
        if best is None or spread < best[0]:
            best = (spread, float(CLOSURES[k]), z, whole)
    _, closure, z, refute = best if best is not None else (0.0, 0.0, 0.0, 0.0)
    episode = slice(c.first_day * per_day, (c.last_day + 1) * per_day)
    if any(g[episode].any() for g in ctx.group_blocks):
        # a fault of the group itself over the episode (fitted with a free weight) can
        # take the balance's move that was the member's: no refutation then
        refute = 0.0
    confirmed = z >= cfg.confirm_z and cfg.closure[0] <= closure <= cfg.closure[1]
    if not confirmed:
        verdict = "use_changed"
    elif c.sign < 0 and d.loss >= cfg.magnet_loss:
        verdict = "magnet"
    else:
        # the balance saw what the meter did not register (or did not see what it
        # added): the meter is wrong, and a loss short of a magnet's is a drift that
        # stepped or settled, never a change of use
        verdict = "drifting_meter"
    evidence = {
        **d.evidence,
        "missing": missing,
        "balance_z": z,
        "closure": closure,
        "refute_z": round(refute, 2),
    }
    return replace(d, verdict=verdict, evidence=evidence)


def _longest_zero_run(values: FloatArray) -> tuple[int, int]:
    """(start, length) of the longest run of exact zeros."""
    best = (0, 0)
    run_start, run = 0, 0
    for j, v in enumerate(values):
        if v == 0:
            if run == 0:
                run_start = j
            run += 1
            if run > best[1]:
                best = (run_start, run)
        else:
            run = 0
    return best
