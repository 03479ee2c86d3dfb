"""Fixtures shared by every test in the workspace (see balans_devstack.pytest_plugin), and how
`make test` shares the test modules among pytest-xdist's workers (``--dist loadfile``)."""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

pytest_plugins = ["balans_devstack.pytest_plugin"]

WORKER_GROUPS = "worker_groups"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        WORKER_GROUPS,
        type="linelist",
        help="test modules (one group a line, space-separated) that run on one pytest-xdist "
        "worker: they share a session fixture that is costly to set up",
    )


def worker_groups(config: pytest.Config) -> list[set[str]]:
    """The ``worker_groups`` of the pytest settings, each a set of module paths."""
    return [set(line.split()) for line in config.getini(WORKER_GROUPS)]


class FileGroupScheduling(LoadFileScheduling):
    """xdist's loadfile (a module's tests on one worker, so its fixtures are set up once),
    and the modules of one ``worker_groups`` line on one worker together. (xdist's own
    ``xdist_group`` mark cannot do it: its loadgroup renames node ids, which pytest 9.2
    ignores, pytest-xdist issue 1386.)"""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.group_of = {module: min(group) for group in worker_groups(config) for module in group}

    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return self.group_of.get(module, module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> FileGroupScheduling | None:
    """Under ``--dist loadfile`` (`make test`), the modules of a worker group share a worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    return FileGroupScheduling(config, log)
