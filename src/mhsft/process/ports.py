"""Free TCP ports for the servers mhsft starts (deploy, board)."""

from __future__ import annotations

import socket


def free_port(start: int) -> int:
    """The first port from `start` that can be bound, as swift itself picks it (it moves on silently)."""
    for port in range(start, start + 100):
        with socket.socket() as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
            return port
    return start
