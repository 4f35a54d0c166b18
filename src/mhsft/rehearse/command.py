"""`mhsft train RECIPE --rehearse`: the recipe's real `swift sft`, on its longest rows, with an evaluation and a
checkpoint save within a few steps, into `<output_dir>-rehearsal`; then the verdict."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.datagate.rows import lengths as kept_lengths
from mhsft.errors import INTERRUPTED, REHEARSAL_FAILED, MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.paths import absolute
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import train_plan
from mhsft.rehearse.subset import copy_rows, longest
from mhsft.rehearse.verdict import EVALUATION, FAILED, SAVE, Verdict, full_schedule, judge, measure, project, show

SUFFIX = "-rehearsal"
STOPPED_BY = {INTERRUPTED: "Ctrl-C, SIGINT", 128 + 15: "SIGTERM", 128 + 1: "SIGHUP", 128 + 3: "SIGQUIT"}  # see runner


def away_from(recipe: Recipe, real: Path) -> Recipe:
    """The recipe with its SwanLab log folder, when it lies in the real run's output folder `real`, at the same
    place in the rehearsal's (the preflight and swanlab write there)."""
    log_dir = recipe.swanlab.log_dir
    if log_dir and (full := Path(absolute(log_dir, Path.cwd()))).is_relative_to(real):
        log_dir = str(Path(f"{real}{SUFFIX}") / full.relative_to(real))
    return replace(recipe, swanlab=replace(recipe.swanlab, log_dir=log_dir))


def rehearsal_recipe(recipe: Recipe, steps: int, run_dir: Path, has_eval: bool) -> Recipe:
    """The recipe changed only so that N steps reach an evaluation and a checkpoint save, longest rows first,
    into `run_dir`, TensorBoard's logs included (see `away_from` for SwanLab's): the real run's folder stays as is."""
    output_dir = run_dir.parent
    sft = dict(recipe.args["sft"])
    sft |= {
        "output_dir": str(output_dir),
        "logging_dir": str(run_dir / "runs"),  # TensorBoard's folder, where swift puts it by default
        "max_steps": steps,
        "save_steps": steps,
        "logging_steps": 1,
        "train_dataloader_shuffle": False,  # the derived dataset is longest first: keep that order
        "include_num_input_tokens_seen": True,
    }
    if has_eval:
        sft["eval_steps"] = steps
    env = recipe.env | {"TENSORBOARD_LOGGING_DIR": sft["logging_dir"]}  # swift lets this variable win
    swanlab = replace(recipe.swanlab, exp_name=recipe.swanlab.exp_name + SUFFIX)
    return replace(recipe, args=recipe.args | {"sft": sft}, swanlab=swanlab, env=env)


