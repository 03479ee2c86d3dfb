"""Analyse one building: imbalance of every group with its band, detectors, alerts."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np

from balans_balance.alerts import reconcile
from balans_balance.coverage import store_coverage
from balans_balance.detectors.clogged_riser import (
    RiserSettings,
    dt_change,
    moved_hours,
    riser_verdict,
    split_at_dt_rise,
    without_faulty_pairs,
)
from balans_balance.detectors.leak_tapping_balance_meter import (
    Diagnosis,
    ExcessSettings,
    GroupSeries,
    Imbalance,
    diagnose_group,
    imbalance_band,
)
from balans_balance.detectors.long_standing import (
    StillRegister,
    Tampered,
    never_present,
    still_registers,
    tampered,
)
from balans_balance.detectors.meter_faults import FLAGGED, METER_FAULTS, member_shifts
from balans_balance.detectors.sensor_faults import sensor_findings
from balans_balance.detectors.silences_and_batteries import reporting_findings
from balans_balance.detectors.verification_due import verification_findings
from balans_balance.episodes import Episode
from balans_balance.findings import Finding
from balans_balance.forecast import (
    continuous_night_flow,
    degree_days,
    month_ends,
    normal_daily_mean_c,
    remaining_days,
)
from balans_balance.loading import BuildingData, GroupDef, load_building
from balans_balance.metrics import GROUPS_EVALUATED
from balans_balance.reasons import percent, reason
from balans_core.settings import CommonSettings
from balans_db.queries import world
from balans_physics.water import heat_per_m3

# below it the balance is mostly unmetered use (cold water with few flat meters): it
# cannot confirm what one member missed, nor does it make the members peers
MIN_MEMBER_COVERAGE = 0.5
EVIDENCE_POINTS = 336
MERGE_GAP = timedelta(hours=12)
# what names a member's fault without the balance: the module's tamper flag (a still
# water register alone may be a flat nobody lives in)


@dataclass(frozen=True)
class GroupResult:
    """One analysed group: its series and its imbalance against the expected reading."""

    group: GroupDef
    series: GroupSeries
    imbalance: Imbalance


@dataclass(frozen=True)
class AnalysisResult:
    findings: list[Finding]
    transitions: dict[str, int]
    groups_analysed: int
    incomplete: frozenset[int]  # the groups too few flats meter (coverage.py)


def fill_missing_members(own: np.ndarray) -> np.ndarray:
    """Hours a member did not report (a dead module, a gap allocation could not bridge) get
    the member's usual level times the group's level that hour, so a silent meter does
    not look like a leak; the missing-data detectors report the silence itself.

    The group's level in an hour is what the reporting members used over what they
    usually use, so other members missing at the same time (two dead modules) do not
    pull the estimate down; each member's usual level is taken against that same level
    over the hours it reported (two passes)."""
    known = ~np.isnan(own)
    values = np.where(known, own, 0.0)
    if known.all():
        return values
    level = values.sum(axis=1) / np.maximum(known.sum(axis=1), 1)
    for _ in range(2):
        usual = (level[:, None] * known).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(usual > 0, values.sum(axis=0) / usual, 0.0)
        seen = (ratio[None, :] * known).sum(axis=1)
        level = np.where(seen > 0, values.sum(axis=1) / np.where(seen > 0, seen, 1.0), 0.0)
    filled = np.where(known, values, level[:, None] * ratio[None, :])
    filled[:, ~known.any(axis=0)] = np.nan  # nobody reported: unknown, not zero
    return np.asarray(filled)


def group_series(data: BuildingData, group: GroupDef) -> GroupSeries | None:
    """The group's balance, subscribers (in the balance meter's unit) and members."""
    if not group.member_ids or group.balance_meter_id not in data.meter_index:
        return None
    balance = data.series(group.balance_meter_id)
    members = [m for m in group.member_ids if m in data.meter_index]
    own = fill_missing_members(np.array([data.series(m) for m in members]))
    subs = own.sum(axis=0)
    per_m3 = None
    heat = data.utilities[group.balance_meter_id] == "heat"
    # the building's sensor pair gives the coolant's heat per m³: volume-metered members
    # are priced with it, and every heat group's changes are fitted in coolant volume
    # (water lost at the supply temperature is a constant volume whatever the ΔT)
    pair = heat and not (np.isnan(data.supply_c).all() or np.isnan(data.return_c).all())
    if data.units[group.balance_meter_id] == "kWh":
        if all(data.units[m] == "m3" for m in members):
            per_m3 = heat_per_m3(data.supply_c, data.return_c)
            subs = subs * per_m3
        elif pair and all(data.units[m] == "kWh" for m in members):
            per_m3 = heat_per_m3(data.supply_c, data.return_c)
    hours = len(data.hours)
    tamper = np.array([data.tamper.get(m, np.zeros(hours, bool)) for m in members])
    balance_dt = members_dt = None
    if per_m3 is not None and members and all(m in data.riser_dt for m in members):
        # the returning water as the risers' own pairs see it, mixed by their flows
        dts = np.array([data.riser_dt[m] for m in members])
        with np.errstate(divide="ignore", invalid="ignore"):
            members_dt = np.nansum(own * dts, axis=0) / np.nansum(own, axis=0)
        members_dt[~np.isfinite(dts).any(axis=0)] = np.nan
        balance_dt = data.supply_c - data.return_c
    return GroupSeries(
        balance=balance,
        subscribers=subs,
        night=data.night,
        members=own,
        tamper=tamper,
        heat_per_m3=per_m3,
        drivers=data.supply_c[None, :] if heat and not np.isnan(data.supply_c).all() else None,
        balance_dt=balance_dt,
        members_dt=members_dt,
    )


_GROUP_FAULT_NAMES = {
    "leak": "leak",
    "unauthorised_connection": "unauthorised draw",
    "faulty_balance_meter": "balance meter over-registering",
}


def _naming(d: Diagnosis) -> str:
    """The fault's name, with the others the data fits as well ("leak or unauthorised
    draw"): the alert's kind is the first, ``evidence.also_possible`` lists the rest."""
    names = [d.kind, *d.evidence.get("also_possible", [])]
    if len(names) == 1:
        return d.kind.replace("_", " ")
    return " or ".join(_GROUP_FAULT_NAMES[n] for n in names)


