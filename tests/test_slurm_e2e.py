"""`mhsft submit` on a real Slurm cluster (two nodes) with the real ms-swift and the tiny model on the CPU.

Start the cluster with `bash scripts/slurm_cluster.sh start` (root, Debian; `.ci/run` does it); without one
these tests skip. About 4 minutes on 2 cores: a 2-node run to the end, a cancel, and a requeue that resumes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.environment import SECRET, base_env
from support.running import mhsft, write
from support.slurmtest import REASON, everything_slurm_keeps, job_state, record, submitted_run
from support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")]
TIMEOUT = 600
RECIPE = """
extends = "tiny"
[env]
OMP_NUM_THREADS = 1
[sft]
model = "tiny/model"
dataset = ["tiny/data/train.jsonl"]
ddp_backend = "gloo"
max_steps = 4
save_steps = 2
logging_steps = 1
[slurm]
nodes = 2
cpus_per_task = 1
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> SimpleNamespace:
    """A working directory with the tiny fixtures, a 2-node recipe and a secret in .env."""
    from mhsft.selfcheck.tiny import build

    work = tmp_path_factory.mktemp("slurm")
    build(work / "tiny")
    write(work / "two.toml", RECIPE)
    write(work / ".env", f"SWANLAB_API_KEY={SECRET}\nHF_TOKEN={SECRET}\n")
    (work / "home").mkdir()
    env = base_env(work / "home") | {"MY_API_KEY": SECRET, "COLUMNS": "250"}  # a secret in the shell, too
    return SimpleNamespace(work=work, env=env)


def submit(cluster, name: str, *sets: str) -> tuple[str, str]:
    """Submit two.toml with its own output and SwanLab folders; return (run id, job id)."""
    options = ["--set", f"sft.output_dir=out-{name}", "--set", f"swanlab.log_dir=swanlog-{name}"]
    for s in sets:
        options += ["--set", s]
    result = mhsft("submit", "two.toml", *options, env=cluster.env, cwd=cluster.work)
    assert result.returncode == 0, result.stderr
    return submitted_run(result.stderr)


