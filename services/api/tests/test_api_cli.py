"""``balans user ...``: the first admin comes from the command line."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from balans_api.cli import register
from balans_api.security import verify_password


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _user(url: str, name: str) -> asyncpg.Record | None:
    async def fetch() -> asyncpg.Record | None:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchrow("select * from users where username = $1", name)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_user_create_and_list(cli: typer.Typer, database_url: str) -> None:
    """`balans user create` stores an argon2 hash; `list` shows the user; a second create
    with the same name fails with exit code 1."""
    runner = CliRunner(env={"BALANS_DATABASE_URL": database_url})
    args = ["user", "create", "root", "--role", "admin", "--password", "s3cret-enough"]
    created = runner.invoke(cli, args)
    assert created.exit_code == 0, created.output
    row = _user(database_url, "root")
    assert row is not None
    assert row["role"] == "admin"
    assert verify_password(row["password_hash"], "s3cret-enough")
    assert "root" in runner.invoke(cli, ["user", "list"]).output
    assert runner.invoke(cli, args).exit_code == 1


def test_consumer_needs_an_account(cli: typer.Typer, database_url: str) -> None:
    """A consumer without --account is refused and nothing is stored."""
    runner = CliRunner(env={"BALANS_DATABASE_URL": database_url})
    result = runner.invoke(
        cli,
        ["user", "create", "resident", "--role", "consumer", "--password", "long-enough-pass"],
    )
    assert result.exit_code == 1
    assert _user(database_url, "resident") is None


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pass", "at least 12 characters"),
        ("password1234", "breached or common passwords"),
        ("my-name-is-weakling", "must not contain the username"),
    ],
)
def test_user_create_refuses_a_weak_password(
    cli: typer.Typer, database_url: str, password: str, reason: str
) -> None:
    """The password policy names what is wrong and nothing is stored."""
    runner = CliRunner(env={"BALANS_DATABASE_URL": database_url})
    result = runner.invoke(cli, ["user", "create", "weakling", "--password", password])
    assert result.exit_code == 2
    assert reason in " ".join(result.output.replace("│", " ").split())  # unwrap the box
    assert _user(database_url, "weakling") is None
