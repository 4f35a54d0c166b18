"""A `swift deploy` server for the length of an evaluation: started in its own process group (output to a log),
waited for until it lists the models asked for, and stopped (its whole group) however the evaluation ends."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.process.runner import die_with_parent, executable
from mhsft.recipe.plan import Plan
from mhsft.trained.deploy import models

STOP_GRACE_S = 20.0
LISTENING = re.compile(r"Uvicorn running on (https?://\S+) ")


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


def listening(log: Path) -> str | None:
    """The API address uvicorn says this server runs on (swift moves to the next free port silently), or None
    before it says so: the planned port may answer for another server that took it in the meantime."""
    try:
        found = LISTENING.findall(log.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = []
    return f"{found[-1]}/v1" if found else None


def _wait_ready(proc: subprocess.Popen[bytes], planned: str, wanted: list[str], timeout: float, log: Path) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MhsftError(
                f"swift deploy exited with {proc.returncode} before serving the model ({_tail(log)}); its whole "
                f"output is in {log}.",
                proc.returncode or 1,
            )
        base_url = listening(log)
        listed = models(base_url, None) if base_url else None
        if base_url and listed is not None and all(name in listed for name in wanted):
            return base_url
        time.sleep(0.5)
    raise MhsftError(
        f"swift deploy did not serve {', '.join(wanted)} at {listening(log) or planned} within {timeout:g} s "
        f"({_tail(log)}). "
        f"Raise --ready-timeout for large models; the log is {log}.",
        1,
    )


@contextlib.contextmanager
def serving(
    plan: Plan, environment: Environment, planned: str, wanted: list[str], timeout: float, log: Path
) -> Iterator[str]:
    """Run the plan's `swift deploy` until the block ends, yielding the API address it serves `wanted` at (the
    `planned` one unless swift moved to another port); raise MhsftError if it never serves them."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [executable(plan.argv[0]), *plan.argv[1:]],
            env=plan.child_env(environment),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    try:
        yield _wait_ready(proc, planned, wanted, timeout, log)
    finally:
        _stop(proc)
