"""What must pass before `swift sft` starts, here (`mhsft train`) or on a cluster (`mhsft submit`), and the
SwanLab run id a new training gets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mhsft import ui
from mhsft.datagate.folder import check_folders
from mhsft.environment import Environment
from mhsft.launch import ensure_inputs
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import Plan, train_plan

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


def multi_node(child_env: dict[str, str]) -> bool:
    """A multi-node launch (NNODES > 1): every node must use the vN folder swift's rank 0 picks and broadcasts."""
    nodes = child_env.get("NNODES", "1").strip()
    return nodes.isdigit() and int(nodes) > 1


def offline_checks(recipe: Recipe, environment: Environment, cwd: Path) -> Plan:
    """Every check `train` makes that needs no network, GPU or swift (`mhsft validate`, `doctor RECIPE`): the plan
    builds (no secret's value on swift's command line), local inputs exist (a dataset folder: one swift trains on
    whole), no SwanLab setting swanlab fails on."""
    from mhsft.checks import FAIL
    from mhsft.errors import MhsftError
    from mhsft.preflight.swanlab import settings_pitfalls

    plan = train_plan(recipe, environment, cwd)
    ensure_inputs(plan)
    check_folders(recipe.args["sft"], cwd)
    failed = [c for c in settings_pitfalls(environment, cwd) if c.status == FAIL]
    if failed:
        raise MhsftError(f"{failed[0].detail}. Fix: {failed[0].fix}.")
    return plan


def run_preflight(recipe: Recipe, environment: Environment, timeout: float, plan: Plan | None = None) -> dict[str, str]:
    """The SwanLab checks, and the login to each hub whose token swift gets, that must pass before swift
    starts (exit 3 otherwise); both run at once, each within `timeout`. Returns what the SwanLab checks found."""
    from mhsft.preflight.hub import Logins
    from mhsft.preflight.swanlab import checked

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
    launch_env: dict[str, str] | None = None,
    before_gate: Callable[[], None] | None = None,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Everything that must pass before swift starts, here (`mhsft train`) or on a cluster (`mhsft submit`).

    Local inputs exist (a dataset folder: one swift trains on whole), then the SwanLab preflight (unless `check`
    is off), then `before_gate` (the downloads of `mhsft submit` with offline nodes), then the dataset gate (unless
    `data_check` is off; shown in `log` when given; steps per epoch for `launch_env`, default the recipe's);
    a failure raises, so nothing starts and nothing is queued. Returns what the preflight found (user,
    workspace) and the gate's report (None when skipped).
    """
    ensure_inputs(plan)
    check_folders(recipe.args["sft"], Path.cwd())
    found = run_preflight(recipe, environment, timeout, plan) if check else {}
    if not check:
        ui.warn(
            "--no-preflight: SwanLab and the hub login are not checked; a bad key or an unreachable server will "
            "only show up after the model has loaded."
        )
    if before_gate is not None:
        before_gate()
    if not data_check:
        ui.warn(
            "--no-data-check: the dataset is not checked; rows ms-swift cannot encode or that exceed max_length "
            "are dropped silently after the model has loaded."
        )
        return found, None
    from mhsft.datagate.command import gate

    return found, gate(recipe, environment, Path.cwd(), out=log, launch_env=launch_env)
