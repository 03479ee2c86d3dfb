"""``balans user ...``: manage portal and API users (e.g. the first admin)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import typer

from balans_api import audit, profile_keeper
from balans_api.calendar import parse_month
from balans_api.db import open_pool
from balans_api.import_cli import export_command, import_command, import_readings_command
from balans_api.password_policy import MIN_LENGTH, WeakPasswordError, check_password
from balans_api.settings import ApiSettings
from balans_api.users import create_user, ensure_demo_users
from balans_db.tables import ROLES

user_app = typer.Typer(help="Users of the portal and the API (uses BALANS_DATABASE_URL).")


@user_app.command("create")
def create_command(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("admin", help=f"One of {', '.join(ROLES)}."),
    account: str | None = typer.Option(None, help="Account number (consumers only)."),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help=f"At least {MIN_LENGTH} characters, not in the breached-password list.",
    ),
) -> None:
    """Create a user (``balans user create alice --role admin`` for the first admin)."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {ROLES}")
    try:
        check_password(password, username)
    except WeakPasswordError as exc:
        raise typer.BadParameter(str(exc), param_hint="--password") from exc

    async def run() -> int:
        pool = await open_pool(ApiSettings().database_url, 1)
        try:
            account_id = None
            if account is not None:
                account_id = await pool.fetchval(
                    "select id from accounts where number = $1", account
                )
                if account_id is None:
                    raise typer.BadParameter(f"no account {account!r}")
            row = await create_user(pool, username, password, role, account_id)
            await audit.record(pool, "cli", "user.create", f"user:{username}", role=role)
            return int(row["id"])
        finally:
            await pool.close()

    try:
        user_id = asyncio.run(run())
    except asyncpg.UniqueViolationError:
        typer.echo(f"user {username!r} exists already", err=True)
        raise typer.Exit(1) from None
    except asyncpg.CheckViolationError:
        typer.echo("consumers need --account, other roles must not have one", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"user {username!r} ({role}) created with id {user_id}")


@user_app.command("list")
def list_command() -> None:
    """List users and their roles."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(ApiSettings().database_url)
        try:
            return await conn.fetch("select username, role, active from users order by id")
        finally:
            await conn.close()

    for row in asyncio.run(run()):
        state = "" if row["active"] else " (inactive)"
        typer.echo(f"{row['username']:<24} {row['role']}{state}")


@user_app.command("demo")
def demo_command() -> None:
    """Create the demo admin, operator and consumer logins and print them."""

    async def run() -> list[tuple[str, str]]:
        pool = await open_pool(ApiSettings().database_url, 1)
        try:
            return await ensure_demo_users(pool)
        finally:
            await pool.close()

    for username, password in asyncio.run(run()):
        typer.echo(f"{username} / {password}")


profiles_app = typer.Typer(help="Kept answers of closed months (uses BALANS_DATABASE_URL).")


@profiles_app.command("keep")
def keep_command(
    months: int = typer.Option(
        None, help="Closed months back to build (default BALANS_API_KEEP_MONTHS)."
    ),
    month: str | None = typer.Option(None, help="Only this closed month (YYYY-MM)."),
    jobs: int = typer.Option(2, min=1, help="Building months built at a time."),
) -> None:
    """Build the missing kept profiles of closed months for every flat (what the api's
    service process does on its own; for the history at once, or after a restore)."""
    settings = ApiSettings()

    async def run() -> profile_keeper.Built:
        pool = await open_pool(settings.database_url, jobs + 1)
        try:
            todo = await profile_keeper.missing(
                pool, settings.api_keep_months if months is None else months
            )
            if month is not None:
                todo = [p for p in todo if p[1] == parse_month(month)]
            return await profile_keeper.build(pool, todo, jobs)
        finally:
            await pool.close()

    started = time.perf_counter()
    built = asyncio.run(run())
    seconds = time.perf_counter() - started
    typer.echo(
        f"kept {built.rows} profiles of {built.months} building months in {seconds:.1f} s "
        f"({built.rows / max(seconds, 1e-9):.0f}/s, {built.bytes / 1e6:.1f} MB); "
        f"discarded {built.discarded}, failed {built.failed}"
    )
    if built.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.add_typer(user_app, name="user")
    app.add_typer(profiles_app, name="profiles")
    app.command("import")(import_command)
    app.command("export")(export_command)
    app.command("import-readings")(import_readings_command)
