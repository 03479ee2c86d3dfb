"""``balans db ...``: migrations and demo data."""

from __future__ import annotations

import asyncio

import typer

from balans_db import migrate
from balans_db.partitions import ensure_partitions
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.settings import DatabaseSettings

db_app = typer.Typer(help="Database schema and demo data (uses BALANS_DATABASE_URL).")


@db_app.command("migrate")
def migrate_command(revision: str = typer.Option("heads", help="Target revision.")) -> None:
    """Upgrade the schema to the latest revision (or REVISION), and partitions a year ahead."""
    url = DatabaseSettings().database_url
    migrate.upgrade(url, revision)
    created = asyncio.run(ensure_partitions(url))
    typer.echo(f"schema up to date; {sum(created.values())} monthly partition(s) added")


@db_app.command("partitions")
def partitions_command(
    months_ahead: int = typer.Option(12, min=0, max=120, help="Months to prepare."),
) -> None:
    """Create the monthly partitions of every partitioned table, from the month
    BALANS_READINGS_HORIZON_DAYS back to MONTHS_AHEAD ahead."""
    created = asyncio.run(ensure_partitions(DatabaseSettings().database_url, months_ahead))
    for table, count in created.items():
        typer.echo(f"{table}: {count} added")


@db_app.command("downgrade")
def downgrade_command(
    revision: str = typer.Option("base", help="Target revision ('base' empties the schema)."),
) -> None:
    """Downgrade the schema (to empty by default)."""
    migrate.downgrade(DatabaseSettings().database_url, revision)
    typer.echo(f"schema at {revision}")


@db_app.command("seed-demo")
def seed_demo_command() -> None:
    """Load the reference building of docs/domain.md and a few smaller ones (idempotent)."""
    settings = DatabaseSettings()
    added = asyncio.run(seed(settings.database_url, KeyVault.from_hex(settings.master_key)))
    typer.echo(f"demo city loaded: {added} building(s) added")


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(db_app, name="db")
