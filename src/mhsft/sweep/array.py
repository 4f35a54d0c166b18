"""A sweep on Slurm: one job array (`sbatch --array=0-N%K`), each array task training one trial on one node
(`python -m mhsft.sweep.trial ID --array` reads SLURM_ARRAY_TASK_ID). As with `mhsft submit`, nothing secret
passes through Slurm: each task reads `.env` from the shared working directory itself."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.process import slurm as client
from mhsft.recipe.model import Recipe, SlurmSettings
from mhsft.runs import status
from mhsft.slurm.script import directives
from mhsft.slurm.submit import sbatch_env
from mhsft.sweep.store import TRIAL_RUNNER, Sweep


def array_spec(numbers: list[int], parallel: int) -> str:
    """`0-3%2` for trials 0..3 two at a time, `1,3%2` for some of them."""
    consecutive = numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    listed = f"{numbers[0]}-{numbers[-1]}" if consecutive and len(numbers) > 1 else ",".join(map(str, numbers))
    return f"{listed}%{parallel}"


def settings_for(recipe: Recipe) -> SlurmSettings:
    """The recipe's [slurm] settings for one trial per array task: one node each."""
    settings = recipe.slurm or SlurmSettings(job_name=f"{recipe.name}-sweep")
    if settings.nodes != 1:
        raise MhsftError(
            f"{recipe.path}, [slurm] nodes = {settings.nodes}: each trial of a sweep on Slurm runs on one node (one "
            "array task). Set nodes = 1 (use gpus_per_node for several GPUs), or run the trials with mhsft submit."
        )
    if settings.offline_nodes:
        raise MhsftError(
            f"{recipe.path}, [slurm] offline_nodes = true: a sweep's job array does not yet download hub models "
            "before the queue, track offline on the nodes or follow the upload, so its trials would fail on the "
            "nodes. Queue the trials one by one with `mhsft submit RECIPE --set ...`, or run the sweep on a machine "
            "with internet (`mhsft sweep RECIPE`)."
        )
    return settings


def batch_script(settings: SlurmSettings, sweep: Sweep, cwd: Path, numbers: list[int]) -> str:
    """The array job's script: the #SBATCH lines of [slurm], the array, one trial runner per task."""
    output = str(sweep.folder(cwd).relative_to(cwd) / "trial-%a.log")
    lines = [*directives(replace(settings, output=output), cwd), f"--array={array_spec(numbers, sweep.parallel)}"]
    runner = [sys.executable, "-m", TRIAL_RUNNER, sweep.id, "--array"]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by `mhsft sweep --slurm` for sweep {sweep.id}: array task N trains trial N. No secret here:",
            "# each task's runner reads .env from the working directory itself.",
            *(f"#SBATCH {line}" for line in lines),
            "exec " + " ".join(map(shlex.quote, runner)),
            "",
        ]
    )


def submit(sweep: Sweep, recipe: Recipe, cwd: Path, numbers: list[int]) -> int:
    """Queue trials `numbers` as one job array; the job id is kept in sweep.json."""
    client.tool("sbatch")
    batch = sweep.folder(cwd) / f"array-{len(sweep.jobs)}.sbatch"
    batch.write_text(batch_script(settings_for(recipe), sweep, cwd, numbers), encoding="utf-8")
    job_id = client.submit(batch, sbatch_env(), cwd)
    sweep.jobs.append(job_id)
    sweep.status = "queued"
    sweep.save(cwd)
    ui.info(
        f"sweep {sweep.id}: trials {array_spec(numbers, sweep.parallel)} queued as Slurm job array {job_id} (output: "
        f"{sweep.folder(cwd).relative_to(cwd)}/trial-N.log). Follow: mhsft sweep show {sweep.id}"
    )
    return 0


def active(sweep: Sweep) -> bool:
    """Whether a task of the sweep's job arrays is still queued or running (unknown: False)."""
    try:
        found = client.jobs(sweep.jobs) if sweep.jobs else {}
    except MhsftError:  # Slurm did not answer
        return False
    return any(status.of_slurm(job.state) in status.ACTIVE for job in (found or {}).values())
