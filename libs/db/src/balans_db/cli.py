"""``balans db ...``: migrations and demo data."""

from __future__ import annotations

import asyncio

import typer

from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.settings import DatabaseSettings

db_app = typer.Typer(help="Database schema and demo data (uses BALANS_DATABASE_URL).")


@db_app.command("migrate")
def migrate_command(revision: str = typer.Option("heads", help="Target revision.")) -> None:
    """Upgrade the schema to the latest revision (or REVISION)."""
    migrate.upgrade(DatabaseSettings().database_url, revision)
    typer.echo("schema up to date")


@db_app.command("downgrade")
def downgrade_command(
    revision: str = typer.Option("base", help="Target revision ('base' empties the schema)."),
) -> None:
    """Downgrade the schema (to empty by default)."""
    migrate.downgrade(DatabaseSettings().database_url, revision)
    typer.echo(f"schema at {revision}")


@db_app.command("seed-demo")
def seed_demo_command() -> None:
    """Load the reference building of DOMAIN.md and a few smaller ones (idempotent)."""
    settings = DatabaseSettings()
    added = asyncio.run(seed(settings.database_url, KeyVault.from_hex(settings.master_key)))
    typer.echo(f"demo city loaded: {added} building(s) added")


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(db_app, name="db")
