"""The node runner: `python -m mhsft.slurm.node RUN_ID`, one task per node of a job `mhsft submit` queued.

It reads the run's record and the recipe frozen at submission from the shared working directory, reads `.env`
itself (secrets never pass through Slurm), sets the torchrun variables ms-swift reads (NNODES, NODE_RANK,
MASTER_ADDR, MASTER_PORT, NPROC_PER_NODE) from Slurm's, and runs `swift sft` with the recipe's argv under the
run's SwanLab run id, in the attempt's own vN folder. After a requeue (SLURM_RESTART_COUNT > 0) it resumes from
the newest complete checkpoint of the run's earlier attempts; node 0 chooses both for every node (slurm/attempt).
Before swift it checks that the secrets the run was submitted with are there; after swift it stops every process
swift left (trainers in sessions of their own included) and waits until they are gone. Node 0 writes the run's
state and outcome into the record; any node writes why it stopped before swift.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import PREFLIGHT, MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.process import runner, tree
from mhsft.process import slurm as client
from mhsft.recipe.plan import train_plan
from mhsft.runs import status, store
from mhsft.runs.records import RUNS_DIR, RunRecord, now, read_record
from mhsft.slurm import attempt, node_check

PORT_BASE, PORT_SPAN = 15000, 30000
STOP_GRACE_S = 5.0  # what swift left gets SIGTERM, then SIGKILL this much later (well within Slurm's KillWait)


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


def _record(cwd: Path, run_id: str) -> RunRecord:
    """The run's record as the job's node reads it (no squeue: the job itself is the news)."""
    try:
        record = read_record(attempt.record_path(cwd, run_id))
    except ValueError as exc:
        raise MhsftError(f"run record {RUNS_DIR / f'{run_id}.json'} cannot be read ({exc}).") from None
    if record.slurm is None:
        raise MhsftError(f"run {run_id} is not a Slurm run: its record has no Slurm part (`mhsft submit` writes it).")
    return record


def check_secrets(record: RunRecord, environment: Environment, cwd: Path) -> None:
    """The secrets the run was submitted with must be in this node's .env: swift would fail on them late."""
    missing = [name for name in record.secrets if not environment.get(name)]
    if not missing:
        return
    env_file = record.slurm.env_file if record.slurm and record.slurm.env_file else str(cwd / ".env")
    names, (now_, then) = ", ".join(missing), ("is", "was") if len(missing) == 1 else ("are", "were")
    raise MhsftError(
        f"run {record.id}: {names} {now_} not in {env_file} on node {socket.gethostname()}, but {then} there when "
        "the run was submitted (a job's nodes read secrets from that file, never from Slurm). Put "
        f"{missing[0]}=... back into {env_file} (chmod 600) and submit again; swift was not started.",
        exit_code=PREFLIGHT,
    )


def _running(record: RunRecord, variables: Mapping[str, str], slurm_env: Mapping[str, str]) -> None:
    if record.status in (*status.ACTIVE, status.UNKNOWN):
        record.set_slurm_state("RUNNING")
    record.env = record.env | dict(variables)
    record.slurm.job_id = slurm_env["SLURM_JOB_ID"]  # type: ignore[union-attr]
    record.slurm.nodes = slurm_env["SLURM_JOB_NODELIST"]  # type: ignore[union-attr]
    record.slurm.started_at, record.slurm.interrupted_by = now(), None  # type: ignore[union-attr]


def _finish(path: Path, number: int, outcome: runner.Outcome, duration_s: float) -> None:
    """Record attempt `number`'s outcome, unless a newer attempt owns the record by now (its last write came late)."""

    def finished(record: RunRecord) -> bool:
        if record.slurm is None or record.slurm.restarts != number:
            return False
        record.exit_code, record.duration_s = outcome.exit_code, duration_s
        if outcome.signal is not None:  # scancel, a requeue or the time limit: squeue tells which on the next read
            record.slurm.interrupted_by = signal.Signals(outcome.signal).name
        elif record.status in (*status.ACTIVE, status.UNKNOWN):  # a final status someone else wrote is kept
            record.set_slurm_state("COMPLETED" if outcome.exit_code == 0 else "FAILED")
            record.ended_at = now()
        return True

    store.update(path, finished)


