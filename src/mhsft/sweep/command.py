"""`mhsft sweep RECIPE` and `mhsft sweep resume ID`: check everything once, then run the trials."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.recipe.model import Recipe
from mhsft.runs.records import now
from mhsft.sweep import prepare, store
from mhsft.sweep.settings import Options, Settings, resolve
from mhsft.sweep.space import label, number_text


def gpu_slots(recipe: Recipe, parallel: int) -> list[str | None]:
    """The GPUs of each of `parallel` trials at once: `[launch] gpus` split into disjoint groups of
    nproc_per_node each; [None] for one trial at a time (the recipe's own GPUs)."""
    if parallel == 1:
        return [None]
    listed = [g.strip() for g in recipe.launch_env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    per = int(recipe.launch_env.get("NPROC_PER_NODE", "1"))
    if "NNODES" in recipe.launch_env or len(listed) < parallel * per:
        raise MhsftError(
            f"--parallel {parallel}: trials run at once on disjoint GPUs, {per} each ([launch] nproc_per_node), "
            f"so [launch] gpus must list at least {parallel * per} GPUs on this machine; it lists "
            f"{len(listed) or 'none'}{' and [launch] nnodes is set' if 'NNODES' in recipe.launch_env else ''}. "
            'List the GPUs (gpus = "0,1,2,3") or lower --parallel.'
        )
    return [",".join(listed[i * per : (i + 1) * per]) for i in range(parallel)]


def _differences(base: Recipe, values: dict[str, Any]) -> str:
    def current(key: str) -> str:
        section, name = key.split(".", 1)
        value = base.resolved.get(section, {}).get(name)
        return "unset" if value is None else number_text(value)

    changed = [f"{k} {current(k)} -> {number_text(v)}" for k, v in values.items() if current(k) != number_text(v)]
    return ", ".join(changed) or "the recipe as it is"


def _dry_run(base: Recipe, settings: Settings) -> int:
    if settings.sampled:
        ui.info(f"{settings.trials} trial(s) sampled by {settings.method} (seed {settings.seed}) from:")
        for key, values in settings.space.grid.items():
            ui.echo(f"  {key}: one of {', '.join(map(number_text, values))}")
        for key, r in settings.space.ranges.items():
            ui.echo(f"  {key}: {number_text(r.low)}..{number_text(r.high)}{' (log scale)' if r.log else ''}")
    else:
        for number, values in enumerate(settings.space.combinations()):
            ui.echo(f"trial {number} {label(values)}: {_differences(base, values)}")
    ui.info(f"metric {settings.metric} ({settings.direction}), {settings.parallel} at a time; nothing started.")
    return 0


def _preflight(base: Recipe, environment: Environment, check: bool, timeout: float) -> dict[str, str]:
    from mhsft.train.before_start import run_preflight

    if check:
        return run_preflight(base, environment, timeout)
    ui.warn("--no-preflight: SwanLab and the hub login are not checked before the trials start.")
    return {}


def _gates(sweep: store.Sweep, plans: list[tuple[str, Recipe, str]], environment: Environment, cwd: Path) -> None:
    """Run the dataset gate once per signature not yet checked (`plans`: signature, recipe, trial name), in the
    order of the signatures' first trials."""
    groups: dict[str, list[tuple[str, Recipe, str]]] = {}
    for plan in plans:
        groups.setdefault(plan[0], []).append(plan)
    for signature, members in groups.items():
        if signature not in sweep.gates:
            names = ", ".join(name for _, _, name in members)
            sweep.gates[signature] = prepare.gate_once(members[0][1], names, environment, cwd)


def start(
    ref: str,
    overrides: list[str],
    env_file: Path | None,
    options: Options,
    *,
    dry_run: bool = False,
    check: bool = True,
    timeout: float = 5.0,
    data_check: bool = True,
    slurm: bool = False,
) -> int:
    """Everything `mhsft sweep RECIPE` does (with `slurm`, queue the trials as one job array); returns the exit
    code."""
    cwd = Path.cwd()
    environment = environment_for(env_file)
    base = load_recipe(ref, overrides, environment)
    table = base.resolved.get("sweep", {})
    settings = resolve(table, options)
    points = prepare.checked_points(settings)
    recipes = [prepare.trial_recipe(ref, overrides, p, environment) for p in points]
    settings = replace(settings, metric=prepare.metric_for(settings, recipes))
    if slurm and settings.sampled:
        raise MhsftError(
            f"--slurm runs a grid: --method {settings.method} asks Optuna for each trial after the ones before have "
            "ended. Run it here (without --slurm), or list the values with --grid."
        )
    slots = [None] if slurm else gpu_slots(base, settings.parallel)
    if slurm:
        from mhsft.sweep.array import settings_for

        settings_for(base)
    if dry_run:
        return _dry_run(base, settings)
    from mhsft.process.runner import executable
    from mhsft.slurm.submit import frozen_recipe

    executable("swift")
    prepare.check_trials(recipes, environment, cwd)
    if slurm:
        from mhsft.recipe.plan import train_plan
        from mhsft.slurm.submit import secrets_reach_the_job

        secrets_reach_the_job(train_plan(base, environment, cwd), base, environment)
    sweep = store.Sweep(
        id=store.new_id(),
        recipe=str(base.path),
        overrides=list(overrides),
        env_file=str(Path(env_file).absolute()) if env_file else None,
        method=settings.method,
        metric=settings.metric,
        direction=settings.direction,
        planned=settings.trials or len(points),
        parallel=settings.parallel,
        seed=settings.seed,
        space=store.space_of(settings.space),
        created_at=now(),
        data_check=data_check,
    )
    sweep.found = _preflight(base, environment, check, timeout)
    grid = not settings.sampled  # its trials are known now: the points checked are the trials
    signatures = [prepare.gate_signature(r, cwd) if data_check and grid else "" for r in recipes]
    if data_check:
        if grid:
            plans = list(zip(signatures, recipes, map(label, points), strict=True))
        else:
            plans = _sampled_plans(settings, ref, overrides, environment, cwd)
        _gates(sweep, plans, environment, cwd)
    else:
        ui.warn("--no-data-check: the trials' datasets are not checked; swift drops bad rows silently.")
    frozen = sweep.folder(cwd) / "recipe.toml"
    sweep.folder(cwd).mkdir(parents=True, exist_ok=True)
    frozen.write_text(frozen_recipe(base), encoding="utf-8")
    sweep.recipe, sweep.overrides = str(frozen), []
    if grid:
        for number, values in enumerate(points):
            sweep.trials.append(store.Trial(number, values, label(values), signatures[number]))
    sweep.supervise()
    sweep.save(cwd)
    ui.info(f"sweep {sweep.id}: {sweep.planned} trial(s), {sweep.parallel} at a time ({sweep.folder(cwd)})")
    if slurm:
        from mhsft.sweep.array import submit

        return submit(sweep, base, cwd, list(range(len(sweep.trials))))
    from mhsft.sweep.run import run

    return run(sweep, cwd, slots, environment, data_check)


def _sampled_plans(
    settings: Settings, ref: str, overrides: list[str], environment: Environment, cwd: Path
) -> list[tuple[str, Recipe, str]]:
    """(signature, recipe, name) of every set of values a random/tpe sweep may sample whose data the gate must
    check before the first trial: each combination of the listed values that change the data."""
    space = settings.space
    keys = prepare.data_keys(settings, ref, overrides, environment, cwd)
    ranged = [k for k in keys if k in space.ranges]
    if ranged:
        raise MhsftError(
            f"--range {ranged[0]}: its values change what the dataset gate checks, so each one must be checked "
            "before the sweep starts. Give it as a list (--grid) instead; random and tpe then pick from it."
        )
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space.grid[k] for k in keys))]
    found = []
    for values in points:
        recipe = prepare.trial_recipe(ref, overrides, values, environment)
        found.append((prepare.gate_signature(recipe, cwd), recipe, label(values) if values else "every trial"))
    return found


