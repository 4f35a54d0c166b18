"""The record store: every record in `.mhsft/runs/`, read defensively, and finding one by id."""

from __future__ import annotations

from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.runs.records import RUNS_DIR, BadRecord, RunRecord, read_record

_reported: set[Path] = set()


def scan(cwd: Path) -> tuple[list[RunRecord], list[BadRecord]]:
    """The records in `cwd` (oldest first) and the files there that are not usable records."""
    folder = cwd / RUNS_DIR
    records, bad = [], []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(read_record(p))
        except ValueError as exc:
            bad.append(BadRecord(p, str(exc)))
    return sorted(records, key=lambda r: r.started_at), bad


def report(bad: list[BadRecord]) -> None:
    """Warn about each unusable record once per process."""
    for b in bad:
        if b.path not in _reported:
            _reported.add(b.path)
            ui.warn(f"run record {b.path} cannot be read ({b.reason}); it is left out. Fix or delete that file.")


def load_all(cwd: Path) -> list[RunRecord]:
    """Every readable record in `cwd`, oldest first; each unreadable one is reported (once), never dropped silently.

    A Slurm run's state is refreshed from Slurm whenever it is read.
    """
    records, bad = scan(cwd)
    report(bad)
    if any(r.status in ("queued", "running") and "slurm" in r.extra for r in records):
        from mhsft.runs.slurm_state import refresh

        refresh(records)
    return records


def find(cwd: Path, run_id: str) -> RunRecord:
    """The record with id (or unique id prefix) `run_id`; an unreadable one that matches is an error, not skipped."""
    records, bad = scan(cwd)
    report(bad)
    matches = [r for r in records if r.id == run_id or r.id.startswith(run_id)]
    broken = [b for b in bad if b.id == run_id or b.id.startswith(run_id)]
    if len(matches) + len(broken) == 1 and broken:
        raise MhsftError(
            f"--run {run_id}: its record {broken[0].path} cannot be read ({broken[0].reason}). Fix or delete that "
            "file, or pass --checkpoint PATH."
        )
    if len(matches) + len(broken) != 1:
        known = ", ".join(r.id for r in records[-5:]) or "none"
        what = "matches several runs" if matches or broken else "matches no run"
        raise MhsftError(f"--run {run_id}: {what} in {cwd / RUNS_DIR} (latest: {known}). `mhsft runs` lists them.")
    return matches[0]
