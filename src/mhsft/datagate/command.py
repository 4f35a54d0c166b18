"""`mhsft data check` and the gate step of `mhsft train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from mhsft import ui
from mhsft.datagate.gate import check, enforce
from mhsft.datagate.report import render
from mhsft.environment import Environment
from mhsft.launch import ensure_inputs, environment_for, load_recipe
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import train_plan


def gate(
    recipe: Recipe,
    environment: Environment,
    cwd: Path,
    *,
    as_json: bool = False,
    out: IO[str] | None = None,
    launch_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the gate, show its report (table or JSON; the table to `out` if given), stop with exit 4 over budget.

    Steps per epoch are counted for `launch_env` (default: the recipe's [launch])."""
    report = check(recipe, environment, cwd, launch_env)
    if as_json:
        ui.echo(json.dumps(report, indent=2))
    else:
        source = "cached result" if report["cache_hit"] else "ms-swift's preprocessing"
        render(report, f"data check of {recipe.name} ({source}, {report['elapsed_s']:.1f} s)", out)
    enforce(report, recipe)
    return report


def data_check(ref: str, overrides: list[str], env_file: Path | None, as_json: bool) -> int:
    """Everything `mhsft data check` does; returns the exit code (problems raise MhsftError)."""
    cwd = Path.cwd()
    environment = environment_for(env_file)
    recipe = load_recipe(ref, overrides, environment)
    ensure_inputs(train_plan(recipe, environment, cwd))
    gate(recipe, environment, cwd, as_json=as_json)
    return 0
