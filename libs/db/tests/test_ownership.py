"""Each service names in SQL only the tables it owns (balans_db.ownership)."""

from __future__ import annotations

from pathlib import Path

from balans_db.ownership import owned_by, tables_named, violations

ROOT = Path(__file__).resolve().parents[3]

SOURCE = '''
"""Reads heat_allocation: a docstring is prose, not SQL."""
from balans_db.tables import alerts
from balans_db import tables
import balans_db.tables.billing as billing_tables

Q = "select flat_id from heat_allocation h join flats f on f.id = h.flat_id"
T = f"insert into {stage} select * from meter_consumption"
C = "pulse_readings"
LABEL = "radiators"
PROSE = "uploads from concentrators"
T2 = tables.invoices.c.total
T3 = billing_tables.tariffs
'''


def test_scanner_finds_sql_fstrings_copy_targets_and_imports() -> None:
    assert sorted(tables_named(SOURCE)) == [
        (3, "alerts"),
        (7, "flats"),
        (7, "heat_allocation"),
        (8, "meter_consumption"),
        (9, "pulse_readings"),
        (12, "invoices"),
        (13, "tariffs"),
    ]


def test_a_service_owns_its_tables_and_mbus_writes_for_ingest() -> None:
    assert {"heat_allocation", "meter_consumption"} <= owned_by("allocation")
    assert "pulse_readings" not in owned_by("allocation")
    assert {"users", "meters"} <= owned_by("api")
    assert {"mbus_meters", "pulse_readings"} <= owned_by("mbus")
    assert owned_by("sim") == set()


def test_no_service_names_another_services_table() -> None:
    found = violations(ROOT)
    assert not found, "\n".join(str(v) for v in found)
