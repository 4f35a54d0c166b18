"""What `mhsft infer|deploy|export` act on: a recipe (optional), a checkpoint, and the run that made it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, execute, load_recipe, show
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import Plan
from mhsft.recipe.values import backend_name
from mhsft.runs import checkpoints, store
from mhsft.runs.records import RunRecord


@dataclass(frozen=True)
class Target:
    """The environment, the recipe if one was given, and the checkpoint to use."""

    environment: Environment
    recipe: Recipe | None
    checkpoint: Path
    record: RunRecord | None

    def defaults(self, section: str) -> dict[str, Any]:
        """The recipe's [infer]/[deploy]/[export] values (options override them)."""
        return dict(self.recipe.args[section]) if self.recipe else {}

    def run(self, plan: Plan, dry_run: bool, **execute_options: Any) -> int:
        """Show the plan; unless it is a dry run, execute it, recording this checkpoint."""
        if show(plan, dry_run):
            return 0
        return execute(plan, self.environment, self.recipe, checkpoint=str(self.checkpoint), **execute_options)


def run_recipe(record: RunRecord, environment: Environment) -> Recipe | None:
    """The run's recipe file, for its [infer]/[deploy]/[export] settings and GPU selection; None (with a warning)
    when it is gone or no longer loads."""
    if not record.recipe:
        return None
    try:
        return load_recipe(record.recipe, [], environment)
    except MhsftError as exc:
        ui.warn(f"the run's recipe cannot be loaded ({exc.message}); its settings are not used.")
        return None


def resolve_target(
    recipe_ref: str | None, overrides: list[str], env_file: Path | None, checkpoint: str, run_id: str | None
) -> Target:
    """Load the recipe (if any; else the recipe of --run or of the last training) and find the checkpoint:
    --checkpoint PATH, or latest/best of --run, of the recipe's output_dir, or of the last successful `mhsft
    train` in this directory."""
    environment = environment_for(env_file)
    if overrides and recipe_ref is None:
        raise MhsftError("--set needs a RECIPE to override; give the recipe as the first argument.")
    recipe = load_recipe(recipe_ref, overrides, environment) if recipe_ref else None
    cwd = Path.cwd()
    record = store.find(cwd, run_id, f"--run {run_id}") if run_id else None
    if recipe is None and checkpoint in checkpoints.SELECTORS:  # the run's recipe gives the defaults too
        record = record or checkpoints.last_training(cwd)
        recipe = run_recipe(record, environment) if record else None
    output_dir = None
    if recipe is not None and record is None:
        output_dir = recipe.output_dir(cwd)
    found = checkpoints.resolve(checkpoint, cwd, record, output_dir)
    return Target(environment, recipe, found, record)


def backend_option(backend: str | None, recipe_default: str | None) -> str | None:
    """The backend from --backend (with `pt` translated, noted) or the recipe."""
    if backend is None:
        return recipe_default
    name, warning = backend_name(backend, "option --backend")
    if warning:
        ui.warn(warning)
    return name