def resume(sweep_id: str, *, check: bool = True, timeout: float = 5.0) -> int:
    """`mhsft sweep resume ID`: check again, then run only the trials without a succeeded run."""
    from mhsft.sweep import trials
    from mhsft.sweep.run import run

    cwd = Path.cwd()
    sweep = store.load(cwd, sweep_id)
    if sweep.jobs:
        from mhsft.sweep.array import active

        if active(sweep):
            raise MhsftError(
                f"sweep {sweep.id}: a task of its Slurm job array ({', '.join(sweep.jobs)}) is still queued or "
                "running; resuming now would train those trials twice. Wait for it (squeue), or scancel it first."
            )
    if sweep.supervised():
        raise MhsftError(
            f"sweep {sweep.id} is still running (mhsft process {sweep.supervisor[1]}): resuming it now would start "  # type: ignore[index]
            "its trials twice. Wait for it, or stop it with Ctrl-C (or kill that process), then resume."
        )
    environment = environment_for(Path(sweep.env_file) if sweep.env_file else None)
    base = load_recipe(sweep.recipe, sweep.overrides, environment)
    todo = trials.missing(sweep, cwd)
    left = sweep.planned - len(sweep.trials)
    if not todo and left <= 0:
        ui.info(f"sweep {sweep.id}: every trial has succeeded; nothing to resume. `mhsft sweep show {sweep.id}`")
        return 0
    data_check = sweep.data_check
    recipes = {n: prepare.trial_recipe(sweep.recipe, [], sweep.trials[n].values, environment) for n in todo}
    prepare.check_trials(list(recipes.values()), environment, cwd)
    sweep.found = _preflight(base, environment, check, timeout) or sweep.found
    if data_check:
        sweep.gates = {}
        plans = [(sweep.trials[n].gate, r, sweep.trials[n].name) for n, r in recipes.items()]
        if left > 0 and sweep.method != "grid":
            settings = Settings(
                store.space_from(sweep.space), sweep.method, sweep.metric, sweep.direction, sweep.planned
            )
            plans += _sampled_plans(settings, sweep.recipe, [], environment, cwd)
        _gates(sweep, plans, environment, cwd)
    if sweep.jobs:
        from mhsft.sweep.array import submit

        return submit(sweep, base, cwd, todo)
    sweep.status = "running"
    sweep.supervise()
    sweep.save(cwd)
    ui.info(f"sweep {sweep.id}: resuming {len(todo)} trial(s){f' and {left} new' if left > 0 else ''}")
    return run(sweep, cwd, gpu_slots(base, sweep.parallel), environment, data_check, again=todo)
