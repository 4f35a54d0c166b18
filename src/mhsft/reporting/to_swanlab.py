"""`mhsft report --swanlab`: the report's Markdown logged as text to the run's own SwanLab experiment.

The swanlab SDK runs in a child process with a deadline (see `isolated`); the API key travels on its stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.preflight.swanlab import child_env, find_key
from mhsft.process import isolated
from mhsft.recipe.model import SwanlabSettings
from mhsft.runs.records import RunRecord
from mhsft.view import links

TIMEOUT_S = 120.0
KEY = "mhsft/report"


def resume(args: dict[str, Any], emit: isolated.Emit) -> Any:
    """Child side: log in (cloud) and resume the training run by id; returns the swanlab module."""
    import swanlab

    if args["mode"] == "cloud":
        emit("step", "login")
        swanlab.login(api_key=args["key"], host=args["host"], save=False)
    emit("step", "resume")
    swanlab.init(
        mode="online" if args["mode"] == "cloud" else "local",  # offline: the next `mhsft sync` uploads it
        log_dir=args.get("log_dir"),
        project=args["project"],
        workspace=args.get("workspace"),
        name=args.get("experiment"),
        id=args["run_id"],
        resume="must",
    )
    emit("step", "log")
    return swanlab


def log_text(args: dict[str, Any], emit: isolated.Emit) -> None:
    """Child side: the Markdown under `mhsft/report`."""
    swanlab = resume(args, emit)
    swanlab.log({KEY: swanlab.Text(args["markdown"], caption="mhsft report")})
    swanlab.finish()
    emit("check", {"name": "swanlab report", "status": "ok", "detail": f"logged as {KEY}"})


def send(record: RunRecord, environment: Environment, target: str, payload: dict[str, Any], option: str) -> str:
    """Run `target` (a child function that calls `resume`) for the training run's SwanLab experiment with
    `payload`; returns where the run is shown, or raises MhsftError naming `option` when that fails."""
    info = links.swanlab_of(record)
    if info is None or not record.swanlab_run_id:
        raise MhsftError(f"run {record.id} has no SwanLab run id recorded, so {option} has no experiment to log to.")
    args = {k: info.get(k) for k in ("mode", "workspace", "project", "experiment", "log_dir", "run_id")} | payload
    if info["mode"] == "cloud":
        settings = SwanlabSettings(
            info["project"], "cloud", info["experiment"], api_host=record.env.get("SWANLAB_API_HOST")
        )
        key, _, host = find_key(settings, environment, Path(record.cwd))
        if not key:
            raise MhsftError(f"{option}: no SwanLab API key (set SWANLAB_API_KEY in .env or run `swanlab login`).")
        args |= {"key": key, "host": host}
    outcome = isolated.run(target, args, TIMEOUT_S, child_env(environment))
    if not any(c.status == "ok" for c in outcome.checks):
        failed = [*outcome.checks, isolated.failure("swanlab report", outcome, TIMEOUT_S, "SwanLab", "")]
        detail = next((c.detail for c in failed if c is not None), outcome.stderr_tail)
        raise MhsftError(f"{option}: logging to SwanLab run {record.swanlab_run_id} failed ({detail}).")
    return str(info.get("url") or info.get("board"))


def log_report(record: RunRecord, environment: Environment, markdown: str) -> None:
    """Log `markdown` to the training run's SwanLab experiment; an MhsftError when that fails."""
    where = send(record, environment, "mhsft.reporting.to_swanlab:log_text", {"markdown": markdown}, "--swanlab")
    ui.info(f"SwanLab: the report is logged as text `{KEY}` of run {record.swanlab_run_id} ({where})")
