"""The trial runner: `python -m mhsft.sweep.trial SWEEP_ID N [--gpus IDS]` trains trial N of a sweep as a
normal run (its own record with `extra.sweep`, its own vN folder, its SwanLab experiment named after its
values in the sweep's group), from the gate's cached dataset. The sweep checked everything before."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.launch import environment_for
from mhsft.recipe.load import load
from mhsft.recipe.toml_out import value_text
from mhsft.recipe.validate import validate
from mhsft.sweep import prepare, store

MASTER_PORT = 29500  # torchrun's default; trial N looks for a free one from 29500 + N


def run(sweep_id: str, number: int, cwd: Path, gpus: str | None) -> int:
    """Train trial `number`; returns swift's exit code."""
    from mhsft.train.before_start import new_swanlab_run_id
    from mhsft.train.command import start_run

    sweep = store.load(cwd, sweep_id)
    if sweep.id != sweep_id or not 0 <= number < len(sweep.trials):
        raise MhsftError(f"sweep {sweep_id} has no trial {number} ({len(sweep.trials)} planned so far).")
    trial = sweep.trials[number]
    environment = environment_for(Path(sweep.env_file) if sweep.env_file else None)
    placed = [f"swanlab.exp_name={value_text(trial.name)}"]
    if gpus:  # one of the trials side by side: its own GPUs, and its own torchrun port
        from mhsft.process.ports import free_port

        placed += [f"launch.gpus={value_text(gpus)}", f"launch.master_port={free_port(MASTER_PORT + number)}"]
    recipe = validate(load(sweep.recipe, environment, [*prepare.overrides(trial.values), *placed]))
    gate = sweep.gates.get(trial.gate) or {"cached": None, "extra": {}}
    tag = {"id": sweep.id, "trial": number, "name": trial.name, "values": trial.values}
    return start_run(
        recipe,
        environment,
        cwd,
        run_id=new_swanlab_run_id(),
        found=sweep.found,
        cached=gate["cached"],
        extra=gate["extra"] | {"sweep": tag},
        env={"SWANLAB_GROUP": sweep.id},
    )


def main(argv: list[str]) -> int:
    ui.guard_streams()
    gpus = None
    if len(argv) == 4 and argv[2] == "--gpus":
        argv, gpus = argv[:2], argv[3]
    if argv[1:] == ["--array"]:  # an array task of `mhsft sweep --slurm`
        argv = [argv[0], os.environ.get("SLURM_ARRAY_TASK_ID", "")]
    if len(argv) != 2 or not argv[1].isdigit():
        ui.error(
            "usage: python -m mhsft.sweep.trial SWEEP_ID N [--gpus IDS] | SWEEP_ID --array (`mhsft sweep` runs this)"
        )
        return 2
    try:
        return run(argv[0], int(argv[1]), Path.cwd(), gpus)
    except MhsftError as exc:
        ui.error(exc.message)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