def _finding(
    data: BuildingData, group: GroupDef, d: Diagnosis, series: GroupSeries, share: np.ndarray
) -> Finding:
    """A group fault; a faulty balance meter is named (it is the group's own meter)."""
    ep = d.episode
    meter_id = group.balance_meter_id if d.kind == "faulty_balance_meter" else None
    lo = max(0, ep.end + 1 - EVIDENCE_POINTS)
    evidence: dict[str, Any] = {
        **d.evidence,
        "detected_hour": data.hours[ep.confirmed].isoformat(),
        "group": group.name,
        "series_from": data.hours[lo].isoformat(),
        "imbalance_share": [
            None if np.isnan(v) else round(float(v), 5) for v in share[lo : ep.end + 1]
        ],
    }
    if meter_id is not None:
        evidence["meter_serial"] = data.meter_serials[meter_id]
    code, params, sentence = reason(
        f"{d.kind}.{d.evidence['shape']}",
        naming=_naming(d),
        group=group.name,
        excess_pct=percent(float(d.evidence["excess_share"])),
    )
    if "also_possible" in d.evidence:
        params["also_possible"] = d.evidence["also_possible"]
    return Finding(
        kind=d.kind,
        # one alert per cause: a leak during a tapping-in during a drift are three, and
        # a second tapping-in while the first goes on is a fourth (its slot)
        cause_key=f"group:{group.id}:{d.kind}" + (f":{d.slot}" if d.slot else ""),
        first_hour=data.hours[ep.start],
        last_hour=data.hours[ep.end],
        active=ep.active,
        summary=sentence,
        building_id=data.building_id,
        group_id=group.id,
        meter_id=meter_id,
        severity="critical" if d.kind in ("leak", "unauthorised_connection") else "warning",
        evidence=evidence,
        reason_code=code,
        reason_params=params,
        detected_hour=data.hours[ep.confirmed],
        began_before=ep.start == 0,
    )


