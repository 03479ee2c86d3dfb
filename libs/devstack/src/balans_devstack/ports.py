"""The ports of the previous run, kept in the data folder so a restart keeps its URLs.

``balans run`` and ``balans stack`` ask the book for each server's and service's port: the
one recorded in ``ports.json`` when it is still free, else a new free one (recorded).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import structlog

from balans_devstack.processes import free_port

log = structlog.get_logger("devstack")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now (the servers set SO_REUSEADDR too, so a
    port whose last connections are in TIME_WAIT counts as free; a listening one does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class PortBook:
    """name -> port, read from and written to ``path`` (``<data>/ports.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ports: dict[str, int] = {}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
                self.ports = {str(k): int(v) for k, v in loaded.items()}
            except (ValueError, AttributeError, TypeError) as exc:
                log.warning(
                    "ports file unreadable; choosing new ports", path=str(path), error=str(exc)
                )

    def port(self, name: str) -> int:
        """The port ``name`` had last time if it is free, else a new free one."""
        previous = self.ports.get(name)
        if previous is not None and port_free(previous):
            return previous
        chosen = free_port()
        if previous is not None:
            log.warning(
                "previous port taken; using another", process=name, previous=previous, port=chosen
            )
        self.ports[name] = chosen
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.ports, indent=2, sort_keys=True) + "\n")
        return chosen
