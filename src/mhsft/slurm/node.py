"""The node runner: `python -m mhsft.slurm.node RUN_ID`, one task per node of a job `mhsft submit` queued.

It reads the run's record and the recipe frozen at submission from the shared working directory, reads `.env`
itself (secrets never pass through Slurm), sets the torchrun variables ms-swift reads (NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT, NPROC_PER_NODE) from Slurm's, and runs `swift sft` with the recipe's argv under the
run's SwanLab run id. After a requeue (SLURM_RESTART_COUNT > 0) it resumes from the newest complete checkpoint
the run has written. The first node writes the run's state and outcome into the record.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.process import runner
from mhsft.process import slurm as client
from mhsft.recipe.plan import train_plan
from mhsft.runs import checkpoints, status, store
from mhsft.runs.records import RUNS_DIR, RunRecord, now, read_record, version_dirs
from mhsft.slurm import node_check

PORT_BASE, PORT_SPAN = 15000, 30000


def master_port(job_id: str, restart: int) -> int:
    """A port every node derives alike from the job id; a restarted job gets another (the old may linger)."""
    return PORT_BASE + (int(job_id) * 8 + restart) % PORT_SPAN


def node_variables(slurm_env: Mapping[str, str], processes: int) -> dict[str, str]:
    """NNODES, NODE_RANK, MASTER_ADDR (the first host of the job), MASTER_PORT and NPROC_PER_NODE."""
    nodelist = slurm_env["SLURM_JOB_NODELIST"]
    return {
        "NNODES": slurm_env.get("SLURM_NNODES") or slurm_env["SLURM_JOB_NUM_NODES"],
        "NODE_RANK": slurm_env["SLURM_NODEID"],
        "MASTER_ADDR": client.hostnames(nodelist)[0],
        "MASTER_PORT": str(master_port(slurm_env["SLURM_JOB_ID"], restarts(slurm_env))),
        "NPROC_PER_NODE": str(processes),
    }


def restarts(slurm_env: Mapping[str, str]) -> int:
    return int(slurm_env.get("SLURM_RESTART_COUNT") or 0)


def resume_checkpoint(record: RunRecord, output_dir: Path) -> Path | None:
    """The newest complete checkpoint in the vN folders this run created (those not there at submission)."""
    before = set(record.slurm.preexisting if record.slurm else [])
    mine = [d for d in version_dirs(output_dir) if d.name not in before]
    newest = next((d for d in reversed(mine) if checkpoints.latest(d)), None)
    return checkpoints.latest(newest) if newest else None


def _update(cwd: Path, run_id: str, state: str | None, **fields: object) -> None:
    """Re-read the record under the record lock and change it; a final status someone else wrote (cancelled) is
    kept. `slurm` holds fields of the Slurm part."""
    slurm_fields: dict[str, object] = fields.pop("slurm", {})  # type: ignore[assignment]

    def change(record: RunRecord) -> bool:
        if state and record.status in (*status.ACTIVE, status.UNKNOWN):
            record.set_slurm_state(state)
        for key, value in slurm_fields.items():
            setattr(record.slurm, key, value)
        for key, value in fields.items():
            setattr(record, key, value)
        return True

    store.update(cwd / RUNS_DIR / f"{run_id}.json", change)


def _record(cwd: Path, run_id: str) -> RunRecord:
    """The run's record as the job's node reads it (no squeue: the job itself is the news)."""
    try:
        record = read_record(cwd / RUNS_DIR / f"{run_id}.json")
    except ValueError as exc:
        raise MhsftError(f"run record {RUNS_DIR / f'{run_id}.json'} cannot be read ({exc}).") from None
    if record.slurm is None:
        raise MhsftError(f"run {run_id} is not a Slurm run: its record has no Slurm part (`mhsft submit` writes it).")
    return record


def run(run_id: str, cwd: Path, slurm_env: Mapping[str, str]) -> int:
    """Train this node's share of run `run_id`; returns swift's exit code."""
    if not (cwd / RUNS_DIR / f"{run_id}.json").is_file():
        raise MhsftError(
            f"run record {RUNS_DIR / f'{run_id}.json'} is not in this node's working directory {cwd}. The "
            "directory you submit from must be on a filesystem every node shares (as home or project folders are "
            "on Slurm clusters)."
        )
    record = _record(cwd, run_id)
    spec = record.slurm
    environment = environment_for(Path(spec.env_file) if spec.env_file else None)
    recipe = load_recipe(str(spec.recipe), [], environment)
    processes = spec.gpus_per_node or int(recipe.launch_env.get("NPROC_PER_NODE", "1"))
    variables = node_variables(slurm_env, processes)
    restart = restarts(slurm_env)
    output_dir = train_plan(recipe, environment, cwd).output_dir
    resume_from = resume_checkpoint(record, output_dir) if restart else None  # type: ignore[arg-type]
    plan = train_plan(
        recipe, environment, cwd, run_id=record.swanlab_run_id, resume_from=resume_from, cached=spec.cached
    )
    first = variables["NODE_RANK"] == "0"
    where = f"node {variables['NODE_RANK']}/{variables['NNODES']} ({slurm_env.get('SLURMD_NODENAME', '?')})"
    ui.info(f"run {run_id}: {where}, master {variables['MASTER_ADDR']}:{variables['MASTER_PORT']}, attempt {restart}")
    if resume_from:
        ui.info(f"run {run_id}: requeued; resuming from {resume_from}")
    try:
        ui.info(f"run {run_id}: {where}: {node_check.check(plan, recipe, environment, cwd, record.swanlab_run_id)}")
    except MhsftError as exc:
        if first:
            _update(cwd, run_id, "FAILED", exit_code=exc.exit_code, ended_at=now())
            cause = exc.message
            store.update(cwd / RUNS_DIR / f"{run_id}.json", lambda r: r.extra.update(node_check=cause) or True)
        raise
    before = set(version_dirs(output_dir))  # type: ignore[arg-type]
    started = time.monotonic()
    if first:
        _update(
            cwd,
            run_id,
            "RUNNING",
            env=record.env | variables,
            resumed_from=str(resume_from) if resume_from else record.resumed_from,
            slurm={
                "job_id": slurm_env["SLURM_JOB_ID"],
                "nodes": slurm_env["SLURM_JOB_NODELIST"],
                "restarts": restart,
                "started_at": now(),
                "interrupted_by": None,
            },
        )
    argv = [runner.executable(plan.argv[0]), *plan.argv[1:]]
    outcome = runner.run(argv, plan.child_env(environment) | variables, cwd=cwd, filter_output=ui.clean)
    if first:
        created = [p for p in version_dirs(output_dir) if p not in before]  # type: ignore[arg-type]
        fields: dict[str, object] = {"exit_code": outcome.exit_code, "duration_s": round(time.monotonic() - started, 3)}
        if created:
            fields["run_dir"] = str(created[-1])
        state = None  # scancel, a requeue or the time limit: squeue tells which when the record is next read
        if outcome.signal is None:
            state = "COMPLETED" if outcome.exit_code == 0 else "FAILED"
            fields["ended_at"] = now()
        else:
            fields["slurm"] = {"interrupted_by": signal.Signals(outcome.signal).name}
        _update(cwd, run_id, state, **fields)
    ui.info(f"run {run_id}: {where} swift exited {outcome.exit_code}")
    return outcome.exit_code


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        ui.error("usage: python -m mhsft.slurm.node RUN_ID (the batch script `mhsft submit` writes runs this)")
        return 2
    try:
        return run(argv[0], Path.cwd(), os.environ)
    except MhsftError as exc:
        ui.error(exc.message)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
