"""Network checks in a child process with a hard deadline, so that nothing a server does can outlast it.

A thread cannot be stopped: a SwanLab or hub SDK call that stalls (a trickled or huge answer, a lookup that
never returns) kept the preflight waiting, and the SDK's output muting, applied to the whole process while
that thread was inside it, swallowed the error message. The child runs `module:function(args, emit)`, which
reports each step and check as a JSON line on the child's own stdout (the SDKs' output goes to a scratch
file); the parent kills the child's whole process group at the deadline (or, with `idle`, once the child has
been silent that long) and names the step that stalled. Other kinds of line go to the caller's `listen`.
Secrets travel in the payload on stdin, never on the command line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mhsft.checks import FAIL, Check

Emit = Callable[[str, Any], None]
REAP_S = 5.0  # how long `reap` waits through Popen's own lock
KILL_GRACE_S = 0.25  # the child's own deadline comes this much before the kill, so that it can report first


@dataclass
class Outcome:
    """What the child reported: its checks, facts, and the step it was in when it ended or was stopped."""

    checks: list[Check] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    step: str = ""
    stopped: bool = False
    exit_code: int | None = None
    stderr_tail: str = ""
    heard: float = field(default_factory=time.monotonic)  # when the child last reported anything


def _read(stream: Any, outcome: Outcome, listen: Emit | None) -> None:
    for raw in stream:
        try:
            kind, value = json.loads(raw)
        except (ValueError, TypeError):
            continue
        outcome.heard = time.monotonic()
        if kind == "check":
            outcome.checks.append(Check(**value))
        elif kind == "facts":
            outcome.facts |= value
        elif kind == "step":
            outcome.step = value
        elif listen is not None:
            listen(kind, value)


def _wait(proc: subprocess.Popen[str], deadline: float, outcome: Outcome, idle: float | None) -> int | None:
    """The child's exit code, or None once the deadline passed or the child was silent for `idle` seconds."""
    while True:
        left = deadline - time.monotonic()
        try:
            return proc.wait(max(0.0, min(left, 1.0) if idle else left))
        except subprocess.TimeoutExpired:
            if left <= 1.0 or not idle or time.monotonic() - outcome.heard > idle:
                return None


def reap(proc: subprocess.Popen[str]) -> None:
    """Wait for a killed child. A Ctrl-C that lands inside `Popen.wait` just after it took its waitpid lock
    leaves that lock held (CPython's race), and a plain `wait()` would then block forever: bypass it."""
    try:
        proc.wait(REAP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, 0)


def run(
    target: str,
    args: Mapping[str, Any],
    timeout: float,
    env: Mapping[str, str],
    *,
    listen: Emit | None = None,
    idle: float | None = None,
) -> Outcome:
    """Run `target` ("module:function") in a child given `env`; kill it `timeout` seconds from now, or when it
    has reported nothing for `idle` seconds. Lines other than checks, facts and steps go to `listen`."""
    deadline = time.monotonic() + timeout
    outcome = Outcome()
    payload = json.dumps({"target": target, "args": dict(args), "deadline_s": max(0.1, timeout - KILL_GRACE_S)})
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mhsft.process.isolated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=dict(env),
            start_new_session=True,
            text=True,
        )
        reader = threading.Thread(target=_read, args=(proc.stdout, outcome, listen), daemon=True)
        reader.start()
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(payload)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            outcome.exit_code = _wait(proc, deadline, outcome, idle)
        finally:  # at the deadline, and when mhsft itself is interrupted (Ctrl-C): the child goes too
            if outcome.exit_code is None:
                outcome.stopped = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                reap(proc)
        reader.join(1.0)
        errors.seek(0, os.SEEK_END)
        errors.seek(max(0, errors.tell() - 400))
        lines = errors.read().decode("utf-8", errors="replace").strip().splitlines()
        outcome.stderr_tail = lines[-1] if lines else ""
    return outcome


def failure(name: str, outcome: Outcome, timeout: float, what: str, fix: str) -> Check | None:
    """The check to report when the child was stopped or died before its last check (None when it finished)."""
    if outcome.stopped:
        during = f" during {outcome.step}" if outcome.step else ""
        return Check(name, FAIL, f"{what} gave no complete answer within {timeout:g} s{during} (stalled)", fix)
    if outcome.exit_code:
        detail = f": {outcome.stderr_tail}" if outcome.stderr_tail else ""
        return Check(name, FAIL, f"the check process for {what} exited with code {outcome.exit_code}{detail}", fix)
    return None


def main() -> None:
    """Child side: read the payload, keep stdout for the protocol, send everything else to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # SDK banners and logs go to the scratch file, never into the protocol
    request = json.load(sys.stdin)
    signal.alarm(math.ceil(request["deadline_s"]) + 2)  # ends the child even if mhsft died before killing it
    lock = threading.Lock()

    def emit(kind: str, value: Any) -> None:
        with lock:
            protocol.write(json.dumps([kind, value]) + "\n")

    module, _, function = request["target"].partition(":")
    fn = getattr(importlib.import_module(module), function)
    try:
        fn(request["args"] | {"deadline": time.monotonic() + request["deadline_s"]}, emit)
    except Exception as exc:  # a crashing check is a failed check, not a traceback
        emit("check", {"name": "check", "status": FAIL, "detail": f"check crashed: {type(exc).__name__}: {exc}"})
    protocol.flush()


if __name__ == "__main__":
    main()