def processes_naming(text: str) -> list[Path]:
    """/proc entries of processes whose command line holds `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(proc)
        except OSError:
            continue
    return found


def swift_processes(output_dir: Path) -> list[Path]:
    """Processes whose command line names `output_dir` (swift, torchrun and its workers)."""
    return processes_naming(str(output_dir))


def follow(cluster, run_id: str) -> subprocess.CompletedProcess:
    return mhsft("logs", run_id, "--follow", env=cluster.env, cwd=cluster.work, timeout=TIMEOUT)


def test_two_nodes_run_to_the_end_secrets_stay_out_of_slurm_and_infer_finds_the_checkpoint(cluster) -> None:
    started = time.monotonic()
    run_id, job_id = submit(cluster, "two")
    out = cluster.work / "out-two"
    procs = wait_until(lambda: swift_processes(out), TIMEOUT, "swift to start on the nodes", poll=0.5)
    environ = b"".join(p.joinpath("environ").read_bytes() for p in procs if p.exists())
    assert f"SWANLAB_API_KEY={SECRET}".encode() in environ  # each node read .env itself
    assert b"HF_TOKEN=" not in environ  # and passed swift only what it needs (a local run: no hub token)
    assert b"MY_API_KEY" not in environ  # the shell's secret was removed from sbatch's environment
    assert SECRET.encode() not in everything_slurm_keeps(job_id)
    runs = mhsft("runs", env=cluster.env, cwd=cluster.work)
    assert f"job {job_id} on n[1-2]" in runs.stdout and "running" in runs.stdout

    followed = follow(cluster, run_id)
    elapsed = time.monotonic() - started
    assert followed.returncode == 0, followed.stderr
    assert "world_size: 2" in followed.stdout and f"run {run_id}: succeeded (job {job_id})" in followed.stderr
    assert SECRET not in followed.stdout
    rec = record(cluster.work, run_id)
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0, rec
    assert rec["extra"]["slurm"]["job_id"] == job_id and rec["extra"]["slurm"]["nodes"] == "n[1-2]"
    checkpoint = Path(rec["run_dir"]) / "checkpoint-4"
    assert (checkpoint / "trainer_state.json").is_file()
    swanlab_runs = [p.name for p in (cluster.work / "swanlog-two").glob("run-*")]
    assert len(swanlab_runs) == 1 and swanlab_runs[0].endswith(rec["swanlab_run_id"])  # rank 0 only
    assert SECRET.encode() not in everything_slurm_keeps(job_id)
    print(f"2-node run: submit to succeeded in {elapsed:.0f} s")

    printed = mhsft("logs", run_id, env=cluster.env, cwd=cluster.work)
    assert printed.returncode == 0 and "0: " in printed.stdout and "1: " in printed.stdout
    again = mhsft("cancel", run_id, env=cluster.env, cwd=cluster.work)
    assert again.returncode == 2 and "has already ended (succeeded): there is nothing to cancel" in again.stderr
    runs = mhsft("runs", env=cluster.env, cwd=cluster.work)
    assert f"job {job_id} on n[1-2]" in runs.stdout and "succeeded" in runs.stdout

    val = cluster.work / "tiny" / "data" / "val.jsonl"
    inferred = mhsft(
        "infer", "--backend", "transformers", "--dataset", str(val), "--result-path", "res.jsonl",
        "--max-new-tokens", "4", env=cluster.env, cwd=cluster.work, timeout=TIMEOUT,
    )  # fmt: skip
    assert inferred.returncode == 0, inferred.stderr[-2000:]
    infer_record = json.loads(max((cluster.work / ".mhsft" / "runs").glob("*-infer-*.json")).read_text())
    assert infer_record["checkpoint"] == str(checkpoint)
    exported = mhsft("export", "--merge-lora", "--dry-run", env=cluster.env, cwd=cluster.work)
    assert exported.returncode == 0 and f"--adapters {checkpoint}" in exported.stdout


def test_cancel_stops_a_running_job_and_the_record_says_cancelled(cluster) -> None:
    run_id, job_id = submit(cluster, "cancel", "sft.max_steps=400", "sft.save_steps=400")
    out = cluster.work / "out-cancel"
    wait_until(lambda: swift_processes(out), TIMEOUT, "swift to start on the nodes", poll=0.5)
    started = time.monotonic()
    result = mhsft("cancel", run_id, env=cluster.env, cwd=cluster.work)
    assert result.returncode == 0 and f"cancelled (scancel {job_id})" in result.stderr
    assert job_state(job_id) in ("CANCELLED", "COMPLETING")
    wait_until(lambda: not swift_processes(out), 60, "swift to stop on both nodes", poll=0.5)
    print(f"cancel: swift gone {time.monotonic() - started:.1f} s after `mhsft cancel`")
    # the node runner's own last write comes after its swift exited
    wait_until(lambda: not processes_naming(f"mhsft.slurm.node {run_id}"), 60, "the node runners to exit", poll=0.5)
    rec = record(cluster.work, run_id)
    assert rec["status"] == "cancelled" and rec["extra"]["slurm"]["state"] == "CANCELLED"
    assert "cancelled" in mhsft("runs", env=cluster.env, cwd=cluster.work).stdout


def test_a_requeue_mid_run_resumes_from_the_newest_checkpoint_under_the_same_swanlab_run(cluster) -> None:
    started = time.monotonic()
    run_id, job_id = submit(cluster, "requeue", "slurm.requeue=true", "sft.max_steps=8")
    out = cluster.work / "out-requeue"
    wait_until(lambda: list(out.glob("v*/checkpoint-2/trainer_state.json")), TIMEOUT, "the first checkpoint", poll=0.5)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    wait_until(
        lambda: record(cluster.work, run_id)["extra"]["slurm"].get("interrupted_by"), 120, "the interruption", poll=0.5
    )
    # Slurm holds a requeued job back for a while (BeginTime); let it start at once
    wait_until(lambda: job_state(job_id) == "PENDING", 60, "the job to be pending again", poll=0.5)
    assert mhsft("runs", env=cluster.env, cwd=cluster.work).stdout.count("queued") == 1
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)

    followed = follow(cluster, run_id)
    assert followed.returncode == 0, followed.stderr
    rec = record(cluster.work, run_id)
    assert rec["status"] == "succeeded" and rec["extra"]["slurm"]["restarts"] == 1, rec
    first, second = sorted(out.glob("v*"))
    newest = max(first.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    assert rec["resumed_from"] == str(newest.parent) and rec["run_dir"] == str(second)
    assert f"requeued; resuming from {newest.parent}" in followed.stdout
    steps = [json.loads(line) for line in (second / "logging.jsonl").read_text().splitlines()]
    resumed_step = int(newest.parent.name.split("-")[1])
    assert int(next(r for r in steps if "loss" in r)["global_step/max_steps"].split("/")[0]) > resumed_step
    assert (second / "checkpoint-8" / "trainer_state.json").is_file()
    swanlab_runs = [p.name for p in (cluster.work / "swanlog-requeue").glob("run-*")]
    assert len(swanlab_runs) == 2 and all(n.endswith(rec["swanlab_run_id"]) for n in swanlab_runs)
    print(f"requeue: submit to succeeded in {time.monotonic() - started:.0f} s")
