"""Child processes that die with their parent.

Every process the dev stack starts gets ``PR_SET_PDEATHSIG``: when the process that
started it dies (even by SIGKILL), the kernel sends the child a signal, so no postgres,
nats-server, prometheus or service is left behind. The kernel sends it when the *thread*
that forked the child ends, so children are spawned (and respawned) from the main thread.
A parent that died before the child set the signal up is caught by comparing the parent
pid. As root, PostgreSQL refuses to run, so the child first drops to an unprivileged
system user.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

_PR_SET_PDEATHSIG = 1
SERVICE_USER = "balans"
USERADD = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
USERADD_LOCK = Path(tempfile.gettempdir()) / "balans-useradd.lock"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run servers as: None when we are not root, else a system user."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    with _lock(USERADD_LOCK):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVICE_USER)  # another process added it while we waited
        subprocess.run(
            [*USERADD, SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block. Two useradd at once may
    both add the user, with two uids (the test session's pytest-xdist workers on a new
    machine start their servers at the same moment), so processes take turns."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield


def chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    """Give a data folder to the server's user, and let that user reach it: folders above
    it that others cannot traverse (pytest's and mkdtemp's are 0700) get o+x."""
    if user is None:
        return
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)  # noqa: PTH118


def _child_setup(user: pwd.struct_passwd | None, death_signal: int) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:
        os.setpgrp()  # a Ctrl-C in the terminal goes to us; we stop the servers in order
        if user is not None:
            os.setgid(user.pw_gid)
            os.setgroups([])
            os.setuid(user.pw_uid)
        # after setuid: changing credentials clears the parent-death signal
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
            os.kill(os.getpid(), death_signal)

    return setup


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    user: pwd.struct_passwd | None = None,
    death_signal: int = signal.SIGTERM,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server whose output goes to ``log_file`` and which dies with us."""
    log = log_file.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_child_setup(user, death_signal),
            env=env,
        )
    finally:
        log.close()


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float = 20.0) -> None:
    """Ask a server to stop with ``sig``; kill it if it has not stopped after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextmanager
def service_process(
    module: str, env: Mapping[str, str], stop_timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m <module>`` with ``env`` (its output discarded) for the ``with`` block,
    then asked to stop with SIGTERM and killed if it has not after ``stop_timeout``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        stop_process(proc, signal.SIGTERM, stop_timeout)
