"""`mhsft sweep --slurm` on the real two-node Slurm cluster with the fake swift: one job array whose tasks each
train one trial, one task cancelled, and `sweep resume` queueing only that trial again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.environment import SECRET
from support.running import local_recipe, mhsft, write
from support.slurmtest import REASON, everything_slurm_keeps
from support.waiting import wait_until

pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")
TIMEOUT = 120


def trial_records(workdir: Path) -> dict[int, dict]:
    folder = workdir / ".mhsft" / "runs"
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text())
        found[record["extra"]["sweep"]["trial"]] = record
    return found


def array_over(job_id: str) -> bool:
    out = subprocess.run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%i"], capture_output=True, text=True)
    return out.returncode != 0 or not out.stdout.strip()


def test_an_array_task_per_trial_a_cancelled_task_and_resume(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir, "\n[slurm]\ncpus_per_task = 1\n")
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    space = ["--zip", "env.FAKE_SWIFT_MODE=['exit:0','wait:0','exit:0']", "--zip", "sft.lora_rank=[4,8,16]"]
    result = mhsft(
        "sweep", "r.toml", *space, "--metric", "last_loss", "--parallel", "2", "--slurm", env=env, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    (folder,) = (workdir / ".mhsft" / "sweeps").iterdir()
    sweep = json.loads((folder / "sweep.json").read_text())
    (job_id,) = sweep["jobs"]
    script = (folder / "array-0.sbatch").read_text()
    assert "#SBATCH --array=0-2%2" in script and f"mhsft.sweep.trial {sweep['id']} --array" in script
    wait_until(Path(f"{fake_swift.log}.started").exists, TIMEOUT, "trial 1's swift")
    subprocess.run(["scancel", f"{job_id}_1"], check=True)
    wait_until(lambda: array_over(job_id), TIMEOUT, "the job array to end")
    runs = trial_records(workdir)
    assert {n: r["status"] for n, r in runs.items()} == {0: "succeeded", 1: "interrupted", 2: "succeeded"}
    assert sorted(c["env"]["SLURM_ARRAY_TASK_ID"] for c in fake_swift.calls()) == ["0", "1", "2"]
    assert SECRET.encode() not in everything_slurm_keeps(job_id)
    shown = mhsft("sweep", "show", sweep["id"], "--json", env=env, cwd=workdir)
    assert json.loads(shown.stdout)["status"] == "interrupted"
    Path(f"{fake_swift.log}.go").write_text("")
    resumed = mhsft("sweep", "resume", sweep["id"], env=env, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((folder / "sweep.json").read_text())["jobs"][1]
    assert "#SBATCH --array=1%2" in (folder / "array-1.sbatch").read_text()
    wait_until(lambda: array_over(again), TIMEOUT, "the second job array to end")
    assert trial_records(workdir)[1]["status"] == "succeeded"
    assert len(fake_swift.calls()) == 4  # trials 0, 1, 2, then 1 again
    assert json.loads(mhsft("sweep", "show", "--json", env=env, cwd=workdir).stdout)["status"] == "finished"


def test_submit_sweep_is_the_same_job_array_as_sweep_slurm(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir, "\n[slurm]\ncpus_per_task = 1\n[sweep.grid]\nsft.lora_rank = [4, 8]\n")
    refused = mhsft("submit", "r.toml", "--sweep", "--nodes", "2", env=env, cwd=workdir)
    assert refused.returncode == 2 and "--nodes 2 with --sweep" in refused.stderr and "Traceback" not in refused.stderr
    planned = mhsft("submit", "r.toml", "--sweep", "--metric", "last_loss", "--dry-run", env=env, cwd=workdir)
    same = mhsft("sweep", "r.toml", "--slurm", "--metric", "last_loss", "--dry-run", env=env, cwd=workdir)
    assert planned.returncode == 0 and (planned.stdout, planned.stderr) == (same.stdout, same.stderr)
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()
    result = mhsft("submit", "r.toml", "--sweep", "--metric", "last_loss", "--parallel", "2", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (folder,) = (workdir / ".mhsft" / "sweeps").iterdir()
    sweep = json.loads((folder / "sweep.json").read_text())
    (job_id,) = sweep["jobs"]
    assert "#SBATCH --array=0-1%2" in (folder / "array-0.sbatch").read_text()
    wait_until(lambda: array_over(job_id), TIMEOUT, "the job array to end")
    runs = trial_records(workdir)
    assert {n: (r["status"], r["extra"]["sweep"]["values"]) for n, r in runs.items()} == {
        0: ("succeeded", {"sft.lora_rank": 4}),
        1: ("succeeded", {"sft.lora_rank": 8}),
    }
