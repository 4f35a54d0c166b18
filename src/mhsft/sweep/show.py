"""`mhsft sweep show [ID]`: the trials in one table sorted by the metric (with the `mhsft eval` scores of those
evaluated), the best marked, every trial's eval-loss curve in one plot, and the next command for the best trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.runs.records import RunRecord
from mhsft.sweep import store, trials
from mhsft.sweep.space import number_text, short

SCHEMA_VERSION = 1
MARKERS = "0123456789abcdefghijklmnopqrstuvwxyz"  # trial N is drawn with MARKERS[N % 36]
LOSSES = ("train_loss", "eval_loss")
SPEEDS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")  # not scores


def rows(sweep: store.Sweep, cwd: Path) -> list[dict[str, Any]]:
    """One dict per trial, sorted by the metric (trials without one last), the best first."""
    found = trials.records(cwd, sweep.id)
    out = []
    for trial in sweep.trials:
        record = found.get(trial.number)
        logged = trials.logged(record)
        metrics = {k: v for k, v in logged.metrics.items() if k in LOSSES or k.startswith("eval_")}
        out.append(
            {
                "trial": trial.number,
                "name": trial.name,
                "values": trial.values,
                "status": record.shown_status if record else "not started",
                "run": record.id if record else None,
                "duration_s": record.duration_s if record else None,
                "metric": trials.metric(record, sweep.metric),
                "metrics": metrics,
                "scores": scores(record),
                "eval_curve": logged.eval,
                "train_curve": logged.train,
            }
        )
    sign = 1 if sweep.direction == "minimize" else -1
    out.sort(key=lambda r: (r["metric"] is None, sign * (r["metric"] or 0.0), r["trial"]))
    for row in out:
        row["best"] = row is out[0] and row["metric"] is not None
    return out


def scores(record: RunRecord | None) -> dict[str, float]:
    """The fine-tuned scores `mhsft eval` recorded for a trial's run (`extra.eval`), by benchmark."""
    found = (record.extra.get("eval") or {}).get("benchmarks", []) if record else []
    return {row["benchmark"]: row["finetuned"] for row in found if row.get("finetuned") is not None}


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cells(row: dict[str, Any], keys: list[str], extra: list[str], benchmarks: list[str]) -> list[str]:
    duration = f"{row['duration_s']:.0f} s" if row["duration_s"] is not None else "-"
    metrics = [_figure(row["metrics"].get(k)) for k in [*LOSSES, *extra]]
    metrics += [_figure(row["scores"].get(k)) for k in benchmarks]
    values = [number_text(row["values"][k]) if k in row["values"] else "-" for k in keys]
    return [
        "best" if row["best"] else "",
        str(row["trial"]),
        *values,
        row["status"],
        duration,
        *metrics,
        row["run"] or "-",
    ]


def show(cwd: Path, sweep_id: str | None, as_json: bool = False) -> int:
    """Print the sweep's table (or JSON), its curves and the next command."""
    sweep = store.load(cwd, sweep_id)
    if sweep.jobs and sweep.status == "queued":
        from mhsft.sweep.array import active

        if not active(sweep):  # the array has ended: what its trials' records say
            sweep.status = "interrupted" if trials.missing(sweep, cwd) else "finished"
    found = rows(sweep, cwd)
    if as_json:
        doc = {"schema_version": SCHEMA_VERSION, "id": sweep.id, "metric": sweep.metric}
        doc |= {"direction": sweep.direction, "status": sweep.status, "planned": sweep.planned, "trials": found}
        ui.echo(json.dumps(doc, indent=2))
        return 0
    keys = list(dict.fromkeys(k for t in sweep.trials for k in t.values))
    extra = sorted({k for r in found for k in r["metrics"] if k not in LOSSES} - set(SPEEDS))
    benchmarks = list(dict.fromkeys(k for r in found for k in r["scores"]))
    columns = ["", "trial", *(short(k) for k in keys), "status", "duration", *LOSSES, *extra]
    columns += [*(f"eval {k}" for k in benchmarks), "run"]
    title = (
        f"sweep {sweep.id}: {sweep.method}, {len(sweep.trials)} of {sweep.planned} trial(s), {sweep.status}; "
        f"sorted by {sweep.metric} ({sweep.direction})"
    )
    styles = {"succeeded": "green", "failed": "bold red", "interrupted": "yellow", "best": "bold green"}
    fit = ui.Fit(
        priority=(
            "trial", "status", "", sweep.metric, *(short(k) for k in keys), *LOSSES,
            *(f"eval {k}" for k in benchmarks), "run", "duration",
        ),
        keep=2,
        whole=frozenset({"trial", "status", "run"}),
    )  # fmt: skip
    ui.table(title, columns, [_cells(r, keys, extra, benchmarks) for r in found], styles, fit, "--json")
    from mhsft.view.curve import draw_many

    kind = "eval loss" if any(r["eval_curve"] for r in found) else "train loss"
    series = {MARKERS[r["trial"] % len(MARKERS)]: r["eval_curve"] or r["train_curve"] for r in found}
    plot = draw_many(series, f"{kind} of each trial (marker: trial number)")
    if plot:
        ui.echo(plot)
    best = next((r for r in found if r["best"]), None)
    if best:
        ui.info(
            f"best: trial {best['trial']} {best['name']} ({sweep.metric} {best['metric']:.4g}). Next: "
            f"mhsft infer --run {best['run']}  |  mhsft export --run {best['run']} --merge-lora  |  "
            f"mhsft runs show {best['run']}"
        )
    incomplete = len(sweep.trials) < sweep.planned or trials.missing(sweep, cwd)
    if sweep.status not in ("running", "queued") and incomplete:
        ui.info(f"to run what is missing: mhsft sweep resume {sweep.id}")
    return 0
