"""Everything a process started, sessions included: found by parent pid in /proc, stopped, waited for (Linux).

torch elastic starts its workers with `start_new_session=True`, outside the process group that `runner` signals;
when their parent dies first they are re-parented, out of reach. A process that is a child subreaper adopts
such orphans instead, so that every process it started stays below it until `stop_all` ends them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
POLL_S = 0.05


def adopt_orphans() -> bool:
    """Make this process a child subreaper (Linux 3.4+); False where it cannot be one."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (children, their children, ...); zombies are gone already."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            after_name = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if after_name[0] != "Z":
            children.setdefault(int(after_name[1]), []).append(int(entry))  # field 4: the parent pid
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> None:
    """Collect the exit status of adopted children that have ended (call once the main child is waited for)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def stop_all(grace_s: float, wait_s: float = 10.0) -> list[int]:
    """End every process below this one: SIGTERM, SIGKILL after `grace_s` seconds for those left, then wait up
    to `wait_s` until they are gone; returns those still there (none, unless unkillable). Meanwhile this process
    ignores SIGTERM, SIGINT and SIGHUP (on the main thread): a second signal must not end it before them."""
    me = os.getpid()
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _IGNORED} if _main_thread() else {}
    try:
        _signal_all(descendants(me), signal.SIGTERM)
        _wait(me, grace_s)
        _signal_all(descendants(me), signal.SIGKILL)
        return _wait(me, wait_s)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait(pid: int, timeout: float) -> list[int]:
    """Wait until nothing is left below `pid` (reaping adopted children), at most `timeout` s; what is left."""
    deadline = time.monotonic() + timeout
    while (left := descendants(pid)) and time.monotonic() < deadline:
        _reap()
        time.sleep(POLL_S)
    _reap()
    return left
