"""The record store: the records in `.mhsft/runs/`, read defensively; which run a command means; locked updates.

A lookup by id reads only the files whose names match (a record's file name is its id, and an id starts with
its start time), the newest are found by name, so both stay fast with thousands of records; only `load_all`
reads them all.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.runs import status
from mhsft.runs.records import RUNS_DIR, BadRecord, RunRecord, read_record

_STAMP = len("20260101-000000")  # the start second an id begins with
_LOCK = ".lock"  # in RUNS_DIR: held while a record is re-read, changed and written back
_reported: set[Path] = set()


def ids(cwd: Path) -> list[str]:
    """The ids of the record files in `cwd`, oldest first (by id), reading only runs that started in the same
    second: an id names its start to the second, so only their recorded start can order them."""
    try:
        names = os.listdir(cwd / RUNS_DIR)
    except OSError:  # no folder yet, or not a folder
        return []
    found = sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))
    ordered = []
    for _, same_second in itertools.groupby(found, key=lambda run_id: run_id[:_STAMP]):
        group = list(same_second)
        ordered += sorted(group, key=lambda run_id: _started(cwd, run_id)) if len(group) > 1 else group
    return ordered


def _started(cwd: Path, run_id: str) -> str:
    """A record's start time ("" for an unreadable one)."""
    record = read(cwd, run_id)
    return record.started_at if isinstance(record, RunRecord) else ""


def read(cwd: Path, run_id: str) -> RunRecord | BadRecord:
    """Record `run_id`, or why its file is not a usable record."""
    path = cwd / RUNS_DIR / f"{run_id}.json"
    try:
        return read_record(path)
    except ValueError as exc:
        return BadRecord(path, str(exc))


def scan(cwd: Path) -> tuple[list[RunRecord], list[BadRecord]]:
    """The records in `cwd` (oldest first) and the files there that are not usable records."""
    records, bad = [], []
    for run_id in ids(cwd):
        found = read(cwd, run_id)
        (bad if isinstance(found, BadRecord) else records).append(found)
    return sorted(records, key=lambda r: r.started_at), bad  # type: ignore[arg-type, return-value]


def report(bad: list[BadRecord]) -> None:
    """Warn about each unusable record once per process."""
    for b in bad:
        if b.path not in _reported:
            _reported.add(b.path)
            ui.warn(f"run record {b.path} cannot be read ({b.reason}); it is left out. Fix or delete that file.")


def live(records: list[RunRecord]) -> list[RunRecord]:
    """The records with the state of each queued or running Slurm run refreshed from Slurm (lazily imported)."""
    if not any(r.status in status.ACTIVE and r.slurm is not None for r in records):
        return records
    from mhsft.runs.slurm_state import refresh

    return refresh(records)


def load_all(cwd: Path) -> list[RunRecord]:
    """Every readable record in `cwd`, oldest first; each unreadable one is reported (once), never dropped silently.

    A Slurm run's state is refreshed from Slurm whenever it is read.
    """
    records, bad = scan(cwd)
    report(bad)
    return live(records)


def latest(cwd: Path, limit: int) -> list[RunRecord]:
    """The newest `limit` readable records (by id), newest first, reading no more files than that takes; the
    unreadable ones met on the way are reported. Slurm states are refreshed."""
    found = []
    for run_id in reversed(ids(cwd)):
        if len(found) == limit:
            break
        record = read(cwd, run_id)
        if isinstance(record, BadRecord):
            report([record])
        else:
            found.append(record)
    return live(found)


def matches(cwd: Path, ref: str) -> list[str]:
    """The ids that `ref` names: itself if it is one, else those it is a prefix of."""
    known = ids(cwd)
    return [ref] if ref in known else [i for i in known if i.startswith(ref)]


def find(cwd: Path, ref: str, label: str | None = None) -> RunRecord:
    """The record with id (or unique id prefix) `ref`, Slurm state refreshed; an unreadable one is an error.

    `label` names the reference in errors (default `run REF`; `--run REF` for an option).
    """
    label = label or f"run {ref}"
    found = matches(cwd, ref)
    if len(found) > 1:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise MhsftError(f"{label}: matches several runs ({shown}); give more of the id. `mhsft runs` lists them.")
    if not found:
        known = ids(cwd)
        close = difflib.get_close_matches(ref, known, n=3, cutoff=0.4) or known[-3:]
        closest = f" Closest: {', '.join(close)}; `mhsft runs` lists them." if close else " No run is recorded yet."
        raise MhsftError(f"{label}: matches no run (it is not recorded in {cwd / RUNS_DIR}).{closest}")
    record = read(cwd, found[0])
    if isinstance(record, BadRecord):
        report([record])
        raise MhsftError(
            f"{label}: its record {record.path} cannot be read ({record.reason}). Fix or delete that file, or name "
            "another run."
        )
    return live([record])[0]


def newest(cwd: Path, fits: Callable[[RunRecord], bool], strict: bool = False) -> RunRecord | None:
    """The newest record (by id) that `fits`, reading newest first; unreadable ones on the way are reported.

    `strict`: an unreadable training record newer than the one found is an error (it may be the run meant, so
    mhsft does not fall back to an older one).
    """
    passed = []
    for run_id in reversed(ids(cwd)):
        record = read(cwd, run_id)
        if isinstance(record, BadRecord):
            report([record])
            passed.append(record)
        elif fits(record):
            break
    else:
        record = None
    newer = [b for b in passed if strict and "-sft-" in b.id]
    if newer:
        raise MhsftError(
            f"the training record {newer[0].path} cannot be read ({newer[0].reason}), and it may be the run to use, "
            "so mhsft does not fall back to an older one. Fix or delete that file, or pass --run ID or "
            "--checkpoint PATH."
        )
    return live([record])[0] if record is not None else None


def which_run(
    cwd: Path,
    ref: str | None,
    *,
    fits: Callable[[RunRecord], bool] = lambda _: True,
    refusal: Callable[[RunRecord], str] | None = None,
    none: str = "no runs are recorded in {folder} yet. `mhsft train RECIPE` records one.",
    strict: bool = False,
    label: str | None = None,
) -> RunRecord:
    """The run a command means: `ref` (an id or unique prefix), else the newest record that `fits`.

    A named run that does not fit is refused with `refusal(record)`; `none` (with {folder}) says that no run fits.
    """
    if ref is not None:
        record = find(cwd, ref, label)
        if refusal is not None and not fits(record):
            raise MhsftError(refusal(record))
        return record
    record = newest(cwd, fits, strict)
    if record is None:
        raise MhsftError(none.format(folder=cwd / RUNS_DIR))
    return record


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the record lock of `folder` (nothing to hold where it cannot be created: saving fails there too)."""
    try:
        lock = open(folder / _LOCK, "a")  # noqa: SIM115
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def update(path: Path, change: Callable[[RunRecord], bool]) -> RunRecord:
    """Re-read the record at `path` under the record lock, let `change` alter it, and save it if `change` says
    so (True); the record as it now is. MhsftError when it cannot be read or written."""
    with _locked(path.parent):
        try:
            record = read_record(path)
        except ValueError as exc:
            raise MhsftError(f"run record {path} cannot be read ({exc}). Fix or delete that file.") from None
        if change(record):
            record.save()
    return record
