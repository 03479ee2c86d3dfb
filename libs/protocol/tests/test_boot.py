"""The boot counter never repeats: it grows at every start, survives a clock stepping back
and a lost or damaged state file, and refuses to wrap."""

from __future__ import annotations

from pathlib import Path

import pytest

from balans_protocol.boot import MAX_BOOT, next_boot

NOW = 1_767_225_600.0


def test_every_start_takes_a_new_counter_and_stores_it(tmp_path: Path) -> None:
    """Three starts within one second: three increasing counters, the last one on disk."""
    path = tmp_path / "state" / "boot"
    boots = [next_boot(path, clock=lambda: NOW) for _ in range(3)]
    assert boots == [int(NOW), int(NOW) + 1, int(NOW) + 2]
    assert path.read_text() == f"{int(NOW) + 2}\n"
    assert not path.with_name("boot.partial").exists()


def test_a_clock_stepping_back_does_not_reuse_a_counter(tmp_path: Path) -> None:
    path = tmp_path / "boot"
    first = next_boot(path, clock=lambda: NOW)
    assert next_boot(path, clock=lambda: NOW - 86_400) == first + 1


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_lost_state_file_counts_on_from_the_clock(tmp_path: Path, damage: str) -> None:
    """Starts before the file was lost counted at most once a second from their clock, so
    the clock of a later start is above all of them."""
    path = tmp_path / "boot"
    earlier = [next_boot(path, clock=lambda: NOW) for _ in range(5)]
    if damage == "missing":
        path.unlink()
    else:
        path.write_text("not a number")
    assert next_boot(path, clock=lambda: NOW + 10) > max(earlier)


def test_the_counter_does_not_wrap(tmp_path: Path) -> None:
    path = tmp_path / "boot"
    path.write_text(f"{MAX_BOOT}\n")
    with pytest.raises(OverflowError, match="32 bits"):
        next_boot(path, clock=lambda: NOW)
    assert path.read_text() == f"{MAX_BOOT}\n"
