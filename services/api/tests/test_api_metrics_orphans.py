"""A killed api's metrics directory is removed by the next start (worker_metrics)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from balans_api.worker_metrics import PREFIX, remove_orphans


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_the_directories_of_processes_gone_are_removed(tmp_path: Path) -> None:
    gone = tmp_path / f"{PREFIX}{_exited_pid()}-abc"
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"
    unnamed = tmp_path / f"{PREFIX}xyz"  # named before directories carried their pid
    other = tmp_path / "something-else-1"
    for folder in (gone, alive, unnamed, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")

    assert remove_orphans(tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (alive, unnamed, other)
    )
