"""The flow shared by every command that starts swift: environment, recipe, plan, run, record."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mhsft import ui
from mhsft.environment import Environment, load_environment
from mhsft.errors import USAGE, MhsftError
from mhsft.recipe.load import load
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import Plan
from mhsft.recipe.validate import validate

if TYPE_CHECKING:
    from mhsft.runs.records import RunRecord


def environment_for(env_file: Path | None) -> Environment:
    """Load `.env` under the real environment and register its secrets for redaction."""
    environment = load_environment(env_file)
    ui.hide(environment.secrets.values())
    return environment


def load_recipe(ref: str, overrides: list[str], environment: Environment) -> Recipe:
    """Load and validate a recipe, printing its translation warnings."""
    recipe = validate(load(ref, environment, overrides))
    for warning in recipe.warnings:
        ui.warn(warning)
    return recipe


def ensure_inputs(plan: Plan) -> None:
    """Refuse to start when a local input (model folder, dataset file, adapters) does not exist."""
    missing = plan.missing_inputs()
    if missing:
        raise MhsftError(
            f"local input {missing[0]} does not exist. Fix the path in the recipe (relative paths are taken from "
            "the current directory) or create the file before starting."
        )


def show(plan: Plan, dry_run: bool) -> bool:
    """Print the plan; on a dry run also the command, and return True (nothing more to do)."""
    if not dry_run:
        ensure_inputs(plan)
    ui.pairs(plan.summary)
    if dry_run:
        for path in plan.missing_inputs():
            ui.warn(f"{path} does not exist; swift would fail on it.")
        ui.echo(plan.shell_line())
    return dry_run


def execute(
    plan: Plan,
    environment: Environment,
    recipe: Recipe | None = None,
    *,
    log: IO[str] | None = None,
    watch: Callable[[int], None] | None = None,
    redact_output: bool = False,
    after: Callable[[RunRecord], None] | None = None,
    **record_fields: Any,
) -> int:
    """Run a plan's swift command to the end, recording it under .mhsft/runs/; return the exit code.

    `watch(pid)` runs once the child has started (deploy's readiness wait); `redact_output` passes the
    child's output through mhsft's redaction (for commands whose arguments swift itself logs); `after(record)`
    runs once the record holds the outcome (the end-of-training summary of `mhsft train`).
    """
    from mhsft.process import runner
    from mhsft.runs.records import finish, new_record, version_dirs

    cwd = Path.cwd()
    argv = [runner.executable(plan.argv[0]), *plan.argv[1:]]
    before = set(version_dirs(plan.output_dir)) if plan.output_dir else set()
    record = new_record(plan, environment, cwd, recipe, **record_fields)
    record.save()
    ui.info(f"run {record.id}: starting swift {plan.command} (record: {record.path.relative_to(cwd)})")
    started = time.monotonic()

    def on_start(pid: int) -> None:
        record.pid = pid
        record.try_save()
        if watch:
            watch(pid)

    try:
        outcome = runner.run(
            argv,
            plan.child_env(environment),
            log=log,
            on_start=on_start,
            filter_output=ui.clean if redact_output else None,
        )
    except (OSError, ValueError) as exc:  # the program could not be started at all
        finish(record, runner.Outcome(USAGE), started, time.monotonic(), before)
        raise MhsftError(
            f"could not start {argv[0]}: {exc}. Check that ms-swift is installed in this "
            "environment (pip install ms-swift)."
        ) from None
    finish(record, outcome, started, time.monotonic(), before)
    if after:
        after(record)
    where = f", output {record.run_dir}" if record.run_dir else ""
    ui.info(  # the last line, so that scripts can tell swift's exit codes from mhsft's own
        f"run {record.id}: {record.status} (swift exit {outcome.exit_code}) after {record.duration_s:.1f} s{where}; "
        f"record {record.path.relative_to(cwd)}"
    )
    return outcome.exit_code
