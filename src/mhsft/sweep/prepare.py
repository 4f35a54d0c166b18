"""Everything a sweep checks before its first trial starts: every value as a `--set` value, each trial's
inputs and command line, SwanLab (and the hub login), and the dataset gate once per distinct set of values
that change the data. A failure stops the sweep before anything trains."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.datagate.spec import gate_spec
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import ensure_inputs
from mhsft.recipe.load import load
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import train_plan
from mhsft.recipe.toml_out import value_text
from mhsft.recipe.validate import validate
from mhsft.sweep.settings import Settings
from mhsft.sweep.space import label

STEP_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps")  # the gate's steps per epoch


def overrides(values: dict[str, Any]) -> list[str]:
    """A trial's values as `--set` overrides."""
    return [f"{key}={value_text(value)}" for key, value in values.items()]


def trial_recipe(ref: str, base: list[str], values: dict[str, Any], environment: Environment) -> Recipe:
    """The recipe a trial trains, validated; an error names the trial's values."""
    try:
        raw = load(ref, environment, [*base, *overrides(values)])
        raw.origins |= dict.fromkeys(values, "the sweep's values")
        return validate(raw)
    except MhsftError as exc:
        raise MhsftError(f"sweep trial {label(values)}: {exc.message} No trial was started.", exc.exit_code) from None


def checked_points(settings: Settings) -> list[dict[str, Any]]:
    """The values to validate: every trial of a grid; for random/tpe each listed value and each range's ends."""
    space = settings.space
    if not settings.sampled:
        return space.combinations()
    lists = dict(space.grid) | {k: [r.low, r.high] for k, r in space.ranges.items()}
    widest = max(len(v) for v in lists.values())
    return [{k: v[min(i, len(v) - 1)] for k, v in lists.items()} for i in range(widest)]


def gate_signature(recipe: Recipe, cwd: Path) -> str:
    """What the dataset gate's verdict depends on: trials with the same signature share one gate run."""
    spec = gate_spec(recipe, cwd)
    sft = recipe.args["sft"]
    parts = [spec.args, spec.packing, spec.max_length, spec.truncation, asdict(recipe.data_check)]
    parts += [{k: sft.get(k) for k in STEP_KEYS}, recipe.launch_env]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_keys(settings: Settings, ref: str, base: list[str], environment: Environment, cwd: Path) -> list[str]:
    """The swept keys whose values change what the gate checks (random/tpe: these must be lists)."""
    found = []
    for key in settings.space.keys:
        bounds = settings.space.ranges.get(key)
        points = settings.space.grid.get(key) or [bounds.low, bounds.high]  # type: ignore[union-attr]
        signatures = {gate_signature(trial_recipe(ref, base, {key: v}, environment), cwd) for v in points}
        if len(signatures) > 1:
            found.append(key)
    return found


def has_eval(recipe: Recipe) -> bool:
    sft = recipe.args["sft"]
    return bool(sft.get("val_dataset") or (sft.get("split_dataset_ratio") or 0) > 0)


def metric_for(settings: Settings, recipes: list[Recipe]) -> str:
    """The metric that picks the best trial: the one asked for (an `eval_*` one needs an eval set in every
    trial), else eval_loss when the trials evaluate, else train_loss."""
    evaluating = all(has_eval(r) for r in recipes)
    if settings.metric is None:
        return "eval_loss" if evaluating else "train_loss"
    if settings.metric.startswith("eval_") and not evaluating:
        raise MhsftError(
            f"--metric {settings.metric}: the recipe has no eval set, so no trial would log it. Set [sft] "
            "split_dataset_ratio = 0.05 (or val_dataset) and eval_steps, or sweep on --metric train_loss."
        )
    return settings.metric


def check_trials(recipes: list[Recipe], environment: Environment, cwd: Path) -> None:
    """Each trial's command line can be built (no secret on it, it fits) and its local inputs exist."""
    for recipe in recipes:
        ensure_inputs(train_plan(recipe, environment, cwd))


def gate_once(recipe: Recipe, name: str, environment: Environment, cwd: Path) -> dict[str, Any]:
    """The dataset gate for one group of trials; what their runs train from and record."""
    from mhsft.datagate.command import gate
    from mhsft.train.command import gate_extra

    ui.info(f"sweep: data check for {name}")
    try:
        report = gate(recipe, environment, cwd)
    except MhsftError as exc:
        raise MhsftError(f"sweep trial {name}: {exc.message} No trial was started.", exc.exit_code) from None
    cached, extra = gate_extra(report, recipe)
    return {"cached": cached, "extra": extra}
