"""Finding checkpoints in swift's output layout: output_dir/vN-YYYYMMDD-HHMMSS/checkpoint-STEP."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mhsft.errors import MhsftError
from mhsft.paths import absolute
from mhsft.runs import status, store
from mhsft.runs.records import RunRecord, version_dirs

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
SELECTORS = ("latest", "best")


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete `checkpoint-STEP` folders of one versioned run folder, by step.

    A checkpoint is complete once `trainer_state.json` is written; a run interrupted while saving leaves a folder
    without it, which must not be resumed from or loaded.
    """
    if not os.path.isdir(run_dir):  # also False for a recorded path that cannot exist (NUL, too long)
        return []
    found = [
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def latest(run_dir: Path) -> Path | None:
    """The `last-checkpoint` link's target if present, else the highest checkpoint-STEP."""
    link = run_dir / "last-checkpoint"
    if os.path.isfile(link / "trainer_state.json"):
        return link.resolve()
    found = checkpoints(run_dir)
    return found[-1] if found else None


def _json_field(path: Path, key: str, last_line: bool = False) -> str | None:
    """A string field of a JSON object file (or of its last line, read from the file's end), or None."""
    try:
        text = _tail(path) if last_line else path.read_text(encoding="utf-8").strip()
        data = json.loads(text.splitlines()[-1] if last_line else text) if text else None
    except (OSError, ValueError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _tail(path: Path, size: int = 1 << 16) -> str:
    """The end of a text file (its last `size` bytes, whitespace stripped): a long log is not read whole."""
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode("utf-8", errors="replace").strip()


def best(run_dir: Path) -> Path | None:
    """`best_model_checkpoint` from the newest trainer_state.json, else logging.jsonl's last line (if it exists)."""
    newest = latest(run_dir)
    value = (_json_field(newest / "trainer_state.json", "best_model_checkpoint") if newest else None) or _json_field(
        run_dir / "logging.jsonl", "best_model_checkpoint", last_line=True
    )
    return Path(value) if value and os.path.isdir(value) else None


def newest_with_checkpoint(output_dir: Path) -> Path | None:
    """The newest vN folder (by N) that holds a checkpoint; a failed run's empty folder is passed over."""
    return next((d for d in reversed(version_dirs(output_dir)) if latest(d)), None)


def run_dir_of(record: RunRecord) -> Path | None:
    """A training run's own vN folder, if it still exists; never another run's. Only while a local multi-node
    run is going (swift's rank 0 picks its folder, recorded at the end) is it the newest in its output_dir."""
    if record.command != "sft":
        return None
    if record.run_dir:
        return Path(record.run_dir) if os.path.isdir(record.run_dir) else None
    if record.status == status.RUNNING and record.slurm is None and record.output_dir:
        dirs = version_dirs(Path(record.output_dir))
        return dirs[-1] if dirs else None
    return None


def own_folder(record: RunRecord, selector: str) -> Path:
    """`run_dir_of`, or an error saying why the run has no folder to take a checkpoint from."""
    found = run_dir_of(record)
    if found is not None:
        return found
    if record.run_dir:
        why = f"run {record.id}'s folder {record.run_dir} is gone (moved or deleted)"
        fix = "Put the folder back, or pass --checkpoint PATH."
    else:
        why = (
            f"run {record.id} has no output folder (it was cancelled before it started, or swift stopped before "
            "creating one)"
        )
        fix = "Pass --checkpoint PATH, or --run with another run (`mhsft runs` lists them)."
    raise MhsftError(
        f"--checkpoint {selector}: {why}, so it has no checkpoint to use; mhsft never takes another run's. {fix}"
    )


def successful_training(record: RunRecord) -> bool:
    """A training run (`mhsft train` or `mhsft submit`, never a rehearsal) that succeeded."""
    return record.command == "sft" and record.status == status.SUCCEEDED and not record.extra.get("rehearsal")


def last_training(cwd: Path) -> RunRecord | None:
    """The newest successful training recorded in `cwd`.

    An unreadable training record newer than that one is an error: mhsft does not fall back to an older run.
    """
    return store.newest(cwd, successful_training, strict=True)


def pick(run_dir: Path, selector: str) -> Path | None:
    return latest(run_dir) if selector == "latest" else best(run_dir)


def resolve(selector: str, cwd: Path, record: RunRecord | None = None, output_dir: Path | None = None) -> Path:
    """A checkpoint folder from `--checkpoint PATH|latest|best` and where to look.

    With `record` (from --run) its run folder; with `output_dir` (a recipe's) the newest vN folder in it;
    else the last successful training run recorded in `cwd`.
    """
    if selector not in SELECTORS:
        path = Path(absolute(selector, cwd))
        if not os.path.isdir(path):
            raise MhsftError(
                f"--checkpoint {selector}: no such folder. Give a checkpoint folder "
                "(output_dir/vN-.../checkpoint-STEP), `latest` or `best`."
            )
        return path.resolve()
    if record is None and output_dir is not None:
        run_dir, searched = newest_with_checkpoint(output_dir), f"the recipe's output_dir {output_dir}"
    else:
        record = record or last_training(cwd)
        if record is None:
            raise MhsftError(
                f"no successful `mhsft train` run is recorded in {cwd / '.mhsft' / 'runs'}, so there "
                "is no checkpoint to use. Train first, give a recipe, or pass --checkpoint PATH."
            )
        run_dir = own_folder(record, selector)
        searched = f"run {record.id} ({run_dir})"
    checkpoint = pick(run_dir, selector) if run_dir else None
    if checkpoint is None:
        what = (
            "no best_model_checkpoint is recorded (it needs an eval set)"
            if selector == "best" and run_dir
            else "no checkpoint-STEP folder was found"
        )
        raise MhsftError(
            f"--checkpoint {selector}: {what} in {searched}. Pass --checkpoint PATH, or train "
            "until a checkpoint is saved."
        )
    return checkpoint
