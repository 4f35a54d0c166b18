"""Running swift as a child in its own process group, forwarding Ctrl-C and termination to all of it.

If mhsft itself dies, swift does not run on orphaned: the kernel sends it SIGTERM (Linux parent-death signal)
and `mhsft.process.watchdog` ends its whole process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mhsft.errors import INTERRUPTED, MhsftError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)  # a closed terminal/ssh: SIGHUP
KILL_AFTER_S = 20.0  # after the first forwarded signal, the group gets SIGKILL if it is still alive
_PR_SET_PDEATHSIG = 1


_STOPPED_BY = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # a swift ended by these was interrupted


@dataclass(frozen=True)
class Outcome:
    """How a child ended: mhsft's exit code for it, and the signal that interrupted it, if any."""

    exit_code: int
    signal: int | None = None


def executable(name: str) -> str:
    """`name` (e.g. swift) from PATH, else next to this Python (a venv run without activation)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise MhsftError(
            f"`{name}` was not found on PATH or beside {sys.executable}. Install ms-swift in this "
            "environment (pip install ms-swift) or activate the environment that has it."
        )
    return found


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn giving the child SIGTERM when mhsft dies (Linux; None elsewhere).

    The signal follows the thread that started the child, so `run` must be called from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # mhsft died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _watchdog() -> subprocess.Popen[bytes]:
    """Start `mhsft/watchdog.py` (standard library only, run isolated) in its own session, listening on a pipe
    only this process holds."""
    return subprocess.Popen(
        [sys.executable, "-I", str(Path(__file__).with_name("watchdog.py")), str(KILL_AFTER_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _release(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog swift has ended; it then exits on its own without touching anything."""
    with contextlib.suppress(OSError):
        watchdog.stdin.write(b"done")  # type: ignore[union-attr]
        watchdog.stdin.close()  # type: ignore[union-attr]


def _pump(stream: IO[bytes], write: Callable[[str], None]) -> None:
    """Copy a child's output line by line through `write` (which redacts) until it closes."""
    for raw in iter(stream.readline, b""):
        write(raw.decode("utf-8", errors="replace"))
    stream.close()


def run(
    argv: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    log: IO[str] | None = None,
    on_start: Callable[[int], None] | None = None,
    filter_output: Callable[[str], str] | None = None,
) -> Outcome:
    """Run `argv` (argv[0] a full path, see `executable`) in a new session.

    SIGINT/SIGTERM/SIGHUP/SIGQUIT sent to mhsft go to the child's whole process group; a second Ctrl-C escalates
    to SIGTERM, a third (or KILL_AFTER_S seconds) to SIGKILL. Output goes to the terminal, or to `log`, or,
    with `filter_output`, line by line through that function to stdout.
    """
    received: list[int] = []
    pids: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if pids:
            _killpg(pids[0], [signum, signal.SIGTERM, signal.SIGKILL][min(len(received), 3) - 1])
        if len(received) == 1 and pids:
            killer.start()

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    watchdog = _watchdog()
    try:
        stdout = subprocess.PIPE if filter_output else log
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            start_new_session=True,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None,
            preexec_fn=die_with_parent(),
        )
        pids.append(proc.pid)
        killer = threading.Timer(KILL_AFTER_S, _killpg, (proc.pid, signal.SIGKILL))
        killer.daemon = True
        with contextlib.suppress(OSError):
            watchdog.stdin.write(f"{proc.pid}\n".encode())  # type: ignore[union-attr]
            watchdog.stdin.flush()  # type: ignore[union-attr]
        if received:  # a signal came while the child was starting
            forward(received.pop(), None)
        pump = None
        if filter_output and proc.stdout:
            pump = threading.Thread(
                target=_pump, args=(proc.stdout, lambda t: print(filter_output(t), end="", flush=True)), daemon=True
            )
            pump.start()
        if on_start:
            on_start(proc.pid)
        code = proc.wait()
        if pump:
            pump.join(timeout=5)
    except BaseException:
        with contextlib.suppress(OSError):
            watchdog.stdin.close()  # type: ignore[union-attr]  # giving up on a started swift stops it
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pids:
            killer.cancel()
    if received:
        _killpg(proc.pid, signal.SIGKILL)  # stragglers such as dataloader workers
    _release(watchdog)
    if received:
        first = received[0]
        return Outcome(INTERRUPTED if first == signal.SIGINT else 128 + first, first)
    if -code in _STOPPED_BY:  # the signal reached swift straight (Slurm's scancel signals every process)
        return Outcome(128 - code, -code)
    return Outcome(code if code >= 0 else 128 - code)
