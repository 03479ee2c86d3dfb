"""CPU seconds spent by the processes of a benchmark, by who, between two snapshots.

On a machine of a few cores the stage under test shares the cores with PostgreSQL and NATS;
what they all spend on one measured hour bounds how fast any number of the stage's processes
can finish it: no run can be shorter than its CPU seconds over the machine's cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def _own_s(process: psutil.Process, reaped: bool) -> float:
    times = process.cpu_times()
    own = times.user + times.system
    return own + times.children_user + times.children_system if reaped else own


def minor_faults(process: psutil.Process, reaped: bool) -> int:
    """Minor page faults (a page mapped without reading the disk: a new backend's first
    touch of each shared-buffer page it uses), from ``/proc/<pid>/stat``; 0 where that is
    missing (not Linux)."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if not psutil.pid_exists(process.pid):
            raise psutil.NoSuchProcess(process.pid) from None
        return 0
    # after "(comm)": state ppid pgrp session tty_nr tpgid flags minflt cminflt ...
    minflt, cminflt = int(fields[7]), int(fields[8])
    return minflt + cminflt if reaped else minflt


def machine_busy_s() -> float:
    """Seconds every core of the machine spent not idle, since boot (every process's)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass(frozen=True)
class CpuSnapshot:
    """Each group's CPU seconds and minor page faults (summed over its processes) and the
    machine's CPU seconds, at one time."""

    groups: dict[str, float]
    machine: float
    faults: dict[str, int] = field(default_factory=dict)

    def since(self, before: CpuSnapshot) -> CpuUse:
        return CpuUse(
            {name: s - before.groups.get(name, 0.0) for name, s in self.groups.items()},
            self.machine - before.machine,
            {name: n - before.faults.get(name, 0) for name, n in self.faults.items()},
        )


class CpuMeter:
    """Snapshots of named groups of processes' CPU seconds. Each group is its pids with their
    descendants as they are when the meter is made (a PostgreSQL backend that exits later is
    still counted: its seconds move to the postmaster's reaped children), unless the group
    is named in ``alone`` (a parent whose children are other groups). Finding descendants
    reads every process of the machine, so it is done once: a snapshot reads only the
    groups' own processes, cheap enough to take many times a second."""

    def __init__(self, groups: Mapping[str, Iterable[int]], alone: Iterable[str] = ()) -> None:
        single = set(alone)
        self.processes: dict[str, list[tuple[psutil.Process, bool]]] = {}
        for name, pids in groups.items():
            found: list[tuple[psutil.Process, bool]] = []
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    found.append((root, name not in single))
                    if name not in single:
                        found += [(child, False) for child in root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
            self.processes[name] = found

    def take(self) -> CpuSnapshot:
        groups: dict[str, float] = {}
        faults: dict[str, int] = {}
        for name, processes in self.processes.items():
            total, faulted = 0.0, 0
            for process, reaped in processes:
                try:
                    total += _own_s(process, reaped)
                    faulted += minor_faults(process, reaped)
                except psutil.NoSuchProcess:  # exited since: its seconds are its parent's now
                    continue
            groups[name], faults[name] = total, faulted
        return CpuSnapshot(groups, machine_busy_s(), faults)


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds between two snapshots: each group's, and the whole machine's (``other``
    is what processes outside the groups spent: other work sharing the machine)."""

    groups: dict[str, float]
    machine: float
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def ours(self) -> float:
        return sum(self.groups.values())

    @property
    def other(self) -> float:
        return max(self.machine - self.ours, 0.0)

    def describe(self) -> str:
        parts = [f"{name} {s:.2f}" for name, s in self.groups.items()]
        return f"CPU s: {', '.join(parts)}; other work {self.other:.2f}"

    def describe_faults(self, *names: str) -> str:
        """The named groups' minor page faults (thousands)."""
        return "minor faults: " + ", ".join(
            f"{name} {self.faults.get(name, 0) / 1000:.1f}k" for name in names
        )