def member_alerts(
    data: BuildingData, group: GroupDef, s: GroupSeries, group_changes: np.ndarray | None = None
) -> tuple[list[Finding], np.ndarray]:
    """Meters that stopped, slowed or drift against their peers (named), and risers
    whose flow fell while the balance did not move (a clog, not the meter); with what
    the faulty meters missed, hourly in the balance meter's unit (to add back to the
    subscribers before the group's own faults are looked for).

    Where the subscribers cover too little of the balance to confirm anything (cold
    water with a few flat meters), only the verdicts that need no balance stand: a still
    register with the tamper flag, the tamper flag."""
    members = [m for m in group.member_ids if m in data.meter_index]
    missed = np.zeros(len(data.hours))
    if not members:
        return [], missed
    raw = np.array([data.series(m) for m in members])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s.subscribers / np.where(s.balance > 0, s.balance, np.nan)
    known = ratio[np.isfinite(ratio)]
    balance_confirms = bool(known.size) and np.median(known) >= MIN_MEMBER_COVERAGE
    quantum = np.array([data.pulse_weights[m] for m in members])
    out = []
    risers = [m for m in members if m in data.riser_dt]
    dt = np.array([data.riser_dt[m] for m in risers]) if risers else None
    own_total = np.nansum(s.members, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # the balance meter's unit per member unit, hourly (kWh per m³ for flow meters)
        worth = np.nan_to_num(np.where(own_total > 0, s.subscribers / own_total, 0.0))
    heat = data.utilities[group.balance_meter_id] == "heat"
    flats = np.array([data.roles[m] != "riser" for m in members])
    shifts = [
        piece
        for shift in member_shifts(
            s, raw, quantum, group_changes=group_changes, heat=heat, flats=flats
        )
        for piece in (
            split_at_dt_rise(
                shift,
                dt,
                risers.index(members[shift.member]),
                raw[shift.member],
                _in_own_unit(shift.deficit, worth),
            )
            if dt is not None and members[shift.member] in risers and balance_confirms
            else [shift]
        )
    ]
    for shift in shifts:
        meter_id = members[shift.member]
        kind = shift.verdict
        evidence = dict(shift.evidence)
        ref_end = int(evidence.pop("reference_end"))  # an hour index, not for the alert
        basis = str(evidence["basis"])
        if not balance_confirms and basis not in FLAGGED:
            continue
        if data.roles[meter_id] == "riser" and balance_confirms:
            change = None
            if dt is not None and meter_id in risers:
                ep = shift.episode
                loss = float(shift.evidence["loss"])
                moved = moved_hours(raw[shift.member], _in_own_unit(shift.deficit, worth), loss)
                change = dt_change(
                    dt,
                    risers.index(meter_id),
                    ep.start,
                    ep.end,
                    moved=moved,
                    ref_end=ref_end,
                )
            evidence["riser_dt_change"] = change
            # a still register or the tamper flag named it: a riser's ΔT cannot overrule
            # that (a magnet laid on a clogged riser finds its ΔT already up)
            verdict = (
                kind
                if basis in FLAGGED
                else riser_verdict(kind, float(shift.evidence["loss"]), change)
            )
            if verdict != kind:
                basis = {
                    "clogged_riser": "dt_rose" if change is not None else "balance_unmoved"
                }.get(verdict, "riser_dt_steady")
            kind = verdict
        if kind in METER_FAULTS:
            missed += shift.deficit
        elif kind != "clogged_riser":
            continue
        ep = shift.episode
        serial = data.meter_serials[meter_id]
        params: dict[str, Any] = {"meter_serial": serial}
        if basis.startswith("register_still"):
            params["still_hours"] = int(evidence["still_hours"])
        else:
            params["loss_pct"] = percent(float(evidence["loss"]))
        if basis == "dt_rose":
            params["dt_change_pct"] = percent(float(evidence["riser_dt_change"]))
        out.append(
            _meter_finding(
                data,
                group,
                meter_id,
                ep,
                reason(f"{kind}.{basis}", **params),
                {
                    **evidence,
                    **_predicted(
                        data, raw[shift.member], _in_own_unit(shift.deficit, worth), ep.end
                    ),
                },
                began_before=False,
            )
        )
    since: dict[int | None, datetime] = {}  # meter -> the earliest start the peers gave
    for f in out:
        since[f.meter_id] = min(f.first_hour, since.get(f.meter_id, f.first_hour))
    for t in tampered(raw, s.tamper):
        meter_id = members[t.member]
        if meter_id not in since:
            missed += t.missed * worth
            out.append(_flagged(data, group, meter_id, t, raw[t.member]))
            since[meter_id] = out[-1].first_hour
    # heat only: a flat always draws some heat in the heating season, while its water
    # meters stand still for weeks when nobody lives there
    for r in still_registers(raw, quantum) if heat else []:
        meter_id = members[r.member]
        if meter_id in since and since[meter_id] <= data.hours[r.start]:
            continue  # already named, from as early
        out = [f for f in out if f.meter_id != meter_id]
        out.append(_not_counting(data, group, meter_id, r))
        if meter_id not in since:
            missed += r.missed * worth
    return out, missed


def _in_own_unit(deficit: np.ndarray, worth: np.ndarray) -> np.ndarray:
    """A deficit in the balance meter's unit back in the member's own."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(worth > 0, deficit / worth, 0.0))


def _predicted(
    data: BuildingData, registered: np.ndarray, missed: np.ndarray, end: int
) -> dict[str, Any]:
    """For the evidence chart: hourly from ``series_from``, what the meter's peers say it
    should have registered (its use plus what it missed) where it missed something, None
    elsewhere (the meter's own use is in the stored consumption)."""
    lo = max(0, end + 1 - EVIDENCE_POINTS)
    used, lost = np.nan_to_num(registered[lo : end + 1]), missed[lo : end + 1]
    return {
        "series_from": data.hours[lo].isoformat(),
        "peers_predicted": [
            round(float(u + m), 4) if m != 0 else None for u, m in zip(used, lost, strict=True)
        ],
    }


def _flagged(
    data: BuildingData, group: GroupDef, meter_id: int, t: Tampered, registered: np.ndarray
) -> Finding:
    """A member whose module raised its tamper flag and that no rule against its peers
    named: a magnet, from the flag's first hour."""
    ep = t.episode
    span = slice(ep.start, ep.end + 1)
    got = float(np.nansum(registered[span]))
    lost = float(t.missed[span].sum())
    loss = lost / (lost + got) if lost + got > 0 else 0.0
    return _meter_finding(
        data,
        group,
        meter_id,
        ep,
        reason("magnet.tamper_flag", meter_serial=data.meter_serials[meter_id],
               loss_pct=percent(loss)),
        {
            "loss": round(loss, 4),
            "basis": "tamper_flag",
            **_predicted(data, registered, t.missed, ep.end),
        },
        began_before=ep.start == 0,
    )  # fmt: skip


def _meter_finding(
    data: BuildingData,
    group: GroupDef,
    meter_id: int,
    ep: Episode,
    reasoned: tuple[str, dict[str, Any], str],
    evidence: dict[str, Any],
    *,
    began_before: bool,
) -> Finding:
    """A fault of one member meter of ``group`` over ``ep``: its cause is the meter (one
    alert per meter, whichever rule named it), its kind the reason's, and its evidence
    the rule's sentence, the meter's serial and the hour it was detected, then
    ``evidence``."""
    code, params, sentence = reasoned
    return Finding(
        kind=code.split(".")[0],
        cause_key=f"meter:{meter_id}",
        first_hour=data.hours[ep.start],
        last_hour=data.hours[ep.end],
        active=ep.active,
        summary=sentence,
        building_id=data.building_id,
        group_id=group.id,
        meter_id=meter_id,
        evidence={
            "rule": sentence,
            "meter_serial": data.meter_serials[meter_id],
            "detected_hour": data.hours[ep.confirmed].isoformat(),
            **evidence,
        },
        reason_code=code,
        reason_params=params,
        detected_hour=data.hours[ep.confirmed],
        began_before=began_before,
    )


def _not_counting(data: BuildingData, group: GroupDef, meter_id: int, r: StillRegister) -> Finding:
    """A register that has not counted since (before) ``r.start`` while its peers used:
    a stuck meter, a magnet where its module raised the tamper flag meanwhile."""
    serial = data.meter_serials[meter_id]
    since = data.hours[r.start]
    before = r.start == 0
    flagged = meter_id in data.tamper and bool(data.tamper[meter_id][r.start :].any())
    params: dict[str, Any] = {"meter_serial": serial, "since": since.date().isoformat()}
    if flagged:
        reasoned = reason("magnet.not_counted_tamper_flag", **params)
    else:
        params |= {"peer_use": round(r.peer_use, 1), "unit": data.units[meter_id]}
        rule = "stuck_meter.not_counted_since_before" if before else "stuck_meter.not_counted"
        reasoned = reason(rule, **params)
    last = len(data.hours) - 1
    return _meter_finding(
        data,
        group,
        meter_id,
        Episode(start=r.start, confirmed=last, end=last, active=True),
        reasoned,
        {
            "still_hours": last + 1 - r.start,
            "peer_use": r.peer_use,
            # without the tamper flag a magnet that stopped the register reads the same
            **({} if flagged else {"also_possible": ["magnet"]}),
            # still since before the data read: no usual level to predict from
            **(_predicted(data, data.series(meter_id), r.missed, last) if r.start else {}),
        },
        began_before=before,
    )


def merge_findings(findings: list[Finding]) -> list[Finding]:
    """One finding per cause and time: overlapping findings of the same cause (two
    detectors blaming one meter) merge into the earliest, spanning both. A finding of
    another kind that begins after the cause's last one ended (a register standing still
    after its drift's episode) is another fault of that device: it stays apart, as a
    cause of its own (``<cause>:<kind>``). Two findings of one search with the same kind
    and hours (a group fault found in two slots) are one.

    The alert store keeps one open alert per cause key, so no key may come out active
    twice: active findings that end up with the same key (the same device's fault seen
    again after a gap while the first still counts as going on) are one finding."""
    merged: list[Finding] = []
    latest: dict[str, int] = {}  # a cause's latest finding in ``merged``, by its key
    seen: set[tuple[object, ...]] = set()
    for f in sorted(findings, key=lambda f: (f.cause_key, f.first_hour)):
        same = (f.kind, f.group_id, f.meter_id, f.module_serial, f.first_hour, f.last_hour)
        if same in seen:
            continue
        seen.add(same)
        cause = f.cause_key
        i = latest.get(cause)
        if i is not None:
            last = merged[i]
            near = f.first_hour <= last.last_hour + MERGE_GAP
            if near and (f.kind == last.kind or f.first_hour <= last.last_hour):
                merged[i] = _spanning(last, f)
                continue
            if f.kind != last.kind:
                f = replace(f, cause_key=f"{cause}:{f.kind}")
        latest[cause] = len(merged)
        merged.append(f)
    return _one_active_per_key(merged)


def _spanning(first: Finding, then: Finding) -> Finding:
    return replace(
        first, last_hour=max(first.last_hour, then.last_hour), active=first.active or then.active
    )


def _one_active_per_key(findings: list[Finding]) -> list[Finding]:
    """Active findings with one key become the first of them, spanning all."""
    out: list[Finding] = []
    active: dict[str, int] = {}
    for f in findings:
        i = active.get(f.cause_key) if f.active else None
        if i is None:
            if f.active:
                active[f.cause_key] = len(out)
            out.append(f)
        else:
            out[i] = _spanning(out[i], f)
    return out


def consumer_leaks(data: BuildingData) -> list[Finding]:
    """Flat water meters that have turned all night for three nights running."""
    out = []
    recent = len(data.hours) - 36
    for meter_id in data.meter_index:  # a replaced meter's use is in its successor's row
        if meter_id not in data.flat_water:
            continue
        i = continuous_night_flow(data.series(meter_id), data.night)
        if i is None or i < recent:
            continue
        serial = data.meter_serials[meter_id]
        code, params, sentence = reason("consumer_leak.night_flow", meter_serial=serial)
        out.append(
            Finding(
                kind="consumer_leak",
                cause_key=f"consumer-leak:{meter_id}",
                first_hour=data.hours[max(0, i - 72)],
                last_hour=data.hours[i],
                active=True,
                summary=sentence,
                reason_code=code,
                reason_params=params,
                detected_hour=data.hours[i],
                building_id=data.building_id,
                meter_id=meter_id,
                severity="info",
                evidence={
                    "rule": "no still hour in 3 consecutive nights",
                    "unit": data.units[meter_id],
                    "detected_hour": data.hours[i].isoformat(),
                },
            )
        )
    return out


def daily_sums(hourly: np.ndarray, day_of: np.ndarray, days: int) -> np.ndarray:
    """[row, day] sums of every row's hours by day (``day_of``: each hour's day, ascending),
    all rows at once: a day's hours are added one after the other from 0, as
    ``np.bincount(day_of, weights=row)`` adds them, so each sum has the same bits (numpy's
    ``sum`` would add them pairwise); ``bincount`` row by row cost 2 ms a building."""
    starts = np.searchsorted(day_of, np.arange(days))
    lengths = np.diff(np.append(starts, day_of.size))
    out = np.zeros((hourly.shape[0], days))
    for k in range(int(lengths.max(initial=0))):
        has = lengths > k  # the days with a k-th hour
        out[:, has] += hourly[:, starts[has] + k]
    return out


async def store_forecasts(conn: asyncpg.Connection, data: BuildingData) -> None:
    """Month-end forecast of every meter and of every group's balance meter."""
    last = data.hours[-1]
    tz = ZoneInfo(data.timezone)
    local_days = [h.astimezone(tz).date() for h in data.hours]
    days = sorted(set(local_days))
    today = days[-1]
    so_far = sum(1 for d in days if d.month == today.month and d.year == today.year)
    position = {d: i for i, d in enumerate(days)}
    day_of = np.array([position[d] for d in local_days])
    temps = dict(
        await conn.fetch(
            """select (hour at time zone $4)::date, avg(temp_c) from outdoor_temperatures
               where site_id = $1 and hour >= $2 and hour <= $3 group by 1""",
            data.site_id,
            data.hours[0],
            last,
            data.timezone,
        )
    )
    mean_c = np.array([temps.get(d, normal_daily_mean_c(d)) for d in days], dtype=np.float64)
    hdd = degree_days(mean_c)
    rest = degree_days(np.array([normal_daily_mean_c(d) for d in remaining_days(today)]))
    month = today.replace(day=1)
    targets = [("meter", m, m) for m in data.meter_index] + [
        ("group", g.id, g.balance_meter_id) for g in data.groups
    ]
    daily_use = daily_sums(np.nan_to_num(data.consumption), day_of, len(days))
    forecasts = month_ends(
        daily_use[[data.meter_index[meter_id] for _, _, meter_id in targets], -28:],
        hdd[-28:],
        rest,
        days_in_month_so_far=so_far,
        weather_dependent=np.array([data.utilities[m] == "heat" for _, _, m in targets]),
    )
    rows = [
        (scope, scope_id, data.units[meter_id], f.consumed_to_date, f.forecast_total,
         f.hdd_to_date, f.hdd_month)
        for (scope, scope_id, meter_id), f in zip(targets, forecasts, strict=True)
    ]  # fmt: skip
    await conn.execute(  # one statement over arrays (a statement per row cost 3x as much)
        """insert into forecasts (scope, scope_id, month, unit, consumed_to_date,
               forecast_total, hdd_to_date, hdd_month, as_of)
           select scope, scope_id, $1, unit, consumed, total, hdd, hdd_month, $2
           from unnest($3::text[], $4::int[], $5::text[], $6::float8[], $7::float8[],
                       $8::float8[], $9::float8[])
                as t(scope, scope_id, unit, consumed, total, hdd, hdd_month)
           on conflict (scope, scope_id, month) do update set
               consumed_to_date = excluded.consumed_to_date,
               forecast_total = excluded.forecast_total, hdd_to_date = excluded.hdd_to_date,
               hdd_month = excluded.hdd_month, as_of = excluded.as_of""",
        month,
        last,
        *(list(c) for c in zip(*rows, strict=True)),
    )


_SILENCE_REASONS = {  # kind -> (reason code, the figure its sentence names)
    "concentrator_silent": ("concentrator_silent.silence", "concentrator"),
    "dead_module": ("dead_module.silence", "module"),
    "low_battery": ("low_battery.low_or_falling", "module"),
    "missing_data": ("missing_data.silence", "meter_serial"),
}


def reporting_alerts(data: BuildingData) -> list[Finding]:
    """Silences and batteries of the building's concentrator, modules and meters, and
    modules not heard at all in the data read (never since installation, or since
    before it began)."""
    r = data.reporting
    hour_of_day = np.array([h.hour for h in data.hours])
    out = []
    for s in reporting_findings(
        r.modules,
        r.module_concentrator,
        r.module_present,
        r.module_battery,
        r.meter_module,
        r.meter_present,
        hour_of_day,
    ):
        ep = s.episode
        cause = {
            "concentrator_silent": f"concentrator:{s.concentrator}",
            "dead_module": f"module:{s.module}",
            "low_battery": f"battery:{s.module}",
            "missing_data": f"meter-data:{s.meter}",
        }[s.kind]
        serial = data.meter_serials.get(s.meter) if s.meter is not None else None
        rule, key = _SILENCE_REASONS[s.kind]
        value = {"concentrator": s.concentrator, "module": s.module, "meter_serial": serial}
        code, params, sentence = reason(rule, **{key: value[key]})
        out.append(
            Finding(
                kind=s.kind,
                cause_key=cause,
                first_hour=data.hours[ep.start],
                last_hour=data.hours[ep.end],
                active=ep.active,
                summary=sentence,
                building_id=data.building_id,
                meter_id=s.meter,
                module_serial=s.module,
                evidence={
                    "rule": "silence improbable under the source's own reporting pattern"
                    if s.kind != "low_battery"
                    else "battery_mv at or below the low mark, or its 72 h trend reaches "
                    "cut-off within 14 days",
                    "detected_hour": data.hours[ep.confirmed].isoformat(),
                    "concentrator_serial": s.concentrator,
                },
                reason_code=code,
                reason_params=params,
                detected_hour=data.hours[ep.confirmed],
                began_before=ep.start == 0,
            )
        )
    return out + never_heard(data)


def never_heard(data: BuildingData) -> list[Finding]:
    """Modules with no report at all in the data read: one alert per module, or one per
    concentrator none of whose modules was heard. Dated by the installation when it
    falls inside the data read, else "since before" its first hour."""
    r = data.reporting
    silent = {r.modules[i] for i in never_present(r.module_present)}
    first, last = data.hours[0], data.hours[-1]
    out = []
    by_concentrator: dict[int, list[int]] = {}
    for serial, concentrator in r.module_concentrator.items():
        by_concentrator.setdefault(concentrator, []).append(serial)
    for concentrator, serials in sorted(by_concentrator.items()):
        whole = all(m in silent for m in serials)
        for cause, module in (
            [(f"concentrator:{concentrator}", None)]
            if whole
            else [(f"module:{m}", m) for m in serials if m in silent]
        ):
            installed = r.module_installed.get(module) if module is not None else None
            since = first
            if installed is not None and first.date() <= installed <= last.date():
                since = max(first, datetime.combine(installed, datetime.min.time(), UTC))
                code, params, sentence = reason(
                    "dead_module.never_heard", module=module, installed_on=installed.isoformat()
                )
            elif module is not None:
                code, params, sentence = reason(
                    "dead_module.silent_since_before", module=module, since=first.date().isoformat()
                )
            else:
                code, params, sentence = reason(
                    "concentrator_silent.silent_since_before",
                    concentrator=concentrator,
                    since=first.date().isoformat(),
                )
            out.append(
                Finding(
                    kind=code.split(".")[0],
                    cause_key=cause,
                    first_hour=since,
                    last_hour=last,
                    active=True,
                    summary=sentence,
                    building_id=data.building_id,
                    module_serial=module,
                    evidence={
                        "rule": sentence,
                        "concentrator_serial": concentrator,
                        "detected_hour": last.isoformat(),
                    },
                    reason_code=code,
                    reason_params=params,
                    detected_hour=last,
                    began_before=since == first and code != "dead_module.never_heard",
                )
            )
    return out


# the figures an hourly row and its roll-ups take from a recomputation
_SERIES_UPDATE = """balance_value = excluded.balance_value,
    subscribers_value = excluded.subscribers_value, expected_loss = excluded.expected_loss,
    imbalance = excluded.imbalance, band_median = excluded.band_median,
    band_low = excluded.band_low, band_high = excluded.band_high"""


async def _store_series(
    conn: asyncpg.Connection,
    data: BuildingData,
    result: GroupResult,
    unit: str,
    since: datetime | None = None,
) -> None:
    """Store the group's hourly series with its band, from hour ``since`` on (every hour
    of the window when None), and roll it up."""
    group, s = result.group, result.series
    band, expected = result.imbalance.band, result.imbalance.expected
    rows = []
    first = 0 if since is None else bisect_left(data.hours, since)
    for i in range(first, len(data.hours)):
        hour = data.hours[i]
        if np.isnan(s.balance[i]):
            continue
        bal = float(s.balance[i])
        med = band.median[i]
        # the expected imbalance (losses, common areas) and the band around it, in the
        # series' unit: expected reading − subscribers + the band's share of the balance
        base = float(expected[i]) - float(s.subscribers[i])
        rows.append(
            (
                group.id,
                hour,
                unit,
                bal,
                float(s.subscribers[i]),
                base if np.isnan(med) else base + float(med * bal),
                bal - float(s.subscribers[i]),
                None if np.isnan(med) else base + float(med * bal),
                None if np.isnan(med) else base + float(band.low[i] * bal),
                None if np.isnan(med) else base + float(band.high[i] * bal),
                bool(data.night[i]),
            )
        )
    if rows:
        # one statement over arrays (a full read writes 35 days: a statement per row cost
        # several times as much)
        _, hours, _, *values = (list(c) for c in zip(*rows, strict=True))
        await conn.execute(
            f"""insert into imbalance_series (group_id, resolution, period_start, unit,
                   balance_value, subscribers_value, expected_loss, imbalance, band_median,
                   band_low, band_high, night, coverage)
               select $1, 'hour', hour, $2, bal, subs, expected, imbalance, median, low,
                      high, night, 1
               from unnest($3::timestamptz[], $4::float8[], $5::float8[], $6::float8[],
                           $7::float8[], $8::float8[], $9::float8[], $10::float8[],
                           $11::bool[])
                    as t(hour, bal, subs, expected, imbalance, median, low, high, night)
               on conflict (group_id, resolution, period_start) do update set
                   {_SERIES_UPDATE}, night = excluded.night""",
            group.id,
            unit,
            hours,
            *values,
        )
        await _roll_up(conn, group.id, rows[0][1])


async def _roll_up(conn: asyncpg.Connection, group_id: int, since: datetime) -> None:
    """Daily and monthly figures (UTC calendar) as sums of the hourly ones; ``coverage``
    is the share of the period's hours present (below 1: a partial day, such as today,
    not a dip)."""
    for resolution in ("day", "month"):
        await conn.execute(
            f"""insert into imbalance_series (group_id, resolution, period_start, unit,
                    balance_value, subscribers_value, expected_loss, imbalance, band_median,
                    band_low, band_high, night, coverage)
                select group_id, '{resolution}', date_trunc('{resolution}', period_start,
                       'UTC'), min(unit), sum(balance_value), sum(subscribers_value),
                       sum(expected_loss), sum(imbalance), sum(band_median), sum(band_low),
                       sum(band_high), false, count(*)::float / (extract(epoch from
                       min(date_trunc('{resolution}', period_start, 'UTC'))
                       + interval '1 {resolution}'
                       - min(date_trunc('{resolution}', period_start, 'UTC'))) / 3600)
                from imbalance_series
                where group_id = $1 and resolution = 'hour'
                  and period_start >= date_trunc('{resolution}', $2::timestamptz, 'UTC')
                group by group_id, date_trunc('{resolution}', period_start, 'UTC')
                on conflict (group_id, resolution, period_start) do update set
                    {_SERIES_UPDATE}, coverage = excluded.coverage""",
            group_id,
            since,
        )


def _member_and_group_faults(
    data: BuildingData, group: GroupDef, s: GroupSeries, cfg: ExcessSettings
) -> tuple[list[Finding], list[Diagnosis]]:
    """The named meters' faults and the group's own. The group's faults are what is
    left once the named meters are corrected; when there are any, the members are
    judged again with them in the balance (a leak next to a magnet must not be read as
    the magnet's closure, nor hide it), and the group's faults searched again."""
    named, missed = member_alerts(data, group, s)
    diagnoses = diagnose_group(
        replace(s, subscribers=s.subscribers + missed), cfg, _clog_starts(data, named)
    )
    if diagnoses:
        changes = np.array([d.contribution for d in diagnoses])
        named, again = member_alerts(data, group, s, changes)
        if not np.array_equal(again, missed):  # the members' verdicts moved
            diagnoses = diagnose_group(
                replace(s, subscribers=s.subscribers + again), cfg, _clog_starts(data, named)
            )
    clogs = [_unmeasured_clog(data, group, s, named, d) for d in diagnoses]
    named += [c for c in clogs if c is not None]
    return named, [d for d, c in zip(diagnoses, clogs, strict=True) if c is None]


def _unmeasured_clog(
    data: BuildingData, group: GroupDef, s: GroupSeries, named: list[Finding], d: Diagnosis
) -> Finding | None:
    """A balance meter reading less than its subscribers (``d``) while a riser member's
    flow was not measured (its module silent, so its hours are its usual level, or its
    register still, so its peers' prediction is added back) and that riser's ΔT rose
    against the other risers': the riser clogged. Its water slowed, so it cools more,
    and the building meter saw the flow that fell, while the riser's estimate says it
    used as usual. The riser, not the balance meter, is the fault (None where no such
    riser is found)."""
    ep = d.episode
    if d.kind != "faulty_balance_meter" or d.sign > 0 or d.evidence["shape"] == "ramp":
        return None
    risers = [m for m in group.member_ids if m in data.riser_dt and m in data.meter_index]
    if len(risers) < 2:
        return None
    dt = np.array([data.riser_dt[m] for m in risers])
    span = slice(ep.start, ep.end + 1)
    still = {
        f.meter_id
        for f in named
        if f.kind == "stuck_meter"
        and f.first_hour <= data.hours[ep.start]
        and f.last_hour >= data.hours[ep.end]
    }
    rise = RiserSettings().clog_rise
    found = [
        (change, m)
        for i, m in enumerate(risers)
        if (m in still or np.isnan(data.series(m)[span]).mean() >= 0.5)
        and (change := dt_change(dt, i, ep.start, ep.end)) is not None
        and change >= rise
    ]
    if not found:
        return None
    change, meter_id = max(found)
    loss = _riser_loss(data, group, s, meter_id, d)
    serial = data.meter_serials[meter_id]
    return replace(
        _meter_finding(
            data,
            group,
            meter_id,
            ep,
            reason(
                "clogged_riser.dt_rose",
                meter_serial=serial,
                loss_pct=percent(loss),
                dt_change_pct=percent(change),
            ),
            {"basis": "unmeasured_dt_rose", "loss": round(loss, 4), "riser_dt_change": change},
            began_before=ep.start == 0,
        ),
        # a cause of its own: the riser's still register is another alert
        cause_key=f"meter:{meter_id}:clogged_riser",
    )


def _riser_loss(
    data: BuildingData, group: GroupDef, s: GroupSeries, meter_id: int, d: Diagnosis
) -> float:
    """The share of a riser's flow that a balance meter's deficit ``d`` stands for: the
    deficit over the riser's usual share of the members (the week before) of what the
    balance meter would have read without it."""
    members = [m for m in group.member_ids if m in data.meter_index]
    ep = d.episode
    before = slice(max(0, ep.start - 168), ep.start)
    span = slice(ep.start, ep.end + 1)
    total = float(np.nansum(s.members[:, before]))
    share = float(np.nansum(s.members[members.index(meter_id), before])) / total if total else 0.0
    deficit = -float(np.sum(d.contribution[span]))
    usual = share * (float(np.nansum(s.balance[span])) + deficit)
    return deficit / usual if usual > 0 else 0.0


def _clog_starts(data: BuildingData, named: list[Finding]) -> tuple[int, ...]:
    """The hours (indices into ``data.hours``) the named clogged risers began."""
    first = data.hours[0]
    return tuple(
        round((f.first_hour - first) / timedelta(hours=1))
        for f in named
        if f.kind == "clogged_riser"
    )


def building_findings(
    data: BuildingData, cfg: ExcessSettings | None = None, incomplete: frozenset[int] = frozenset()
) -> tuple[list[Finding], list[GroupResult]]:
    """Every detector over the loaded building (no database): the merged findings and
    each analysed group's series with its band (what the imbalance series stores).
    ``incomplete`` groups (too few flats metered, :mod:`balans_balance.coverage`) raise
    no imbalance alerts of their own; their meters are still judged."""
    cfg = cfg or ExcessSettings()
    findings: list[Finding] = []
    results: list[GroupResult] = []
    sensors = sensor_findings(data)
    data = replace(data, riser_dt=without_faulty_pairs(data, sensors))  # ΔT of sound pairs
    for group in data.groups:
        s = group_series(data, group)
        if s is None or np.count_nonzero(~np.isnan(s.balance)) < 72:
            continue
        s = _without_faulty_sensors(data, s, sensors)
        diagnoses: list[Diagnosis] = []
        if group.id in incomplete:
            named = member_alerts(data, group, s)[0]
        else:
            named, diagnoses = _member_and_group_faults(data, group, s, cfg)
        # the band is frozen over the group's faults: it must not absorb a leak
        faults = np.zeros(len(data.hours), dtype=bool)
        for d in diagnoses:
            faults[d.episode.start : d.episode.end + 1] = True
        imbalance = imbalance_band(s, cfg, faults if faults.any() else None)
        results.append(GroupResult(group, s, imbalance))
        findings.extend(named)
        findings.extend(_finding(data, group, d, s, imbalance.share) for d in diagnoses)
    findings.extend(reporting_alerts(data))
    findings.extend(consumer_leaks(data))
    findings.extend(sensors)
    return merge_findings(findings), results


def _without_faulty_sensors(
    data: BuildingData, s: GroupSeries, sensors: list[Finding]
) -> GroupSeries:
    """The members' ΔT mix unknown while one of the building's sensor pairs is found
    faulty: a swapped, displaced or drifting pair moves the mix by itself, and the
    return temperature's verdict (a consumer returning its water at another ΔT, or
    water that never returns) would read that as the group's fault."""
    if s.members_dt is None or not sensors:
        return s
    first = data.hours[0]
    faulty = np.zeros(len(data.hours), dtype=bool)
    for f in sensors:
        start = round((f.first_hour - first) / timedelta(hours=1))
        faulty[start : round((f.last_hour - first) / timedelta(hours=1)) + 1] = True
    return replace(s, members_dt=np.where(faulty, np.nan, s.members_dt))


@cache
def _settings() -> CommonSettings:
    """The verification settings, read once (pydantic-settings parses the environment on
    every construction)."""
    return CommonSettings()


async def analyse_building(
    conn: asyncpg.Connection,
    building_id: int,
    until: datetime,
    *,
    days: int = 35,
    cfg: ExcessSettings | None = None,
    min_coverage: float = 0.8,
    loss_target_share: float = 0.1,
) -> AnalysisResult:
    """Run every group detector over the ``days`` before ``until`` (read in full) and
    reconcile alerts: :func:`analyse_window`."""
    data = await load_building(conn, building_id, until, days)
    return await analyse_window(
        conn, data, cfg=cfg, min_coverage=min_coverage, loss_target_share=loss_target_share
    )


async def analyse_window(
    conn: asyncpg.Connection,
    data: BuildingData,
    *,
    cfg: ExcessSettings | None = None,
    min_coverage: float = 0.8,
    loss_target_share: float = 0.1,
    series_from: datetime | None = None,
    incomplete: frozenset[int] | None = None,
) -> AnalysisResult:
    """Run every group detector over a building's window and reconcile alerts; store
    each group's coverage (groups with fewer than ``min_coverage`` of their flats metered
    raise no imbalance alerts) and the loss target operators judge it by, its imbalance
    series from hour ``series_from`` on (the hours the event read; every hour of the
    window when None) and the forecasts. ``incomplete``: the incomplete groups as an
    earlier analysis of the same world stored them (a kept window's); their coverage is
    then neither computed nor written again (it depends on the building's world alone).

    Everything it writes is one transaction: the analysis is stored whole or not at all,
    and it costs one durable commit (one WAL flush) instead of one per statement, which
    with PostgreSQL's synchronous commit was a third of a turn's wall clock. The groups'
    rows stay locked from the coverage write to the commit (an operator's edit of one of
    the building's groups waits for the analysis)."""
    building_id = data.building_id
    async with conn.transaction():
        if incomplete is None:
            incomplete = await store_coverage(conn, building_id, min_coverage, loss_target_share)
        findings, results = building_findings(data, cfg, incomplete)
        findings.extend(await verification_findings(conn, building_id, data.hours[-1], _settings()))
        units = {
            r["id"]: r["unit"]
            for r in await world.meters_by_id(conn, [g.balance_meter_id for g in data.groups])
        }
        for result in results:
            await _store_series(
                conn, data, result, units[result.group.balance_meter_id], series_from
            )
        await store_forecasts(conn, data)
        transitions = await reconcile(conn, building_id, findings, datetime.now(UTC))
    GROUPS_EVALUATED.inc(len(results))
    return AnalysisResult(findings, transitions, len(results), incomplete)
