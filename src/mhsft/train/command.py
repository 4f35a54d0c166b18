"""`mhsft train`: recipe -> validated plan -> SwanLab preflight -> `swift sft`, recorded; and `--resume`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe, show
from mhsft.recipe.plan import CACHED_REPLACES, train_plan
from mhsft.train.before_start import GATE_LINE, checks_before_start, multi_node, new_swanlab_run_id

if TYPE_CHECKING:
    from mhsft.environment import Environment
    from mhsft.recipe.model import Recipe
    from mhsft.runs.records import RunRecord


def resume_point(output_dir: Path, cwd: Path) -> tuple[Path, str | None]:
    """The newest checkpoint under `output_dir` and the SwanLab run id of the recorded run that wrote it."""
    from mhsft.runs import checkpoints
    from mhsft.runs.store import load_all

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
    evaluate: Callable[[Recipe, Environment], Callable[[RunRecord], None]] | None = None,
) -> int:
    """Everything `mhsft train` does; returns the exit code. `log` takes swift's output instead of the terminal;
    `evaluate(recipe, environment)` gives what runs after a training for `[eval] after_train` (`mhsft eval`'s)."""
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
    from mhsft.process.runner import executable

    executable(plan.argv[0])
    found, report = checks_before_start(
        plan, recipe, environment, check=check, timeout=timeout, data_check=data_check, log=log
    )
    cached, extra = gate_extra(report, recipe) if report is not None else (None, {})
    extra["datasets"] = {k: v for k, v in recipe.args["sft"].items() if k in CACHED_REPLACES}  # as in the recipe
    extra |= {"overrides": list(overrides)} if overrides else {}
    return start_run(
        recipe,
        environment,
        cwd,
        run_id=run_id,
        found=found,
        cached=cached,
        extra=extra,
        log=log,
        resume_from=resume_from,
        evaluate=evaluate,
    )


def gate_extra(report: dict[str, Any], recipe: Recipe) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run trains from after the dataset gate (its cached dataset) and what its record keeps of it."""
    from mhsft.datagate.gate import training_args
    from mhsft.datagate.report import summary

    extra = {"data_check": summary(report)}
    extra["datasets"] = {k: v for k, v in recipe.args["sft"].items() if k in CACHED_REPLACES}  # as in the recipe
    return training_args(report), extra


def start_run(
    recipe: Recipe,
    environment: Environment,
    cwd: Path,
    *,
    run_id: str,
    found: dict[str, str],
    cached: dict[str, Any] | None,
    extra: dict[str, Any],
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    resume_from: Path | None = None,
    evaluate: Callable[[Recipe, Environment], Callable[[RunRecord], None]] | None = None,
) -> int:
    """Start `swift sft` for a checked recipe in its own vN folder and record it (`found`: what the preflight
    found; `cached`: the gate's dataset; `env`: variables on top of the plan's); returns swift's exit code."""
    from mhsft.launch import execute
    from mhsft.runs.records import reserve_version_dir
    from mhsft.view.links import for_record
    from mhsft.view.summary import after_train

    extra = extra | for_record(recipe, environment, found, run_id)
    plan = train_plan(recipe, environment, cwd, run_id=run_id, resume_from=resume_from)
    run_dir = None  # multi-node: the record names the folder swift created (see runs.finish)
    if recipe.args["sft"].get("add_version") is False:
        run_dir = plan.output_dir  # swift writes into output_dir itself
    elif not multi_node(plan.child_env(environment)):  # mhsft picks the vN folder: overlapping runs never share one
        run_dir = reserve_version_dir(plan.output_dir)  # type: ignore[arg-type]
    plan = train_plan(recipe, environment, cwd, run_id=run_id, resume_from=resume_from, cached=cached, run_dir=run_dir)
    if env:
        plan = replace(plan, env=plan.env | env)
    after = after_train if log is None else None
    if recipe.eval_after_train and after is not None and evaluate is not None:
        evaluate_after = evaluate(recipe, environment)
        after = lambda record: (after_train(record), evaluate_after(record))  # noqa: E731
    return execute(
        plan,
        environment,
        recipe,
        log=log,
        after=after,
        swanlab_run_id=run_id,
        resumed_from=str(resume_from) if resume_from else None,
        extra=extra,
        run_dir=str(run_dir) if run_dir else None,
    )
