"""Invoices from allocation results against a real PostgreSQL: issue, idempotence,
corrections after late data, missing tariffs, exports and the fairness report."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from balans_billing import api, render, storage
from balans_billing.closer import months_ending_between
from balans_billing.invoicing import (
    NoTariffError,
    SharedFlatError,
    bill_building,
    compute_lines,
)
from balans_billing.periods import PeriodError, month_bounds
from balans_billing.tariffs import TariffSpec
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_i18n.localizer import Localizer

D = Decimal
TZ = "Europe/Chisinau"
JAN = month_bounds(2026, 1, TZ)
SITE = SiteSpec(code="t-billing", name="Test", address="str. Test 1", latitude=47, longitude=28.8)

HEAT = {
    "utility": "heat",
    "unit": "Gcal",
    "effective_from": "2025-07-01",
    "fixed_per_month": "20",
    "operations_per_point_month": "15",
    "blocks": [{"from_qty": 0, "price": "1122"}],
}


def simple(utility: str, unit: str, price: str) -> dict[str, object]:
    return {
        "utility": utility,
        "unit": unit,
        "effective_from": "2025-07-01",
        "operations_per_point_month": "5",
        "block_basis": "resident",
        "blocks": [
            {"from_qty": 0, "to_qty": 2, "price": price},
            {"from_qty": 2, "price": str(D(price) * 2)},
        ],
    }


@pytest.fixture(scope="module")
async def building(conn: asyncpg.Connection) -> dict[str, int]:
    """A 1c block of 4 flats (flats 2 and 4 also have water, gas and electricity meters)
    with January's heat allocated to flats 1-3 and cold water metered in flat 2."""
    spec = regular_building(
        code="t-bill-1c",
        name="Billing block",
        address="str. Test 1",
        site=SITE,
        layout="1c",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=71,
        multi_utility_every=2,
    )
    building_id = await write_building(conn, spec, KeyVault())
    assert building_id is not None
    flats = {
        r["number"]: r["id"]
        for r in await conn.fetch(
            "select id, number from flats where building_id = $1", building_id
        )
    }
    start = JAN[0]
    rows = [
        (building_id, flats[number], start + timedelta(hours=h), kwh, kwh, 0.0)
        for number, kwh in (("1", 116.3), ("2", 232.6), ("3", 58.15))
        for h in range(10)
    ]
    await conn.executemany(
        """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
               common_kwh, method) values ($1, $2, $3, $4, $5, $6, 'test')""",
        rows,
    )
    water = await conn.fetchval(
        "select id from meters where flat_id = $1 and utility = 'cold_water'", flats["2"]
    )
    await conn.executemany(
        "insert into meter_consumption (meter_id, hour, value, unit) values ($1, $2, $3, 'm3')",
        [(water, start + timedelta(hours=h), 0.35) for h in range(10)],
    )
    return {"id": building_id, **{f"flat{n}": fid for n, fid in flats.items()}}


async def count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"select count(*) from {table}")


async def test_missing_tariff_writes_nothing(conn: asyncpg.Connection, building: dict) -> None:
    """With no gas tariff in force, issuing refuses with a clear error and writes nothing."""
    await storage.add_tariff(conn, TariffSpec.model_validate(HEAT))
    for utility, unit, price in (
        ("cold_water", "m3", "12.5"),
        ("hot_water", "m3", "60"),
        ("electricity", "kWh", "2.1"),
    ):
        await storage.add_tariff(conn, TariffSpec.model_validate(simple(utility, unit, price)))
    with pytest.raises(NoTariffError, match="no gas tariff of supplier 'default' in force"):
        await bill_building(conn, building["id"], *JAN)
    assert await count(conn, "invoices") == 0
    assert await count(conn, "invoice_lines") == 0


async def test_overlapping_tariff_version_is_refused(conn: asyncpg.Connection) -> None:
    """A second heat version overlapping the first is refused; a later one becomes version 2."""
    before = await count(conn, "tariffs")
    with pytest.raises(storage.TariffConflictError, match="overlaps"):
        await storage.add_tariff(
            conn, TariffSpec.model_validate({**HEAT, "effective_from": "2026-06-01"})
        )
    assert await count(conn, "tariffs") == before
    with pytest.raises(ValidationError):
        await api.add_tariff_json("postgresql://unused", json.dumps({**HEAT, "blocks": []}))


