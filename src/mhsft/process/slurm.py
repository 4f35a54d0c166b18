"""A small client for Slurm's commands (sbatch, squeue, scontrol, scancel) with parsed answers.

Modelled on oumi's `SlurmClient`: each call is one subprocess with a timeout; failures become `MhsftError`s that
quote Slurm's own message. Job state comes from `squeue --states=all`, which also lists jobs that ended less than
MinJobAge (300 s by default) ago; the job writes its own outcome into the run record (clusters without
accounting forget finished jobs).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mhsft.errors import MhsftError

TIMEOUT_S = 30.0
# Slurm's job states (squeue %T) in mhsft's words; anything else is a failure
QUEUED = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED")
RUNNING = ("CONFIGURING", "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED")
STATUS = {"COMPLETED": "completed", "CANCELLED": "cancelled"} | dict.fromkeys(QUEUED, "queued")
STATUS |= dict.fromkeys(RUNNING, "running")
ACTIVE = ("queued", "running")  # mhsft states that can still change


@dataclass(frozen=True)
class Job:
    """One job as squeue shows it."""

    job_id: str
    state: str
    nodes: str
    reason: str

    @property
    def status(self) -> str:
        """queued, running, completed, cancelled or failed."""
        return status_of(self.state)


def status_of(state: str) -> str:
    """mhsft's status for a Slurm state (`CANCELLED by 0` and `RUNNING+` style suffixes allowed)."""
    word = state.split()[0].rstrip("+") if state.strip() else ""
    return STATUS.get(word, "failed")


def tool(name: str) -> str:
    """The full path of a Slurm command, or a clear error saying how to get it."""
    found = shutil.which(name)
    if found is None:
        raise MhsftError(
            f"`{name}` was not found on PATH: mhsft needs Slurm's client commands (sbatch, squeue, scontrol, "
            "scancel). Run it on a login node of the cluster, load them (`module load slurm`), or install them "
            "(Debian/Ubuntu: apt-get install slurm-client)."
        )
    return found


def _run(args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    argv = [tool(args[0]), *args[1:]]
    try:
        return subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise MhsftError(
            f"`{' '.join(args[:2])}` did not answer within {TIMEOUT_S:.0f} s: slurmctld may be down or overloaded. "
            "Check with `sinfo`, then try again."
        ) from None


def _message(result: subprocess.CompletedProcess) -> str:
    text = result.stderr.strip() or result.stdout.strip() or f"exit code {result.returncode}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def submit(script: Path, env: Mapping[str, str], cwd: Path) -> str:
    """`sbatch --parsable SCRIPT`: the job id (the answer may be `ID;CLUSTER`)."""
    result = _run(["sbatch", "--parsable", str(script)], env, cwd)
    job_id = result.stdout.strip().split(";")[0]
    if result.returncode != 0 or not job_id.isdigit():
        raise MhsftError(
            f"sbatch refused the job: {_message(result)}. Fix the [slurm] section (partition, account, qos, "
            "time, mem, sbatch_args) to what the cluster allows (`sinfo`, `sacctmgr show assoc`); nothing was "
            "queued.",
            exit_code=1,
        )
    return job_id


def jobs(job_ids: Iterable[str]) -> dict[str, Job] | None:
    """The jobs among `job_ids` that Slurm still knows, by id; None when Slurm cannot be asked."""
    ids = sorted(set(job_ids))
    if not ids or shutil.which("squeue") is None:
        return None if ids else {}
    try:
        result = _run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%N|%r", f"--jobs={','.join(ids)}"])
    except MhsftError:
        return None
    if result.returncode != 0:  # one unknown id alone is an error ("Invalid job id specified")
        return {} if "invalid job id" in result.stderr.lower() else None
    found = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            found[parts[0]] = Job(*parts)
    return found


def hostnames(nodelist: str) -> list[str]:
    """`n[1-2],gpu7` -> ['n1', 'n2', 'gpu7'] (`scontrol show hostnames`)."""
    result = _run(["scontrol", "show", "hostnames", nodelist])
    if result.returncode != 0 or not result.stdout.split():
        raise MhsftError(f"scontrol could not expand the node list {nodelist!r}: {_message(result)}.")
    return result.stdout.split()


def cancel(job_id: str) -> None:
    """`scancel JOB`."""
    result = _run(["scancel", job_id])
    if result.returncode != 0:
        raise MhsftError(f"scancel {job_id} failed: {_message(result)}.", exit_code=1)
