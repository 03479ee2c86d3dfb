"""``balans <command>`` imports only what the command needs: a service's CLI contribution
imports its whole package (seconds of CPU each), which ``balans deadletter`` must not pay."""

from __future__ import annotations

import subprocess
import sys

from balans_core import cli

PROBE = """
import sys
from balans_core import cli
cli._register_contributions({command!r})
print(" ".join(sorted(cli._registered())))
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules if m.startswith("balans_")}})))
"""


def _loaded(command: str) -> tuple[set[str], set[str]]:
    """The commands registered and the balans packages imported for ``command``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(command=command)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return set(out[0].split()), set(out[1].split())


def test_a_built_in_command_loads_no_contribution() -> None:
    commands, packages = _loaded("deadletter")
    assert commands == {"config", "deadletter"}
    assert packages <= {"balans_core", "balans_protocol"}


def test_a_contributed_command_loads_its_entry_point_first() -> None:
    commands, packages = _loaded("user")
    assert {"user", "profiles", "import"} <= commands
    assert "balans_api" in packages
    assert not packages & {"balans_billing", "balans_allocation", "balans_sim"}


def test_no_command_loads_every_contribution() -> None:
    """In this process: ``balans`` alone (or ``--help``) lists everything."""
    cli._register_contributions()
    assert {"billing", "db", "heat", "mbus", "run", "stack", "sim", "user"} <= cli._registered()
