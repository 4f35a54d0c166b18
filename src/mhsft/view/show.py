"""`mhsft runs show`: one run in detail (record, checkpoints and their losses, metrics, SwanLab link, curve)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.errors import INTERRUPTED
from mhsft.runs import checkpoints, status, store
from mhsft.runs.records import RunRecord
from mhsft.view import benchmarks, curve, history, links

SCHEMA_VERSION = 1
SHOWN_METRICS = ("train_loss", "last_loss", "eval_loss", "eval_token_acc", "best_metric", "train_runtime")


def record_for(cwd: Path, run_id: str | None) -> RunRecord:
    """The run `run_id` (an id or unique prefix), or the newest; an unknown id lists the closest ones."""
    return store.which_run(cwd, run_id)


def details(record: RunRecord) -> dict[str, Any]:
    """Everything `runs show` prints, as a JSON-ready dict (schema_version 1)."""
    folder = checkpoints.run_dir_of(record)
    logged = history.read(folder) if folder else history.History()
    rows = history.checkpoint_rows(folder, logged) if folder else []
    best = next((r["path"] for r in rows if r["best"]), None)
    last = next((r["path"] for r in rows if r["last"]), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "id": record.id,
        "command": record.command,
        "status": record.shown_status,
        "recipe": {"name": record.recipe_name, "path": record.recipe, "sha256": record.recipe_sha256},
        "command_line": shlex.join(record.argv),
        "env": record.env,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_s": _elapsed(record) if record.status == status.RUNNING else record.duration_s,
        "exit_code": record.exit_code,
        "output_dir": record.output_dir,
        "run_dir": str(folder) if folder else None,
        "checkpoint": record.checkpoint,
        "progress": logged.progress,
        "checkpoints": rows,
        "best_checkpoint": best,
        "last_checkpoint": last,
        "metrics": logged.metrics,
        "loss": {"train": logged.train, "eval": logged.eval},
        "swanlab": links.swanlab_of(record),
        "eval": record.extra.get("eval"),
        "node_check": record.extra.get("node_check"),  # why a Slurm run's nodes refused to start swift
        "datasets": record.extra.get("datasets"),  # as the recipe named them (swift got the gate's cache)
        "overrides": record.extra.get("overrides", []),  # the --set values of `mhsft train`
        "data_check": record.extra.get("data_check"),
        "warnings": [w for w in (logged.divergence(),) if w],
    }


def _elapsed(record: RunRecord) -> float | None:
    """Seconds since a running record started."""
    from datetime import datetime, timezone

    try:
        started = datetime.fromisoformat(record.started_at)
    except ValueError:
        return None
    return round((datetime.now(timezone.utc) - started).total_seconds(), 1)


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def swanlab_line(info: dict[str, Any] | None) -> str | None:
    """Where to see the run in SwanLab: the cloud page, or the `mhsft board` command for a local run."""
    if info is None:
        return None
    if info["mode"] == "local":
        return f"local, {info['log_dir']}: {info['board']}"
    if info["mode"] == "offline":
        return f"offline ({info['log_dir']}), {info['upload']}" + (f": {info['url']}" if info["url"] else "")
    where = f"{info['workspace'] or '<your user>'}/{info['project']}"
    return info.get("url") or f"cloud {where}, run {info['run_id']} (workspace unknown: the preflight did not run)"


def next_commands(record: RunRecord) -> list[str]:
    """What a user types after a successful training run."""
    if record.command != "sft" or record.status != status.SUCCEEDED:
        return []
    run = f" --run {record.id}"
    return [f"mhsft infer{run}", f"mhsft export --merge-lora{run}", f"mhsft deploy{run}"]


def render(info: dict[str, Any], record: RunRecord, width: int = 72) -> str:
    """The text form of `details` for a terminal."""
    shown = info["status"]
    if info["exit_code"] is not None:
        shown += f" (exit {info['exit_code']})"
    progress = info["progress"]
    if progress and shown == status.RUNNING:
        shown += f", step {progress['step']}/{progress['max_steps']}"
        if "remaining_time" in progress:
            shown += f", about {progress['remaining_time']} left"
    recipe = info["recipe"]
    pairs = [
        ("run", info["id"]),
        ("recipe", f"{recipe['name']} ({recipe['path']}, sha256 {(recipe['sha256'] or '-')[:12]})"),
        ("command", info["command_line"]),
        ("status", shown),
        ("started", info["started_at"].replace("T", " ")[:19]),
        ("duration", duration_text(info["duration_s"])),
        ("output", info["run_dir"] or info["output_dir"] or "-"),
    ]
    for key, values in (info.get("datasets") or {}).items():
        pairs.append((key.replace("_", " "), ", ".join(map(str, values)) if isinstance(values, list) else str(values)))
    if info.get("overrides"):
        pairs.append(("--set", " ".join(info["overrides"])))
    if gate := info.get("data_check"):
        pairs.append(
            (
                "data check",
                f"{gate['rows_kept']} of {gate['rows_read']} rows kept ({gate['rows_dropped']} "
                f"dropped, {gate['rows_truncated']} truncated), {gate['steps_per_epoch']} steps per epoch",
            )
        )
    if info["node_check"]:
        pairs.append(("node check", info["node_check"]))
    if info["checkpoint"]:
        pairs.append(("checkpoint", info["checkpoint"]))
    if (swanlab := swanlab_line(info["swanlab"])) is not None:
        pairs.append(("SwanLab", swanlab))
    key_width = max(len(k) for k, _ in pairs)
    lines = [f"{k.ljust(key_width)}  {v}" for k, v in pairs]
    lines += [f"warning: {w}" for w in info["warnings"]]
    if info["checkpoints"]:
        lines += ["", "checkpoints:", "  step  train loss  eval loss  path"]
        for row in info["checkpoints"]:
            marks = ", ".join(m for m in ("best", "last") if row[m])
            lines.append(
                f"  {row['step']:>4}  {_loss(row['train_loss']):>10}  {_loss(row['eval_loss']):>9}  {row['path']}"
                + (f"  ({marks})" if marks else "")
            )
    elif record.command == "sft":
        lines += ["", "checkpoints: " + ("none saved yet" if info["run_dir"] else "none found (no output folder)")]
    if shown := [f"{k}={metric_text(info['metrics'][k])}" for k in SHOWN_METRICS if k in info["metrics"]]:
        lines += ["", f"metrics: {', '.join(shown)}"]
    if info.get("eval") and (rows := info["eval"].get("benchmarks")):
        header, cells = benchmarks.table(rows)
        widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
        lines += ["", f"benchmarks (mhsft eval, {info['eval'].get('evaluated_at', '')[:19].replace('T', ' ')}):"]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *cells]
        ]
    lines = [ui.printable("\n".join(lines))]  # names and paths come from files: no raw control characters
    drawn = curve.draw(history.History(train=info["loss"]["train"], eval=info["loss"]["eval"]), width=width)
    if drawn:
        lines += ["", drawn]
    if commands := next_commands(record):
        lines += ["", "next: " + "  |  ".join(commands)]
    return "\n".join(lines)


def metric_text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def show(cwd: Path, run_id: str | None, as_json: bool, follow: bool, interval: float) -> int:
    """Print a run once, or (`follow`) again each `interval` seconds until it is no longer running."""
    import json

    record = record_for(cwd, run_id)
    if record.command == "sft" and record.status not in status.ACTIVE and checkpoints.run_dir_of(record) is None:
        ui.warn(
            f"run {record.id}: its output folder {record.run_dir or record.output_dir} does not exist (moved or "
            "deleted, or swift stopped before creating it), so there are no checkpoints or losses to show."
        )
    previous = None
    try:
        while True:
            info = details(record)
            text = json.dumps(history.json_safe(info), indent=2) if as_json else render(info, record)
            if text != previous:
                if follow and not as_json and sys.stdout.isatty():
                    sys.stdout.write("\033[2J\033[H")  # redraw in place
                ui.echo(text)
                previous = text
            if not follow or record.shown_status not in status.ACTIVE:
                return 0
            time.sleep(interval)
            record = store.find(cwd, record.id)
    except KeyboardInterrupt:
        return INTERRUPTED
