"""Helpers for tests on a real Slurm cluster (`bash scripts/slurm_cluster.sh start` makes one on this machine)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SPOOL_DIRS = (Path("/var/spool/slurmctld"), Path("/var/spool/slurmd"))


def unreachable() -> str | None:
    """Why no Slurm cluster with two idle-or-busy nodes answers here, or None when one does."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm here (sinfo/sbatch not on PATH); as root on Debian: bash scripts/slurm_cluster.sh start"
    try:
        result = subprocess.run(["sinfo", "--noheader", "--format=%D"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "Slurm is not reachable: sinfo did not answer within 15 s"
    if result.returncode != 0:
        return f"Slurm is not reachable: sinfo says {result.stderr.strip()!r}"
    nodes = sum(int(n) for n in result.stdout.split() if n.isdigit())
    return None if nodes >= 2 else f"the Slurm cluster has {nodes} node(s); these tests need 2"


REASON = unreachable()
needs_slurm = pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")


def job_ids() -> set[str]:
    """Every job id slurmctld knows (pending, running, or ended less than MinJobAge ago)."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i"], capture_output=True, text=True)
    return set(out.stdout.split())


def job_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={job_id}"], capture_output=True, text=True
    )
    return out.stdout.strip()


def record(work: Path, run_id: str) -> dict:
    return json.loads((work / ".mhsft" / "runs" / f"{run_id}.json").read_text())


def submitted_run(stderr: str) -> tuple[str, str]:
    """(run id, job id) from `mhsft submit`'s `run ID: queued as Slurm job N` line."""
    line = next(ln for ln in stderr.splitlines() if ": queued as Slurm job " in ln)
    return line.split()[1].rstrip(":"), line.split()[-3]


def everything_slurm_keeps(job_id: str) -> bytes:
    """The job as scontrol shows it (with details and its batch script) and every file in the spool dirs."""
    shown = b""
    for args in (["show", "job", "-d", job_id], ["write", "batch_script", job_id, "-"]):
        shown += subprocess.run(["scontrol", *args], capture_output=True).stdout
    for folder in SPOOL_DIRS:
        for path in folder.rglob("*") if folder.is_dir() else []:
            if path.is_file():
                try:
                    shown += path.read_bytes()
                except OSError:
                    continue
    return shown
