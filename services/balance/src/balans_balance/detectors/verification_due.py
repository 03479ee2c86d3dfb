"""The ``verification_due`` alert: a meter whose verification (calibration) expires soon.

A meter is due ``interval`` years after it was last verified (``verified_on``, or
``installed_on`` for one never re-verified): its own ``verification_interval_years`` or
its utility's default (``BALANS_VERIFICATION_INTERVAL_YEARS``, docs/provisioning.md). The
alert opens ``BALANS_VERIFICATION_WARN_DAYS`` before that day (severity ``info``; once
expired, ``warning``) and closes when the meter's new verification date is recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg

from balans_balance.findings import Finding
from balans_balance.reasons import reason
from balans_core.settings import CommonSettings
from balans_db.queries import world


async def verification_findings(
    conn: asyncpg.Connection,
    building_id: int,
    until: datetime,
    settings: CommonSettings | None = None,
) -> list[Finding]:
    """One finding per meter of the building due within the warning days of ``until``."""
    cfg = settings or CommonSettings()
    today = until.date()
    horizon = today + timedelta(days=cfg.verification_warn_days)
    rows = await world.verification_due(conn, horizon, cfg.verification_intervals(), building_id)
    findings = []
    for r in rows:
        due = datetime.combine(r["due_on"], time(), UTC)
        expired = r["due_on"] <= today
        code, params, summary = reason(
            "verification_due.expired" if expired else "verification_due.due",
            meter_serial=r["serial"],
            due_on=r["due_on"].isoformat(),
            interval_years=r["interval_years"],
        )
        findings.append(
            Finding(
                kind="verification_due",
                cause_key=f"verification_due:{r['id']}:{r['due_on'].isoformat()}",
                first_hour=due - timedelta(days=cfg.verification_warn_days),
                last_hour=due,
                active=True,
                summary=summary,
                building_id=building_id,
                meter_id=r["id"],
                severity="warning" if expired else "info",
                evidence={
                    "due_on": r["due_on"].isoformat(),
                    "verified_on": r["verified_on"].isoformat(),
                    "interval_years": r["interval_years"],
                    "expired": expired,
                },
                reason_code=code,
                reason_params=params,
            )
        )
    return findings
