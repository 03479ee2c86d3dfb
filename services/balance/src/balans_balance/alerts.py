"""Alerts with de-duplication: findings -> rows in ``alerts`` and ``balans.alerts.<kind>``.

Every transition is announced as an ``AlertMessage`` written to balance's outbox
(``balance_outbox``) in the transaction that makes it, and sent by the service's relay
(``balans_core.outbox``) until JetStream acknowledges it: a crash after the commit loses
no announcement.

One open alert per cause (``cause_key``, enforced by a partial unique index). A cause is
where the fault sits (a group's excess or deficit, one meter, one module), not the
diagnosis: as an episode grows the diagnosis may be refined (an excess first read as an
unauthorised connection turns out constant: a leak); the alert keeps its id and takes
the new kind, announced as ``updated`` on the new kind's subject. A finding
for a cause with an open alert updates it; an active finding with none opens one; a
finding that has ended closes its alert (or is recorded opened-and-closed when it began
and ended between two analyses). Open alerts of the analysed building whose cause no
detector reports any more are closed. A finding whose key has no open alert continues an
open one of the same kind, group and meter over overlapping hours whose key no finding
has any more (a fault's key can move between analyses: ``_renamed_alerts``).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

import asyncpg

from balans_balance.findings import Finding
from balans_balance.metrics import ALERT_TRANSITIONS
from balans_core import outbox
from balans_protocol import subjects
from balans_protocol.messages import AlertMessage

OUTBOX = "balance_outbox"  # balans_db.tables.balance_outbox, sent by the service's relay


def _finite(value: Any) -> Any:
    """JSON without NaN/Infinity (PostgreSQL's jsonb refuses them): unknown -> null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def evidence_json(evidence: dict[str, Any]) -> str:
    return json.dumps(_finite(evidence))


def alert_message(
    row: asyncpg.Record,
    state: Literal["open", "updated", "closed"],
    resolution: Literal["resolved", "dismissed"] | None = None,
) -> AlertMessage:
    """The announcement of one transition of the alert in ``row`` (``resolution``: how an
    operator closed it)."""
    return AlertMessage(
        alert_id=row["id"],
        kind=row["kind"],
        state=state,
        building_id=row["building_id"],
        group_id=row["group_id"],
        meter_id=row["meter_id"],
        opened_at=row["opened_at"],
        summary=row["summary"],
        evidence=json.loads(row["evidence"]),
        first_hour=row["first_hour"],
        began_before=row["began_before"],
        reason_code=row["reason_code"],
        reason_params=json.loads(row["reason_params"]),
        last_hour=row["last_hour"],
        resolution=resolution,
    )


# the columns an announcement (alert_message) is made from
RETURNING = """returning id, kind, building_id, group_id, meter_id, opened_at, summary, evidence,
    first_hour, last_hour, began_before, reason_code, reason_params"""


async def _open(conn: asyncpg.Connection, f: Finding, now: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""insert into alerts (kind, cause_key, state, severity, building_id, group_id,
                               meter_id, module_serial, first_hour, last_hour, opened_at,
                               updated_at, closed_at, summary, evidence, detected_hour,
                               began_before, reason_code, reason_params)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14::jsonb,
                    $15, $16, $17, $18::jsonb)
            {RETURNING}""",
        f.kind,
        f.cause_key,
        "open" if f.active else "closed",
        f.severity,
        f.building_id,
        f.group_id,
        f.meter_id,
        f.module_serial,
        f.first_hour,
        f.last_hour,
        now,
        None if f.active else now,
        f.summary,
        evidence_json(f.evidence),
        f.detected_hour,
        f.began_before,
        f.reason_code,
        evidence_json(f.reason_params),
    )


def _renamed_alerts(
    findings: list[Finding], open_rows: dict[str, asyncpg.Record]
) -> dict[int, asyncpg.Record]:
    """For findings (by index) without an open alert under their key, the open alert each
    continues under another key: one of the same kind, group and meter, over overlapping
    hours, whose own key no finding of this analysis has (active findings choose first).
    A fault's key can move between analyses while it goes on (a group's concurrent faults
    of one kind are numbered, and the number changes when an earlier one leaves the window
    or is refitted away); without this its alert would close, and the new key would be
    taken for the earlier fault's closed episode and never open."""
    taken = {f.cause_key for f in findings}
    out: dict[int, asyncpg.Record] = {}
    for i, f in sorted(enumerate(findings), key=lambda pair: not pair[1].active):
        if f.cause_key in open_rows:
            continue
        for key, row in open_rows.items():
            if (
                key not in taken
                and row["kind"] == f.kind
                and row["group_id"] == f.group_id
                and row["meter_id"] == f.meter_id
                and row["first_hour"] <= f.last_hour
                and f.first_hour <= row["last_hour"]
            ):
                out[i] = row
                taken.add(key)
                break
    return out