def derived_datasets(
    report: dict[str, Any], steps: int, folder: Path, sft: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The longest kept rows: N steps of the whole effective batch for training, one eval batch per step from
    the recipe's eval set. Returns the `cached` arguments of `plan.train_plan` and the rows' token lengths."""
    rows = kept_lengths(Path(report["cache_dir"]))
    s = report["steps"]
    batch = s["batch_size"] * s["processes"] * s["gradient_accumulation_steps"]
    limit, strategy = report["max_length"], report["truncation_strategy"]
    picked = longest(rows["train"] or [], steps * batch, limit, strategy)
    cached: dict[str, Any] = {"cached_dataset": [str(copy_rows(report["cached_dataset"], picked, folder / "train"))]}
    lengths = {"train": [rows["train"][i] for i in picked]}
    if report["cached_val_dataset"] and rows["val"]:
        eval_batch = int(sft.get("per_device_eval_batch_size", 1)) * s["processes"]  # swift 4.6 default: 1
        val = longest(rows["val"], min(len(rows["val"]), eval_batch * steps), limit, strategy)
        cached["cached_val_dataset"] = [str(copy_rows(report["cached_val_dataset"], val, folder / "val"))]
        lengths["val"] = [rows["val"][i] for i in val]
    (folder / "lengths.json").write_text(json.dumps(lengths), encoding="utf-8")
    return cached, lengths


def capped_steps(steps: int, sft: dict[str, Any], report: dict[str, Any]) -> int:
    """`--steps`, at most the full run's own steps: more would only repeat its rows (said so when capped)."""
    total = full_schedule(sft, report["steps"]["steps_per_epoch"], False)[0]
    if steps <= total:
        return steps
    ui.warn(
        f"--steps {steps} is more than the {total} step(s) of the full run ({report['train_rows']} train rows, "
        f"{report['steps']['steps_per_epoch']} step(s) per epoch): rehearsing {max(total, 1)}."
    )
    return max(total, 1)


def interrupted(code: int, run_dir: Path, log_path: Path, steps: int, as_json: bool) -> MhsftError:
    """The error for a rehearsal stopped by a signal (Ctrl-C, SIGTERM): no verdict on the recipe either way."""
    name, reached = STOPPED_BY[code], measure(run_dir, steps, 0.0)["steps"]
    if as_json:
        ui.echo(json.dumps({"interrupted": name, "exit_code": code, "log": str(log_path), "run_dir": str(run_dir)}))
    return MhsftError(
        f"the rehearsal was interrupted ({name}) at step {reached}/{steps}: no verdict on the recipe, which may "
        f"well be fine. Its partial output is in {run_dir}; rehearse again to get the verdict.",
        code,
    )


def rehearse(
    ref: str, overrides: list[str], env_file: Path | None, *, steps: int, check: bool, timeout: float, as_json: bool
) -> int:
    """Everything `mhsft train --rehearse` does; returns 0, 5 (a moment failed) or swift's own exit code."""
    from mhsft.launch import execute
    from mhsft.process.runner import executable
    from mhsft.rehearse.push import check_push
    from mhsft.runs.records import reserve_version_dir
    from mhsft.train.before_start import checks_before_start, new_swanlab_run_id
    from mhsft.view.links import for_record

    cwd = Path.cwd()
    environment = environment_for(env_file)
    recipe = load_recipe(ref, overrides, environment)
    real = train_plan(recipe, environment, cwd)
    assert real.output_dir is not None  # a training plan always has one
    recipe = away_from(recipe, real.output_dir)
    executable(real.argv[0])
    out = sys.stderr if as_json else None
    found, report = checks_before_start(real, recipe, environment, check=check, timeout=timeout, log=out)
    assert report is not None  # the gate always runs here (data_check=True)
    steps = capped_steps(steps, recipe.args["sft"], report)
    push = check_push(recipe, environment, timeout)
    run_dir = reserve_version_dir(Path(f"{real.output_dir}{SUFFIX}"))
    (run_dir / "rehearsal-data").mkdir()
    cached, lengths = derived_datasets(report, steps, run_dir / "rehearsal-data", recipe.args["sft"])
    has_eval = "cached_val_dataset" in cached and recipe.args["sft"].get("eval_strategy") != "no"
    rehearsal = rehearsal_recipe(recipe, steps, run_dir, has_eval)
    run_id = new_swanlab_run_id()
    plan = train_plan(rehearsal, environment, cwd, run_id=run_id, cached=cached, run_dir=run_dir)
    ui.pairs([*plan.summary[:3], ("rehearsal", f"{steps} step(s) of the longest rows, eval and save at step {steps}")])
    extra = {"rehearsal": True, "longest_lengths": lengths["train"][:8]} | for_record(
        recipe, environment, found, run_id
    )
    log_path = run_dir / "swift.log"
    ui.info(f"rehearsal: swift's output goes to {log_path}")
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        code = execute(plan, environment, rehearsal, log=log, swanlab_run_id=run_id, extra=extra, run_dir=str(run_dir))
    wall = time.monotonic() - started
    if code in STOPPED_BY:  # mhsft was interrupted and stopped swift: nothing is known about the recipe
        raise interrupted(code, run_dir, log_path, steps, as_json)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    save = recipe.args["sft"].get("save_strategy") != "no"
    moments = judge(run_dir, text, code, steps, has_eval, save)
    crashed = code != 0 and not any(m.status == FAILED for m in moments)  # before training: no moment to blame
    if push:
        moments.append(push)
    measured = measure(run_dir, steps, wall)
    total, evals, saves = full_schedule(recipe.args["sft"], report["steps"]["steps_per_epoch"], has_eval)
    eval_scale = report["val_rows"] / len(lengths["val"]) if lengths.get("val") else 0.0
    projection = project(measured, total, evals, saves, eval_scale)
    verdict = Verdict(moments, measured, projection, code, str(log_path), str(run_dir))
    show(verdict, as_json)
    if crashed:
        raise MhsftError(f"swift crashed before the rehearsal's first step (exit {code}): see {log_path}.", code)
    if not verdict.passed:
        failed = next(m for m in moments if m.status == FAILED)
        raise MhsftError(
            f"rehearsal failed at the {failed.name}: {failed.detail}. The full run would fail there too"
            f"{' after hours' if failed.name in (EVALUATION, SAVE) else ''}; fix the recipe and rehearse again.",
            REHEARSAL_FAILED,
        )
    return 0
