"""Each process limited to a fraction of a core by a Linux cgroup CPU quota of its own.

``make bench-scale-out`` with ``BENCH_SCALE_OUT_PROCESS_CPUS`` puts every process of the
partitioned stages in such a group: on a machine of two cores, where PostgreSQL and NATS share
the cores with the stage, a process limited to half a core stands for one on a host of its
own with the servers elsewhere. The groups are made under the cgroup v2 hierarchy
(``cpu.max``) where its ``cpu`` controller is enabled, else under cgroup v1's ``cpu``
controller (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); neither writable is an error
naming what was tried.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 10_000
"""The quota's period: short, so that a stage of a fraction of a second is throttled
evenly rather than in 100 ms steps (the kernel's default period)."""


class CpuLimitError(RuntimeError):
    """No cgroup CPU controller this process may write."""


class CpuQuota:
    """Cgroups named ``balans-bench-<our pid>-<process name>``, each capped at ``cpus`` of a
    core; :meth:`limit` moves a process (and the threads and children it starts later) into
    its own, :meth:`remove` deletes them once their processes have exited."""

    def __init__(self, cpus: float) -> None:
        if not 0 < cpus <= (os.cpu_count() or 1):
            raise ValueError(f"a process's CPU limit must be in (0, cores], got {cpus}")
        self.cpus = cpus
        self.quota_us = max(int(cpus * PERIOD_US), 1000)  # the kernel's least quota is 1 ms
        v2 = CGROUP_ROOT / "cgroup.controllers"
        if v2.exists() and "cpu" in v2.read_text().split():
            self.version, self.parent = "v2 cpu.max", CGROUP_ROOT
            control = CGROUP_ROOT / "cgroup.subtree_control"
            if "cpu" not in control.read_text().split():  # the groups below get cpu.max
                self._write(control, "+cpu")
        elif (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
            self.version, self.parent = "v1 cpu.cfs_quota_us", CGROUP_ROOT / "cpu"
        else:
            raise CpuLimitError(
                f"no cgroup CPU controller: neither {v2} lists 'cpu' (cgroup v2) nor"
                f" {CGROUP_ROOT / 'cpu' / 'cpu.cfs_quota_us'} exists (cgroup v1)"
            )
        self.groups: list[Path] = []
        self.remove_group(self.group("probe"))  # fails here, before any work, if not writable

    def describe(self) -> str:
        return (
            f"{self.cpus:.2f} of a core a process (cgroup {self.version},"
            f" {self.quota_us} us every {PERIOD_US} us)"
        )

    def group(self, name: str) -> Path:
        """A new group capped at the quota."""
        path = self.parent / f"balans-bench-{os.getpid()}-{name}"
        try:
            path.mkdir()
            if self.parent == CGROUP_ROOT:
                (path / "cpu.max").write_text(f"{self.quota_us} {PERIOD_US}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        except OSError as error:
            raise CpuLimitError(
                f"cannot make a CPU-limited cgroup at {path} ({self.version}): {error};"
                " the benchmark needs write access to the cgroup hierarchy (root, or a"
                " delegated cgroup)"
            ) from error
        self.groups.append(path)
        return path

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as error:
            raise CpuLimitError(f"cannot write {value!r} to {path}: {error}") from error

    def limit(self, pid: int, name: str) -> None:
        """Move process ``pid`` into a group of its own named after ``name``."""
        self._write(self.group(name) / "cgroup.procs", str(pid))

    def remove_group(self, path: Path) -> None:
        path.rmdir()
        self.groups.remove(path)

    def remove(self) -> None:
        """Delete the groups (their processes must have exited); one that cannot be deleted
        is named on stderr and the others are still deleted (not raised: this runs while
        the benchmark stops, maybe on another error)."""
        for path in list(self.groups):
            try:
                self.remove_group(path)
            except OSError as error:
                print(f"cgroup {path} left behind: {error}", file=sys.stderr)
