"""Demo tariffs for every utility (``balans billing seed-tariffs``), heat at the deck's
1122 MDL/Gcal. The other prices are illustrative, not any supplier's real tariff."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import asyncpg

from balans_billing import storage
from balans_billing.tariffs import Block, TariffSpec

D = Decimal

DEMO_TARIFFS_FROM = date(2025, 7, 1)
"""First day of the demo tariffs when the service seeds them (before any demo data)."""


def demo_tariffs(effective_from: date) -> list[TariffSpec]:
    """One tariff per utility from ``effective_from``, open-ended, supplier ``default``."""

    def blocks(*steps: tuple[str, str | None, str]) -> tuple[Block, ...]:
        return tuple(
            Block(from_qty=D(lo), to_qty=None if hi is None else D(hi), price=D(price))
            for lo, hi, price in steps
        )

    common = {"effective_from": effective_from}
    return [
        TariffSpec(
            utility="heat",
            unit="Gcal",
            operations_per_point_month=D(25),
            blocks=blocks(("0", None, "1122")),
            **common,
        ),
        TariffSpec(
            utility="cold_water",
            unit="m3",
            fixed_per_month=D(5),
            operations_per_point_month=D(6),
            block_basis="resident",
            blocks=blocks(("0", "3", "12.5"), ("3", None, "20")),
            **common,
        ),
        TariffSpec(
            utility="hot_water",
            unit="m3",
            operations_per_point_month=D(6),
            block_basis="resident",
            blocks=blocks(("0", "2", "60"), ("2", None, "90")),
            **common,
        ),
        TariffSpec(
            utility="gas",
            unit="m3",
            fixed_per_month=D(10),
            operations_per_point_month=D(8),
            blocks=blocks(("0", None, "8.4")),
            **common,
        ),
        TariffSpec(
            utility="electricity",
            unit="kWh",
            operations_per_point_month=D(4),
            blocks=blocks(("0", "100", "2.1"), ("100", None, "2.6")),
            **common,
        ),
    ]


async def seed_demo_tariffs(conn: asyncpg.Connection, effective_from: date) -> int:
    """Store the demo tariffs for utilities that have no tariff yet; return how many.

    Serialised by an advisory lock, so billing processes starting together add each once.
    """
    added = 0
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext('billing.demo_tariffs'))")
        for spec in demo_tariffs(effective_from):
            if not await storage.load_tariffs(conn, spec.utility, spec.supplier):
                await storage.add_tariff(conn, spec)
                added += 1
    return added
