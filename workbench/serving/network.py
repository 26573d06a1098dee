"""This machine's side of the network: servers bind 127.0.0.1 on free ports, and load and replay
loops only ever target loopback."""

from __future__ import annotations

import socket
from contextlib import suppress
from urllib.parse import urlparse

import psutil

from workbench.errors import ServingError

HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def require_loopback(url: str, *, what: str) -> tuple[str, int]:
    """(host, port) of ``url``, or :class:`ServingError` when it is not on this machine.

    Load and replay loops only ever target loopback: ``what`` names the loop in the message.
    """
    parsed = urlparse(url)
    if parsed.hostname not in LOOPBACK:
        raise ServingError(f"{what} only targets this machine (127.0.0.1); got {url!r}")
    return parsed.hostname or HOST, parsed.port or 80


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def listens_on(pids: set[int], port: int) -> bool:
    """Whether one of ``pids`` holds the listening socket on ``HOST:port``."""
    for pid in pids:
        with suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr[1] == port:
                    return True
    return False
