"""`python -I watchdog.py GRACE_S`: ends swift's process group when the mhsft process supervising it dies.

mhsft starts this before swift, in a session of its own, and holds the write end of its stdin: it writes
swift's process group id once swift has started, and `done` once swift has ended. If the pipe closes without
`done` (mhsft was killed: SIGKILL, an unhandled SIGUSR1 or SIGALRM, a crash), the group gets SIGTERM, then
SIGKILL if anything in it is still alive after the grace period, so no swift or worker runs on orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def guard(pgid: int, grace_s: float) -> None:
    """SIGTERM to the group, then SIGKILL after `grace_s` seconds if any member is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    grace_s = float(sys.argv[1])
    line = sys.stdin.buffer.readline()
    if not line.strip().isdigit():  # mhsft ended before swift started
        return
    if sys.stdin.buffer.read().strip() != b"done":
        guard(int(line), grace_s)


if __name__ == "__main__":
    main()
