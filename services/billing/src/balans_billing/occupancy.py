"""Who held each flat during a billing period: the accounts' own spans and the vacant ones.

An account holds its flat from ``opened_on`` (inclusive; null = since metering began) to
``closed_on`` (exclusive; null = still open), in local days of the building's site. A tenant
change closes one account and opens the next on the same day, so their spans meet at that
day's local midnight and never overlap. The days of a period that no account of a flat
covers are that flat's *vacant* spans (billed under the methodology's vacant-flat rule,
:mod:`balans_billing.vacancy`). Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo


class SharedFlatError(ValueError):
    """Two accounts hold one flat on the same day: each would be billed the flat's use of
    that day, so the building is not billed until the periods are put right."""


@dataclass(frozen=True)
class Holding:
    """An account's (or a vacancy's) part of a period: local days [first, end) and the same
    as UTC instants, with the fraction of the period's months it carries."""

    flat_id: int
    first: date
    end: date
    start_at: datetime
    end_at: datetime
    months: Decimal

    @property
    def days(self) -> int:
        return (self.end - self.first).days


@dataclass(frozen=True)
class Tenure:
    """What occupancy needs of an account: its flat and its local days."""

    account_id: int
    number: str
    flat_id: int
    opened_on: date | None
    closed_on: date | None


class Period:
    """A billing period [start, end) of whole local months, in local days."""

    def __init__(self, start: datetime, end: datetime, timezone: str, months: int) -> None:
        self.zone = ZoneInfo(timezone)
        self.first = start.astimezone(self.zone).date()
        self.end = end.astimezone(self.zone).date()
        self.months = months

    @property
    def days(self) -> int:
        return (self.end - self.first).days

    def instant(self, day: date) -> datetime:
        """Local midnight starting ``day``."""
        return datetime.combine(day, time(), self.zone)

    def holding(self, flat_id: int, first: date, end: date) -> Holding:
        return Holding(
            flat_id=flat_id,
            first=first,
            end=end,
            start_at=self.instant(first),
            end_at=self.instant(end),
            months=Decimal(self.months) * (end - first).days / self.days,
        )

    def clip(self, opened_on: date | None, closed_on: date | None) -> tuple[date, date] | None:
        """The local days [first, end) of the period inside [opened_on, closed_on)."""
        first = max(self.first, opened_on or self.first)
        end = min(self.end, closed_on or self.end)
        return (first, end) if first < end else None


def holdings(period: Period, accounts: Iterable[Tenure]) -> dict[int, Holding]:
    """account id -> its part of the period (accounts outside the period are left out).

    SharedFlatError names every flat two of whose accounts overlap within the period.
    """
    out: dict[int, Holding] = {}
    by_flat: dict[int, list[tuple[Tenure, Holding]]] = defaultdict(list)
    for account in accounts:
        span = period.clip(account.opened_on, account.closed_on)
        if span is None:
            continue
        held = period.holding(account.flat_id, *span)
        out[account.account_id] = held
        by_flat[account.flat_id].append((account, held))
    clashes = []
    for flat_id, pairs in by_flat.items():
        pairs.sort(key=lambda pair: pair[1].first)
        for (a, x), (b, y) in pairwise(pairs):
            if y.first < x.end:
                clashes.append(f"flat {flat_id}: {a.number} and {b.number} both from {y.first}")
    if clashes:
        raise SharedFlatError(
            "a flat is held by one account at a time, these overlap ("
            + "; ".join(clashes)
            + "); close the earlier account on the day the next one opens"
        )
    return out


def vacancies(period: Period, flat_ids: Iterable[int], held: Iterable[Holding]) -> list[Holding]:
    """The spans of the period in which a flat has no account, per flat in order."""
    covered: dict[int, list[Holding]] = defaultdict(list)
    for h in held:
        covered[h.flat_id].append(h)
    out: list[Holding] = []
    for flat_id in flat_ids:
        cursor = period.first
        for h in sorted(covered[flat_id], key=lambda h: h.first):
            if h.first > cursor:
                out.append(period.holding(flat_id, cursor, h.first))
            cursor = max(cursor, h.end)
        if cursor < period.end:
            out.append(period.holding(flat_id, cursor, period.end))
    return out