async def reconcile(
    conn: asyncpg.Connection,
    building_id: int,
    findings: list[Finding],
    now: datetime,
) -> dict[str, int]:
    """Bring the building's alerts in line with ``findings`` and put every transition in the
    outbox, in one transaction; return transition counts."""
    counts = {"opened": 0, "updated": 0, "closed": 0}
    messages: list[AlertMessage] = []
    async with conn.transaction():
        open_rows = {
            r["cause_key"]: r
            for r in await conn.fetch(
                """select id, cause_key, first_hour, last_hour, kind, group_id, meter_id
                   from alerts where building_id = $1 and state = 'open' for update""",
                building_id,
            )
        }
        renamed = _renamed_alerts(findings, open_rows)
        seen: set[str] = set()
        for i, f in enumerate(findings):
            current = open_rows.get(f.cause_key) or renamed.get(i)
            seen.add(current["cause_key"] if current is not None else f.cause_key)
            if current is None:
                known = await conn.fetchval(
                    """select 1 from alerts where cause_key = $1 and state = 'closed'
                       and last_hour >= $2""",
                    f.cause_key,
                    f.first_hour,
                )
                if known:
                    continue  # the same episode, already recorded and closed
                row = await _open(conn, f, now)
                messages.append(alert_message(row, "open"))
                counts["opened"] += 1
                ALERT_TRANSITIONS.labels(f.kind, "opened").inc()
                if not f.active:
                    messages.append(alert_message(row, "closed"))
                    counts["closed"] += 1
                    ALERT_TRANSITIONS.labels(f.kind, "closed").inc()
                continue
            state = "open" if f.active else "closed"
            row = await conn.fetchrow(
                f"""update alerts set last_hour = $2, updated_at = $3, summary = $4,
                           evidence = $5::jsonb, state = $6::text,
                           closed_at = case when $6::text = 'closed' then $3::timestamptz end,
                           kind = $7, meter_id = $8, severity = $9, reason_code = $10,
                           reason_params = $11::jsonb,
                           detected_hour = coalesce(detected_hour, $12)
                    where id = $1 {RETURNING}""",
                current["id"],
                f.last_hour,
                now,
                f.summary,
                evidence_json(f.evidence),
                state,
                f.kind,
                f.meter_id,
                f.severity,
                f.reason_code,
                evidence_json(f.reason_params),
                f.detected_hour,
            )
            transition: Literal["updated", "closed"] = "updated" if f.active else "closed"
            if f.active and current["last_hour"] == f.last_hour and current["kind"] == f.kind:
                continue  # nothing new to tell
            messages.append(alert_message(row, transition))
            counts[transition] += 1
            ALERT_TRANSITIONS.labels(f.kind, transition).inc()
        for cause_key, current in open_rows.items():
            if cause_key in seen:
                continue
            row = await conn.fetchrow(
                f"""update alerts set state = 'closed', closed_at = $2, updated_at = $2
                    where id = $1 {RETURNING}""",
                current["id"],
                now,
            )
            messages.append(alert_message(row, "closed"))
            counts["closed"] += 1
            ALERT_TRANSITIONS.labels(row["kind"], "closed").inc()
        for message in messages:
            await outbox.enqueue(conn, OUTBOX, subjects.alert(message.kind), message)
    return counts
