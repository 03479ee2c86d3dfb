"""The demo logins: what `make run` prints is what the api creates."""

from __future__ import annotations

from pathlib import Path

from balans_api.users import DEMO_ADMIN, DEMO_CONSUMER, DEMO_OPERATOR


def test_make_run_prints_the_real_demo_logins() -> None:
    """The logins `make run` prints are the ones the api creates."""
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if "demo logins" in x)
    for username, password in (DEMO_ADMIN, DEMO_OPERATOR, DEMO_CONSUMER):
        assert f"{username} / {password}" in line
