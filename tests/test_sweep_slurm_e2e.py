"""`mhsft sweep --slurm` on the real two-node Slurm cluster with the real ms-swift (tiny model, CPU): a 3-task
job array two at a time, its third task cancelled while queued, and `sweep resume` training only that trial."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.environment import SECRET, base_env
from support.running import mhsft, write
from support.slurmtest import REASON, everything_slurm_keeps
from support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")]
TIMEOUT = 900
RECIPE = """
extends = "tiny"
[swanlab]
log_dir = "swanlog"
[env]
OMP_NUM_THREADS = 1
[sft]
model = "tiny/model"
dataset = ["tiny/data/train.jsonl"]
output_dir = "out"
max_steps = 1
save_steps = 1
logging_steps = 1
[slurm]
cpus_per_task = 1
"""


def array_over(job_id: str) -> bool:
    out = subprocess.run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%i"], capture_output=True, text=True)
    return out.returncode != 0 or not out.stdout.strip()


def trials(work: Path) -> dict[int, dict]:
    found = {}
    for path in sorted((work / ".mhsft" / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        found[record["extra"]["sweep"]["trial"]] = record
    return found


def test_a_job_array_trains_the_trials_and_resume_queues_the_cancelled_one(tmp_path: Path) -> None:
    from mhsft.selfcheck.tiny import build

    work = tmp_path / "work"
    build(work / "tiny")
    write(work / "r.toml", RECIPE)
    write(work / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    (work / "home").mkdir()
    env = base_env(work / "home")
    grid = ["--grid", "sft.learning_rate=[1e-3,2e-3,3e-3]", "--parallel", "2", "--slurm"]
    result = mhsft("sweep", "r.toml", *grid, env=env, cwd=work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("sweep: data check for") == 1
    (folder,) = (work / ".mhsft" / "sweeps").iterdir()
    (job_id,) = json.loads((folder / "sweep.json").read_text())["jobs"]
    subprocess.run(["scancel", f"{job_id}_2"], check=True)  # two at a time: the third is still queued
    wait_until(lambda: array_over(job_id), TIMEOUT, "the job array to end")
    runs = trials(work)
    assert sorted(runs) == [0, 1] and {r["status"] for r in runs.values()} == {"succeeded"}, runs
    shown = json.loads(mhsft("sweep", "show", "--json", env=env, cwd=work).stdout)
    assert shown["status"] == "interrupted" and [t["status"] for t in shown["trials"]][-1] == "not started"
    resumed = mhsft("sweep", "resume", folder.name, env=env, cwd=work, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((folder / "sweep.json").read_text())["jobs"][1]
    wait_until(lambda: array_over(again), TIMEOUT, "the resumed trial's job array to end")
    runs = trials(work)
    assert sorted(runs) == [0, 1, 2] and {r["status"] for r in runs.values()} == {"succeeded"}, runs
    assert len({r["run_dir"] for r in runs.values()}) == 3 and all(
        Path(r["run_dir"], "logging.jsonl").is_file() for r in runs.values()
    )
    shown = json.loads(mhsft("sweep", "show", "--json", env=env, cwd=work).stdout)
    assert shown["status"] == "finished" and shown["trials"][0]["best"]
    for job in (job_id, again):
        assert SECRET.encode() not in everything_slurm_keeps(job)
