"""Trials as child processes (`python -m mhsft.sweep.trial`), up to K at once, each in its own session.

A signal mhsft gets (Ctrl-C, SIGTERM, SIGHUP) goes to every running trial, whose runner passes it on to swift;
no trial starts after that. A trial dies with mhsft (Linux parent-death signal).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mhsft.process.runner import FORWARDED, die_with_parent
from mhsft.sweep.store import TRIAL_RUNNER


class Pool:
    """Start trials and wait for the next one to end; `stopped` once a signal came."""

    def __init__(self) -> None:
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.stopped: int | None = None
        self._ended: queue.Queue[tuple[int, int]] = queue.Queue()

    def start(self, number: int, argv: list[str], cwd: Path, log: Path | None) -> None:
        """Run trial `number`; its output goes to the terminal, or to `log`."""
        out = open(log, "ab") if log else None  # noqa: SIM115 (closed when the trial ends)
        proc = subprocess.Popen(
            [sys.executable, "-m", TRIAL_RUNNER, *argv],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self.running[number] = proc

        def wait() -> None:
            code = proc.wait()
            if out:
                out.close()
            self._ended.put((number, code))

        threading.Thread(target=wait, daemon=True).start()

    def next_end(self) -> tuple[int, int]:
        """(trial number, exit code) of the next trial to end."""
        number, code = self._ended.get()
        self.running.pop(number, None)
        return number, code

    def _forward(self, signum: int, _frame: object) -> None:
        self.stopped = self.stopped or signum
        for proc in list(self.running.values()):
            if proc.poll() is None:
                proc.send_signal(signum)

    @contextmanager
    def forwarding(self) -> Iterator[None]:
        """Within the block, signals to mhsft go to the running trials and stop the sweep."""
        previous = {s: signal.signal(s, self._forward) for s in FORWARDED}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
