"""A small client for Slurm's commands (sbatch, squeue, scontrol, scancel) with parsed answers.

Modelled on oumi's `SlurmClient`: each call is one subprocess with a timeout; failures become `MhsftError`s that
quote Slurm's own message. Job state comes from `squeue --states=all`, which also lists jobs that ended less than
MinJobAge (300 s by default) ago; the job writes its own outcome into the run record (clusters without
accounting forget finished jobs). A state query waits QUERY_TIMEOUT_S at most: a listing must not hang on Slurm.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mhsft.errors import MhsftError

TIMEOUT_S = 30.0  # sbatch, scancel, scontrol
QUERY_TIMEOUT_S = 5.0  # squeue for `mhsft runs` and the other views


@dataclass(frozen=True)
class Job:
    """One job as squeue shows it."""

    job_id: str
    state: str
    nodes: str
    reason: str


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


def _run(
    args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run a Slurm command in a session of its own; at the timeout (or Ctrl-C) its whole group is killed."""
    argv = [tool(args[0]), *args[1:]]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        raise MhsftError(
            f"Slurm did not answer: `{' '.join(a for a in args[:2] if not a.startswith('-'))}` gave no answer within "
            f"{timeout:g} s (slurmctld may be down or overloaded). Check with `sinfo`, then try again."
        ) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


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
    """The jobs among `job_ids` that Slurm still knows, by id; None when there is no squeue to ask.

    MhsftError when squeue fails or does not answer within QUERY_TIMEOUT_S."""
    ids = sorted(set(job_ids))
    if not ids or shutil.which("squeue") is None:
        return None if ids else {}
    query = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N|%r", f"--jobs={','.join(ids)}"]
    result = _run(query, timeout=QUERY_TIMEOUT_S)
    if result.returncode != 0:  # one unknown id alone is an error ("Invalid job id specified")
        if "invalid job id" in result.stderr.lower():
            return {}
        raise MhsftError(f"squeue could not tell the state of Slurm jobs: {_message(result)}.")
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
