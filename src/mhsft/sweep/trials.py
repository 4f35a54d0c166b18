"""The trials of a sweep as its run records tell them: the newest record of each trial, its status and metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mhsft.runs import checkpoints, status
from mhsft.runs.records import RunRecord
from mhsft.runs.store import load_all
from mhsft.sweep.store import Sweep
from mhsft.view import history


def records(cwd: Path, sweep_id: str) -> dict[int, RunRecord]:
    """Trial number -> its newest run record."""
    found: dict[int, RunRecord] = {}
    for record in load_all(cwd):  # oldest first
        tag = record.extra.get("sweep")
        if isinstance(tag, dict) and tag.get("id") == sweep_id and isinstance(tag.get("trial"), int):
            found[tag["trial"]] = record
    return found


def logged(record: RunRecord | None) -> history.History:
    """What swift logged for a trial's run (nothing when it has no run folder)."""
    folder = checkpoints.run_dir_of(record) if record else None
    return history.read(folder) if folder else history.History()


def metric(record: RunRecord | None, name: str) -> float | None:
    """The trial's value of the sweep's metric: logged by a run that succeeded, else None."""
    if record is None or record.status != status.SUCCEEDED:
        return None
    value: Any = logged(record).metrics.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def missing(sweep: Sweep, cwd: Path) -> list[int]:
    """The trials without a succeeded run (never started, failed, interrupted, abandoned)."""
    done = records(cwd, sweep.id)
    return [t.number for t in sweep.trials if t.number not in done or done[t.number].shown_status != status.SUCCEEDED]
