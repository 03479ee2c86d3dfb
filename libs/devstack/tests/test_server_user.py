"""The servers' user is added once even when several processes ask for it at the same time."""

from __future__ import annotations

import os
import pwd
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from balans_devstack import processes

ASKING = 4


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs servers as another user")
def test_concurrent_first_asks_all_get_the_new_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a new machine both pytest-xdist workers start their servers at once: all get the
    one user, added once (two useradd at once fail, or both add it, with two uids)."""
    name = f"balans-race{os.getpid()}"
    monkeypatch.setattr(processes, "SERVICE_USER", name)
    try:
        with ThreadPoolExecutor(ASKING) as pool:
            users = list(pool.map(lambda _: processes.unprivileged_user(), range(ASKING)))
        assert None not in users
        assert {(user.pw_name, user.pw_uid) for user in users if user is not None} == {
            (name, pwd.getpwnam(name).pw_uid)
        }
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
