"""`mhsft train`: recipe -> validated plan -> SwanLab preflight -> `swift sft`, recorded; and `--resume`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe, show
from mhsft.plan import Plan, train_plan
from mhsft.schema import Recipe

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


def run_preflight(recipe: Recipe, environment: Environment, timeout: float, plan: Plan | None = None) -> None:
    """The SwanLab checks, and the login to each hub whose token swift gets, that must pass before swift
    starts (exit 3 otherwise); both run at once, each within `timeout`."""
    from mhsft.hub_check import Logins
    from mhsft.swanlab_check import preflight

    plan = plan or train_plan(recipe, environment, Path.cwd())
    logins = Logins(plan.hubs, environment, timeout)
    ui.info(preflight(recipe, environment, timeout))
    hubs_line = logins.outcome()
    if hubs_line:
        ui.info(hubs_line)


def train(
    ref: str,
    overrides: list[str],
    env_file: Path | None,
    *,
    dry_run: bool = False,
    check: bool = True,
    timeout: float = 5.0,
    resume: bool = False,
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
    if show(plan, dry_run):
        return 0
    from mhsft.launch import execute
    from mhsft.runner import executable

    executable(plan.argv[0])
    if check:
        run_preflight(recipe, environment, timeout, plan)
    else:
        ui.warn(
            "--no-preflight: SwanLab and the hub login are not checked; a bad key or an unreachable server will "
            "only show up after the model has loaded."
        )
    return execute(
        plan,
        environment,
        recipe,
        log=log,
        swanlab_run_id=run_id,
        resumed_from=str(resume_from) if resume_from else None,
    )
