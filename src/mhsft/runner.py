"""Running swift as a child in its own process group, forwarding Ctrl-C and termination to all of it."""

from __future__ import annotations

import contextlib
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


@dataclass(frozen=True)
class Outcome:
    """How a child ended: mhsft's exit code for it, and the signal that interrupted it, if any."""

    exit_code: int
    signal: int | None = None

    @property
    def status(self) -> str:
        if self.signal is not None:
            return "interrupted"
        return "succeeded" if self.exit_code == 0 else "failed"


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
    try:
        stdout = subprocess.PIPE if filter_output else log
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, start_new_session=True, stdout=stdout, stderr=subprocess.STDOUT if stdout else None
        )
        pids.append(proc.pid)
        killer = threading.Timer(KILL_AFTER_S, _killpg, (proc.pid, signal.SIGKILL))
        killer.daemon = True
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
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pids:
            killer.cancel()
    if received:
        _killpg(proc.pid, signal.SIGKILL)  # stragglers such as dataloader workers
        first = received[0]
        return Outcome(INTERRUPTED if first == signal.SIGINT else 128 + first, first)
    return Outcome(code if code >= 0 else 128 - code)
