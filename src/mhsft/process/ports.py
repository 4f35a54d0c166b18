"""Free TCP ports for the servers mhsft starts (deploy, board), and which process listens on one."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


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


def _listening_inodes(port: int) -> set[str] | None:
    """The socket inodes listening on TCP `port` (IPv4 and IPv6), from /proc/net; None without /proc/net."""
    found: set[str] = set()
    tables = [Path(f"/proc/net/{name}") for name in ("tcp", "tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    found.add(fields[9])
    return found


def _family(pid: int) -> set[int]:
    """`pid` and every process below it (read from /proc/*/stat)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    family, grown = {pid}, True
    while grown:
        more = {child for child, parent in parents.items() if parent in family} - family
        family, grown = family | more, bool(more)
    return family


def held_by(pid: int, port: int) -> bool | None:
    """Whether process `pid` (or one below it) is the one listening on `port`; None where /proc cannot tell."""
    listening = _listening_inodes(port)
    if listening is None:
        return None
    for member in _family(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{member}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).removeprefix("socket:[").rstrip("]") in listening:
                        return True
    return False
