"""`mhsft runs compare`: what differs between recorded runs (swift arguments, environment) and their results."""

from __future__ import annotations

from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.runs import checkpoints
from mhsft.runs.records import RunRecord
from mhsft.view import history, links, show

IDENTITY_ENV = ("SWANLAB_RUN_ID", "SWANLAB_RUN_RESUME")  # differ for every run by design
METRICS = ("train_loss", "last_loss", "eval_loss", "best_metric", "train_runtime", "global_step")


def settings(record: RunRecord) -> dict[str, str]:
    """A run's resolved recipe as swift got it: `sft.KEY` from its command line, `env.NAME` from its variables."""
    found = {"recipe": f"{record.recipe_name} ({(record.recipe_sha256 or '-')[:12]})"}
    found |= {f"{record.command}.{k}": v for k, v in links.flags(record.argv).items()}
    found |= {f"env.{k}": v for k, v in record.env.items() if k not in IDENTITY_ENV}
    return found


def differences(records: list[RunRecord]) -> list[list[str]]:
    """Rows `key, value per run` for the keys whose values are not the same in every run ("-": not set)."""
    each = [settings(r) for r in records]
    keys = list(dict.fromkeys(k for s in each for k in s))
    return [[k, *(s.get(k, "-") for s in each)] for k in keys if len({s.get(k) for s in each}) > 1]


def results(records: list[RunRecord]) -> list[list[str]]:
    """Status, duration and the final metrics of each run, side by side."""
    logged = []
    for record in records:
        folder = checkpoints.run_dir_of(record)
        logged.append(history.read(folder).metrics if folder else {})
    rows = [
        ["status", *(r.status for r in records)],
        ["duration", *(f"{r.duration_s:.0f} s" if r.duration_s is not None else "-" for r in records)],
    ]
    for key in METRICS:
        if any(key in m for m in logged):
            rows.append([key, *(show.metric_text(m[key]) if key in m else "-" for m in logged)])
    return rows + benchmark_rows(records)


def benchmark_rows(records: list[RunRecord]) -> list[list[str]]:
    """One row per benchmark any run was scored on (`mhsft eval`): `fine-tuned (delta)` per run."""
    scored = [{r["benchmark"]: r for r in (rec.extra.get("eval") or {}).get("benchmarks", [])} for rec in records]
    names = list(dict.fromkeys(name for s in scored for name in s))

    def cell(row: dict | None) -> str:
        if row is None:
            return "-"
        delta = f" ({row['delta']:+.4f})" if row.get("delta") is not None else ""
        return f"{row['finetuned']:.4f}{delta}"

    return [[f"eval {name}", *(cell(s.get(name)) for s in scored)] for name in names]


def compare(cwd: Path, run_ids: list[str]) -> int:
    """Print the differing settings and the results of two or more runs."""
    if len(run_ids) < 2:
        raise MhsftError("runs compare needs two or more run ids (see `mhsft runs`), e.g. mhsft runs compare A B.")
    records = [show.record_for(cwd, run_id) for run_id in run_ids]
    columns = ["", *(r.id for r in records)]
    fit = ui.Fit(keep=2, tails=frozenset(columns[1:]))  # runs past the width are left out, named
    diff = differences(records)
    if diff:
        ui.table("settings that differ", columns, diff, fit=fit, options="fewer runs at a time")
    else:
        ui.echo("settings: identical (same swift arguments and environment)")
    ui.table("results", columns, results(records), fit=fit, options="fewer runs at a time")
    return 0
