"""One start of a Slurm run's training (a requeue starts another), agreed on by every node.

Node 0 chooses the attempt's folder (a new vN of output_dir, reserved as `mhsft train` reserves one, so that two
runs of one recipe never share a folder) and the checkpoint to resume from (the newest complete one of the run's
earlier attempts), and writes both into the run's record; the other nodes wait for that and take its word, so
that a save landing between two looks cannot make the ranks resume from different checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mhsft.errors import MhsftError
from mhsft.runs import checkpoints, store
from mhsft.runs.records import RUNS_DIR, RunRecord, read_record, reserve_version_dir, version_dirs

CHOICE_TIMEOUT_S = 120.0
POLL_S = 0.2


@dataclass(frozen=True)
class Attempt:
    """Where attempt `number` trains, and the checkpoint it resumes from (None: from the start)."""

    number: int
    run_dir: str
    resume_from: str | None


def record_path(cwd: Path, run_id: str) -> Path:
    return cwd / RUNS_DIR / f"{run_id}.json"


def resume_checkpoint(record: RunRecord, number: int, output_dir: Path) -> Path | None:
    """The newest complete checkpoint in the folders of the run's attempts before `number`."""
    slurm = record.slurm
    assert slurm is not None, "a Slurm run's record"
    earlier = sorted((int(n), d) for n, a in slurm.attempts.items() if int(n) < number and (d := a.get("run_dir")))
    folders = [Path(d) for _, d in earlier]
    if not folders:  # attempts of an mhsft that did not record them: the folders created since submission
        folders = [d for d in version_dirs(output_dir) if d.name not in set(slurm.preexisting)]
    newest = next((d for d in reversed(folders) if checkpoints.latest(d)), None)
    return checkpoints.latest(newest) if newest else None


def choose(
    cwd: Path, run_id: str, number: int, output_dir: Path, also: Callable[[RunRecord], None] | None = None
) -> Attempt:
    """Node 0: choose attempt `number`'s folder and resume point and record them (with `also`'s changes)."""
    path = record_path(cwd, run_id)
    try:
        resume = resume_checkpoint(read_record(path), number, output_dir)
    except ValueError as exc:
        raise MhsftError(f"run record {path} cannot be read ({exc}).") from None
    attempt = Attempt(number, str(reserve_version_dir(output_dir)), str(resume) if resume else None)

    def record_it(record: RunRecord) -> bool:
        record.slurm.attempts[str(number)] = {"run_dir": attempt.run_dir, "resume_from": attempt.resume_from}  # type: ignore[union-attr]
        record.slurm.restarts = number  # type: ignore[union-attr]
        record.run_dir = attempt.run_dir
        record.resumed_from = attempt.resume_from or record.resumed_from
        if also:
            also(record)
        return True

    store.update(path, record_it)
    return attempt


def chosen(cwd: Path, run_id: str, number: int, timeout: float = CHOICE_TIMEOUT_S) -> Attempt:
    """The other nodes: wait until node 0 has recorded attempt `number`, and take its choice."""
    path = record_path(cwd, run_id)
    deadline = time.monotonic() + timeout
    while True:
        try:
            slurm = read_record(path).slurm
        except ValueError:
            slurm = None
        found = slurm.attempts.get(str(number)) if slurm else None
        if found:
            return Attempt(number, str(found.get("run_dir")), found.get("resume_from"))
        if time.monotonic() > deadline:
            raise MhsftError(
                f"node 0 of run {run_id} did not record which folder and checkpoint attempt {number} uses within "
                f"{timeout:.0f} s; its log (`mhsft logs {run_id}`, lines starting `0:`) says why."
            )
        time.sleep(POLL_S)
