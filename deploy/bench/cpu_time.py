"""CPU seconds spent by the processes of a benchmark, by who, between two snapshots.

On a machine of a few cores the stage under test shares the cores with PostgreSQL and NATS;
what they all spend on one measured hour bounds how fast any number of the stage's processes
can finish it: no run can be shorter than its CPU seconds over the machine's cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil


def _own_s(process: psutil.Process, reaped: bool) -> float:
    times = process.cpu_times()
    own = times.user + times.system
    return own + times.children_user + times.children_system if reaped else own


def machine_busy_s() -> float:
    """Seconds every core of the machine spent not idle, since boot (every process's)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@dataclass(frozen=True)
class CpuSnapshot:
    """Each group's CPU seconds (summed over its processes) and the machine's, at one time."""

    groups: dict[str, float]
    machine: float

    def since(self, before: CpuSnapshot) -> CpuUse:
        return CpuUse(
            {name: s - before.groups.get(name, 0.0) for name, s in self.groups.items()},
            self.machine - before.machine,
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
        for name, processes in self.processes.items():
            total = 0.0
            for process, reaped in processes:
                try:
                    total += _own_s(process, reaped)
                except psutil.NoSuchProcess:  # exited since: its seconds are its parent's now
                    continue
            groups[name] = total
        return CpuSnapshot(groups, machine_busy_s())


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds between two snapshots: each group's, and the whole machine's (``other``
    is what processes outside the groups spent: other work sharing the machine)."""

    groups: dict[str, float]
    machine: float

    @property
    def ours(self) -> float:
        return sum(self.groups.values())

    @property
    def other(self) -> float:
        return max(self.machine - self.ours, 0.0)

    def describe(self) -> str:
        parts = [f"{name} {s:.2f}" for name, s in self.groups.items()]
        return f"CPU s: {', '.join(parts)}; other work {self.other:.2f}"