async def test_first_run_issues_one_invoice_per_account(
    conn: asyncpg.Connection, building: dict
) -> None:
    """Gas tariff added: four invoices, totals equal their lines, heat priced in Gcal."""
    await storage.add_tariff(conn, TariffSpec.model_validate(simple("gas", "m3", "8")))
    issued = await bill_building(conn, building["id"], *JAN)
    assert [i.kind for i in issued] == ["invoice"] * 4
    for item in issued:
        inv = await storage.load_invoice(conn, item.invoice_id)
        assert inv.total == sum(line.amount for line in inv.lines) == item.total
    flat1 = await _invoice_of(conn, building["flat1"])
    heat = {ln.code: (ln.quantity, ln.amount) for ln in flat1.lines if ln.utility == "heat"}
    assert heat == {
        "fixed": (D(1), D("20.00")),
        "block_1": (D("1.000"), D("1122.00")),
        "operations": (D(1), D("15.00")),
    }
    flat2 = await _invoice_of(conn, building["flat2"])
    water = [ln for ln in flat2.lines if ln.utility == "cold_water"]
    residents = await conn.fetchval(
        "select residents from accounts where flat_id = $1", building["flat2"]
    )
    cheap = min(D("3.5"), D(2 * residents))
    assert water[0].quantity == cheap
    assert sum(ln.quantity for ln in water if ln.code.startswith("block")) == D("3.5")


async def test_zero_consumption_account_pays_fixed_plus_operations(
    conn: asyncpg.Connection, building: dict
) -> None:
    """Flat 4 used nothing: it pays exactly fixed + operations of each of its utilities."""
    inv = await _invoice_of(conn, building["flat4"])
    assert {ln.code for ln in inv.lines} == {"fixed", "operations"}
    assert inv.total == D(20) + D(15) + 4 * D(5)


async def test_rerun_without_changes_writes_nothing(
    conn: asyncpg.Connection, building: dict
) -> None:
    """Billing the same period again is idempotent."""
    before = await count(conn, "invoice_lines")
    assert await bill_building(conn, building["id"], *JAN) == []
    assert await count(conn, "invoice_lines") == before


async def test_late_data_produces_a_correction(conn: asyncpg.Connection, building: dict) -> None:
    """Late heat for flat 1 adds a debit correction; the issued invoice is untouched."""
    original = await _invoice_of(conn, building["flat1"])
    await conn.executemany(
        """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
               common_kwh, method) values ($1, $2, $3, 581.5, 581.5, 0, 'late')""",
        [(building["id"], building["flat1"], JAN[0] + timedelta(days=20, hours=h)) for h in (0, 1)],
    )
    issued = await bill_building(conn, building["id"], *JAN)
    assert [(i.kind, i.corrects_id, i.total) for i in issued] == [
        ("correction", original.id, D("1122.00"))
    ]
    assert await storage.load_invoice(conn, original.id) == original
    fresh = (await compute_lines(conn, building["id"], *JAN))[original.account_id]
    history = await storage.invoices_for_period(conn, building["id"], *JAN)
    paid = sum(i.total for i in history if i.account_id == original.account_id)
    assert paid == sum(ln.amount for ln in fresh)
    # data withdrawn again (e.g. a recomputation): a credit brings it back
    await conn.execute(
        "delete from heat_allocation where flat_id = $1 and method = 'late'", building["flat1"]
    )
    credit = await bill_building(conn, building["id"], *JAN)
    assert [(i.kind, i.total) for i in credit] == [("correction", D("-1122.00"))]


async def test_period_must_be_whole_local_months(conn: asyncpg.Connection, building: dict) -> None:
    """A period that does not start at local midnight on the 1st is refused."""
    utc_month = (datetime.fromisoformat("2026-01-01T00:00:00+00:00"), JAN[1])
    with pytest.raises(PeriodError):
        await bill_building(conn, building["id"], *utc_month)


async def test_two_accounts_on_one_flat_are_refused(
    conn: asyncpg.Connection, building: dict
) -> None:
    """A second account on flat 1 refuses the run, naming the flat and both accounts."""
    before = await count(conn, "invoices")
    outer = conn.transaction()
    await outer.start()
    try:
        await conn.execute(
            "insert into accounts (number, holder_name, flat_id) values ('T-SECOND', 'B', $1)",
            building["flat1"],
        )
        numbers = [
            r["number"]
            for r in await conn.fetch(
                "select number from accounts where flat_id = $1", building["flat1"]
            )
        ]
        with pytest.raises(SharedFlatError, match=f"flat {building['flat1']}: ") as refused:
            await bill_building(conn, building["id"], *JAN)
        assert len(numbers) == 2
        assert all(number in str(refused.value) for number in numbers)
        assert await count(conn, "invoices") == before
    finally:
        await outer.rollback()


async def test_exports(conn: asyncpg.Connection, building: dict) -> None:
    """JSON, CSV and HTML carry the same lines and total; HTML escapes what it prints."""
    inv = await _invoice_of(conn, building["flat2"])
    await conn.execute(
        "update accounts set holder_name = '<b>Ion & Maria</b>' where id = $1", inv.account_id
    )
    doc = await api.invoice_document(conn, inv.id)
    as_json = json.loads(render.to_json(doc))
    assert D(as_json["total"]) == inv.total
    assert as_json["period_first_day"] == "2026-01-01"
    assert as_json["period_last_day"] == "2026-01-31"
    rows = list(csv.DictReader(io.StringIO(render.to_csv(doc))))
    assert len(rows) == len(inv.lines)
    assert sum(D(r["amount"]) for r in rows) == inv.total
    html = render.to_html(doc, "en")
    assert "&lt;b&gt;Ion &amp; Maria&lt;/b&gt;" in html
    assert f">{Localizer('en', render.CATALOGS).money(inv.total)}<" in html


