"""Waiting on a condition itself (a file written, a port free, a process gone), never for a fixed time.

Every timeout in the tests goes through `scaled`, so one knob stretches them all on a loaded machine:
MHSFT_TEST_TIMEOUT_SCALE=3 triples each of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
SCALE = float(os.environ.get("MHSFT_TEST_TIMEOUT_SCALE", "1") or 1)


def scaled(seconds: float) -> float:
    """A timeout stretched by MHSFT_TEST_TIMEOUT_SCALE (default 1)."""
    return seconds * SCALE


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy and return that; fail the test, naming `what`, when
    `timeout` seconds (scaled) pass first."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(poll)


def ended(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie not yet reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` ends within `timeout` s (scaled)."""
    deadline = time.monotonic() + scaled(timeout)
    while not ended(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