def run(run_id: str, cwd: Path, slurm_env: Mapping[str, str]) -> int:
    """Train this node's share of run `run_id`; returns swift's exit code."""
    if not attempt.record_path(cwd, run_id).is_file():
        raise MhsftError(
            f"run record {RUNS_DIR / f'{run_id}.json'} is not in this node's working directory {cwd}. The "
            "directory you submit from must be on a filesystem every node shares (as home or project folders are "
            "on Slurm clusters)."
        )
    record = _record(cwd, run_id)
    spec = record.slurm
    environment = environment_for(Path(spec.env_file) if spec.env_file else None)  # type: ignore[union-attr]
    check_secrets(record, environment, cwd)
    recipe = load_recipe(str(spec.recipe), [], environment)  # type: ignore[union-attr]
    processes = spec.gpus_per_node or int(recipe.launch_env.get("NPROC_PER_NODE", "1"))  # type: ignore[union-attr]
    variables = node_variables(slurm_env, processes)
    number = restarts(slurm_env)
    first = variables["NODE_RANK"] == "0"
    where = f"node {variables['NODE_RANK']}/{variables['NNODES']} ({slurm_env.get('SLURMD_NODENAME', '?')})"
    planned = train_plan(recipe, environment, cwd, run_id=record.swanlab_run_id, cached=spec.cached)  # type: ignore[union-attr]
    ui.info(f"run {run_id}: {where}: {node_check.check(planned, recipe, environment, cwd, record.swanlab_run_id)}")
    if first:
        output_dir = planned.output_dir
        chosen = attempt.choose(cwd, run_id, number, output_dir, lambda r: _running(r, variables, slurm_env))  # type: ignore[arg-type]
    else:
        chosen = attempt.chosen(cwd, run_id, number)
    resume_from = Path(chosen.resume_from) if chosen.resume_from else None
    plan = train_plan(
        recipe,
        environment,
        cwd,
        run_id=record.swanlab_run_id,
        resume_from=resume_from,
        cached=spec.cached,  # type: ignore[union-attr]
        run_dir=Path(chosen.run_dir),
    )
    ui.info(f"run {run_id}: {where}, master {variables['MASTER_ADDR']}:{variables['MASTER_PORT']}, attempt {number}")
    if resume_from:
        ui.info(f"run {run_id}: requeued; resuming from {resume_from}")
    started = time.monotonic()
    tree.adopt_orphans()  # trainers whose parent dies stay below this process, so that stop_all finds them
    try:
        argv = [runner.executable(plan.argv[0]), *plan.argv[1:]]
        outcome = runner.run(argv, plan.child_env(environment) | variables, cwd=cwd, filter_output=ui.clean)
    finally:
        left = tree.stop_all(STOP_GRACE_S)
    if left:
        ui.warn(f"run {run_id}: {where}: processes {left} of swift's would not end even on SIGKILL.")
    if first:
        _finish(attempt.record_path(cwd, run_id), number, outcome, round(time.monotonic() - started, 3))
    ui.info(f"run {run_id}: {where} swift exited {outcome.exit_code}")
    return outcome.exit_code


def _record_error(cwd: Path, run_id: str, error: MhsftError) -> None:
    """Write why this node stopped before swift into the record (status failed, `extra.node_check`, which
    `mhsft runs` and `runs show` print), where there is a record to write into."""

    def failed(record: RunRecord) -> bool:
        if record.slurm is None or record.status not in (*status.ACTIVE, status.UNKNOWN):
            return False
        record.set_slurm_state("FAILED")
        record.exit_code, record.ended_at = error.exit_code, now()
        record.extra["node_check"] = error.message
        return True

    with contextlib.suppress(MhsftError):
        store.update(attempt.record_path(cwd, run_id), failed)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        ui.error("usage: python -m mhsft.slurm.node RUN_ID (the batch script `mhsft submit` writes runs this)")
        return 2
    try:
        return run(argv[0], Path.cwd(), os.environ)
    except MhsftError as exc:
        ui.error(exc.message)
        _record_error(Path.cwd(), argv[0], exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