async def test_invoice_numbers_are_gapless_per_issuer_and_year(
    conn: asyncpg.Connection, building: dict
) -> None:
    """Every invoice and correction has the next number of its issuer's year, with no gap
    even where a run was refused (its transaction took no number)."""
    rows = await conn.fetch(
        "select issuer, number from invoices where building_id = $1 order by id", building["id"]
    )
    year = str(datetime.now().year)
    numbers = [int(r["number"].split("-")[1]) for r in rows]
    assert {r["issuer"] for r in rows} == {"default"}
    assert all(r["number"].startswith(year + "-") for r in rows)
    everything = await conn.fetch(
        "select number from invoices where issuer = 'default' and number like $1 order by id",
        year + "-%",
    )
    sequence = [int(r["number"].split("-")[1]) for r in everything]
    assert sequence == list(range(1, len(sequence) + 1))
    assert numbers == sorted(numbers)
    last = await conn.fetchval(
        "select last_number from invoice_numbers where issuer = 'default' and year = $1",
        int(year),
    )
    assert last == len(sequence)


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ("ro", ("Factura nr.", "Termen de plată", "Date incomplete", "Total de plată", "căldură")),
        ("ru", ("Счёт №", "Оплатить до", "Неполные данные", "Итого к оплате", "тепло")),
        ("en", ("Invoice No.", "Due by", "Incomplete data", "Total to pay", "heat")),
    ],
)
async def test_pdf_reads_back_in_each_language(
    conn: asyncpg.Connection, building: dict, locale: str, words: tuple[str, ...]
) -> None:
    """The PDF's text, read back with pypdf: the number, due date, payer, total and the
    mark that January's heat is known for only 10 of 744 hours, in the language asked."""
    inv = await _invoice_of(conn, building["flat1"])
    doc = await api.invoice_document(conn, inv.id)
    assert doc.heat_data is not None
    assert (doc.heat_data.hours, doc.heat_data.hours_in_period) == (10, 744)
    pdf = render.to_pdf(doc, locale)
    assert pdf.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    text = " ".join(text.split())
    for word in (*words, doc.number, doc.account_number, "744"):
        assert word in text, (word, text)
    total = Localizer(locale, render.CATALOGS).money(doc.total, doc.currency)
    assert " ".join(total.split()) in text.replace("\u00a0", " ")


async def test_fairness_report(conn: asyncpg.Connection, building: dict) -> None:
    """Flat heat shares against area shares, priced at the heat tariff in force."""
    report = await api.fairness(conn, building["id"], *JAN)
    assert report.price_per_gcal == D(1122)
    assert report.building_kwh == D("4070.50")
    by_flat = {f.flat_id: f for f in report.flats}
    assert by_flat[building["flat4"]].metered_kwh == 0
    assert by_flat[building["flat4"]].group == "low"
    assert by_flat[building["flat2"]].group == "high"
    assert report.winners + report.unchanged + report.losers == 4


async def _invoice_of(conn: asyncpg.Connection, flat_id: int) -> storage.StoredInvoice:
    invoice_id = await conn.fetchval(
        """select i.id from invoices i join accounts a on a.id = i.account_id
           where a.flat_id = $1 and i.kind = 'invoice'""",
        flat_id,
    )
    return await storage.load_invoice(conn, invoice_id)


def test_tariff_dates_decide_the_version() -> None:
    """A version applies from its first day up to, not including, its end."""
    spec = TariffSpec.model_validate({**HEAT, "effective_to": "2026-01-01"})
    assert spec.in_force_on(date(2025, 12, 31))
    assert not spec.in_force_on(date(2026, 1, 1))


def test_closer_months_end_between_first_hour_and_watermark() -> None:
    """Months from the one holding the first hour to the last that ends by the watermark."""
    first_hour = JAN[0] + timedelta(days=14, hours=5)
    mar = month_bounds(2026, 3, TZ)
    feb = month_bounds(2026, 2, TZ)
    assert list(months_ending_between(first_hour, mar[0], TZ)) == [JAN, feb]
    assert list(months_ending_between(first_hour, mar[0] - timedelta(seconds=1), TZ)) == [JAN]
    assert list(months_ending_between(first_hour, JAN[1] - timedelta(hours=1), TZ)) == []
    dec = month_bounds(2025, 12, TZ)
    assert list(months_ending_between(dec[1] - timedelta(hours=1), JAN[1], TZ)) == [dec, JAN]
