"""`mhsft runs`: each recorded run with its newest checkpoint, one line a run at the terminal's width."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mhsft import ui
from mhsft.runs import checkpoints, status
from mhsft.runs.records import RunRecord
from mhsft.runs.store import latest


def slurm_cell(record: RunRecord) -> str:
    """`job 12 on n[1-2]` for a Slurm run, `-` for a local one."""
    slurm = record.slurm
    if slurm is None or not slurm.job_id:
        return "-"
    cell = f"job {slurm.job_id}" + (f" on {slurm.nodes}" if slurm.nodes else f" ({slurm.nodes_requested} nodes)")
    cause = record.extra.get("node_check")
    return f"{cell}; {cause.split('. Fix:')[0]}" if isinstance(cause, str) else cell


def rows(cwd: Path, limit: int) -> list[list[str]]:
    """id, command, recipe, status, Slurm job, start, duration, output folder, checkpoint (newest first)."""
    out = []
    for record in latest(cwd, limit):
        run_dir = checkpoints.run_dir_of(record)
        checkpoint = checkpoints.latest(run_dir) if run_dir else record.checkpoint
        duration = f"{record.duration_s:.0f} s" if record.duration_s is not None else "-"
        started = record.started_at.replace("T", " ")[:19]
        output = str(run_dir or record.run_dir or record.output_dir or "-")
        out.append(
            [
                record.id,
                record.command,
                record.recipe_name or "-",
                record.shown_status,
                slurm_cell(record),
                started,
                duration,
                output,
                str(checkpoint or "-"),
            ]
        )
    return out


COLUMNS = ["id", "command", "recipe", "status", "slurm", "started", "duration", "output", "checkpoint"]
FIT = ui.Fit(
    priority=("id", "status", "recipe", "started", "duration", "checkpoint", "command", "output", "slurm"),
    keep=2,
    whole=frozenset({"id", "status", "started"}),
    tails=frozenset({"output", "checkpoint"}),
)
STYLES = {status.SUCCEEDED: "green", status.FAILED: "bold red", status.INTERRUPTED: "yellow"}
STYLES |= {status.CANCELLED: "yellow", status.QUEUED: "cyan", status.RUNNING: "cyan", status.ABANDONED: "red"}
SCHEMA_VERSION = 1
WIDE = 100_000  # `--wide`: a width no row reaches


def print_runs(cwd: Path, limit: int, wide: bool = False, as_json: bool = False) -> None:
    """The table (one line a run unless `wide`), or the same as JSON; where the runs are when `cwd` has none."""
    found = rows(cwd, limit)
    if as_json:
        ui.echo(
            json.dumps({"schema_version": SCHEMA_VERSION, "runs": [dict(zip(COLUMNS, r, strict=True)) for r in found]})
        )
        return
    if not found:
        where = "; ".join(f"{name}/ holds {n} (cd {name} && mhsft runs)" for name, n in recorded_below(cwd))
        ui.info(
            "no runs recorded in .mhsft/runs/ yet (mhsft train RECIPE records one; runs are recorded in the folder "
            f"they ran in{': ' + where if where else ''})."
        )
        return
    ui.table(None, COLUMNS, found, STYLES, replace(FIT, width=WIDE) if wide else FIT)


def recorded_below(cwd: Path) -> list[tuple[str, int]]:
    """(folder, runs) for the folders just below `cwd` that hold recorded runs (`mhsft selftest` records its runs
    in its own folder), to say where they are when `cwd` has none."""
    found = []
    for runs in sorted(cwd.glob("*/.mhsft/runs")):
        count = sum(1 for _ in runs.glob("*.json"))
        if count:
            found.append((runs.parent.parent.name, count))
    return found
