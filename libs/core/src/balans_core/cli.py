"""The ``balans`` command. Packages contribute subcommands through the entry-point group
``balans.cli``: each entry point names a function ``register(app: typer.Typer) -> None``.

A contribution imports its package (a service's whole CLI: seconds of CPU for all of them),
so ``balans <command>`` loads contributions only until ``<command>`` exists: the built-in
ones (``config``, ``deadletter``) load none, ``balans user ...`` loads the entry point named
``user`` first. ``balans`` alone, ``balans --help`` and an unknown command load them all.
"""

from __future__ import annotations

import sys
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


def _registered() -> set[str]:
    """The names of the commands and command groups ``app`` has now (one registered without
    a name is missing: asking for it loads every contribution, as before)."""
    commands = {c.name for c in app.registered_commands if c.name}
    return commands | {g.name for g in app.registered_groups if g.name}


def _register_contributions(command: str | None = None) -> None:
    """Register the installed packages' subcommands: all of them, or, with ``command``,
    only until it is registered (the entry point of its name first)."""
    if command is not None and command in _registered():
        return
    contributions = entry_points(group="balans.cli")
    for ep in sorted(contributions, key=lambda e: (e.name != command, e.name)):
        ep.load()(app)
        if command is not None and command in _registered():
            return


def main() -> None:
    """Console-script entry point."""
    asked = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
    _register_contributions(asked)
    app()
