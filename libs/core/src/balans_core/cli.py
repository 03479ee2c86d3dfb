"""The ``balans`` command. Packages contribute subcommands through the entry-point group
``balans.cli``: each entry point names a function ``register(app: typer.Typer) -> None``.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from balans_core.config_doc import config_command
from balans_core.deadletter_cli import deadletter_app

app = typer.Typer(
    name="balans",
    help="balans: per-flat heat and utility metering, balance control and billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.command("config")(config_command)
app.add_typer(deadletter_app, name="deadletter")


def _register_contributions() -> None:
    for ep in sorted(entry_points(group="balans.cli"), key=lambda e: e.name):
        ep.load()(app)


def main() -> None:
    """Console-script entry point."""
    _register_contributions()
    app()
