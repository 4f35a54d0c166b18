"""`mhsft train`: recipe -> validated plan -> SwanLab preflight -> `swift sft`, recorded; and `--resume`."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import ensure_inputs, environment_for, load_recipe, show
from mhsft.plan import CACHED_REPLACES, Plan, train_plan
from mhsft.schema import Recipe

GATE_LINE = ("data check", "first (mhsft data check); swift then trains from its --cached_dataset")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_swanlab_run_id() -> str:
    """A fresh SwanLab run id (21 lowercase letters and digits, like the SDK's own)."""
    n = int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(21):
        n, r = divmod(n, 36)
        chars.append(_ID_ALPHABET[r])
    return "".join(chars)


def resume_point(output_dir: Path, cwd: Path) -> tuple[Path, str | None]:
    """The newest checkpoint under `output_dir` and the SwanLab run id of the recorded run that wrote it."""
    from mhsft import checkpoints
    from mhsft.runs import load_all

    run_dir = checkpoints.newest_with_checkpoint(output_dir)
    if run_dir is None:
        raise MhsftError(
            f"--resume: no checkpoint-STEP folder in any vN-* folder of {output_dir}. Train without "
            "--resume first, or lower [sft] save_steps so a checkpoint is saved sooner."
        )
    owner = next((r for r in reversed(load_all(cwd)) if r.command == "sft" and r.run_dir == str(run_dir)), None)
    if owner is None or not owner.swanlab_run_id:
        ui.warn(f"no mhsft run record owns {run_dir}; the resumed run gets a new SwanLab run id.")
    return checkpoints.latest(run_dir), owner.swanlab_run_id if owner else None  # type: ignore[return-value]


def multi_node(child_env: dict[str, str]) -> bool:
    """A multi-node launch (NNODES > 1): every node must use the vN folder swift's rank 0 picks and broadcasts."""
    nodes = child_env.get("NNODES", "1").strip()
    return nodes.isdigit() and int(nodes) > 1


def run_preflight(recipe: Recipe, environment: Environment, timeout: float, plan: Plan | None = None) -> dict[str, str]:
    """The SwanLab checks, and the login to each hub whose token swift gets, that must pass before swift
    starts (exit 3 otherwise); both run at once, each within `timeout`. Returns what the SwanLab checks found."""
    from mhsft.hub_check import Logins
    from mhsft.swanlab_check import checked

    plan = plan or train_plan(recipe, environment, Path.cwd())
    logins = Logins(plan.hubs, environment, timeout)
    line, found = checked(recipe, environment, timeout)
    ui.info(line)
    hubs_line = logins.outcome()
    if hubs_line:
        ui.info(hubs_line)
    return found


def checks_before_start(
    plan: Plan,
    recipe: Recipe,
    environment: Environment,
    *,
    check: bool = True,
    timeout: float = 5.0,
    data_check: bool = True,
    log: IO[str] | None = None,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Everything that must pass before swift starts, here (`mhsft train`) or on a cluster (`mhsft submit`).

    Local inputs exist, then the SwanLab preflight (unless `check` is off), then the dataset gate (unless
    `data_check` is off; shown in `log` when given); a failure raises, so nothing starts and nothing is
    queued. Returns what the preflight found (user, workspace) and the gate's report (None when skipped).
    """
    ensure_inputs(plan)
    found = run_preflight(recipe, environment, timeout, plan) if check else {}
    if not check:
        ui.warn(
            "--no-preflight: SwanLab and the hub login are not checked; a bad key or an unreachable server will "
            "only show up after the model has loaded."
        )
    if not data_check:
        ui.warn(
            "--no-data-check: the dataset is not checked; rows ms-swift cannot encode or that exceed max_length "
            "are dropped silently after the model has loaded."
        )
        return found, None
    from mhsft.datagate.command import gate

    return found, gate(recipe, environment, Path.cwd(), out=log)


def train(
    ref: str,
    overrides: list[str],
    env_file: Path | None,
    *,
    dry_run: bool = False,
    check: bool = True,
    timeout: float = 5.0,
    resume: bool = False,
    data_check: bool = True,
    log: IO[str] | None = None,
) -> int:
    """Everything `mhsft train` does; returns the exit code. `log` takes swift's output instead of the terminal."""
    cwd = Path.cwd()
    environment = environment_for(env_file)
    recipe = load_recipe(ref, overrides, environment)
    resume_from, run_id = None, None
    if resume:
        output_dir = train_plan(recipe, environment, cwd).output_dir
        resume_from, run_id = resume_point(output_dir, cwd)  # type: ignore[arg-type]
    run_id = run_id or new_swanlab_run_id()
    plan = train_plan(recipe, environment, cwd, run_id=run_id, resume_from=resume_from)
    if data_check:
        plan = replace(plan, summary=[*plan.summary, GATE_LINE])
    if show(plan, dry_run):
        return 0
    from mhsft.launch import execute
    from mhsft.runner import executable
    from mhsft.runs import reserve_version_dir
    from mhsft.view.links import for_record

    executable(plan.argv[0])
    found, report = checks_before_start(
        plan, recipe, environment, check=check, timeout=timeout, data_check=data_check, log=log
    )
    cached, extra = None, {}
    if report is not None:
        from mhsft.datagate.gate import training_args
        from mhsft.datagate.report import summary

        cached, extra = training_args(report), {"data_check": summary(report)}
        extra["datasets"] = {k: v for k, v in recipe.args["sft"].items() if k in CACHED_REPLACES}  # as in the recipe
    extra |= for_record(recipe, environment, found, run_id)
    run_dir = None  # multi-node: the record names the folder swift created (see runs.finish)
    if recipe.args["sft"].get("add_version") is False:
        run_dir = plan.output_dir  # swift writes into output_dir itself
    elif not multi_node(plan.child_env(environment)):  # mhsft picks the vN folder: overlapping runs never share one
        run_dir = reserve_version_dir(plan.output_dir)  # type: ignore[arg-type]
    plan = train_plan(recipe, environment, cwd, run_id=run_id, resume_from=resume_from, cached=cached, run_dir=run_dir)
    return execute(
        plan,
        environment,
        recipe,
        log=log,
        swanlab_run_id=run_id,
        resumed_from=str(resume_from) if resume_from else None,
        extra=extra,
        run_dir=str(run_dir) if run_dir else None,
    )
