"""Slurm runs on the real cluster with a fake swift: each run keeps to its own folder, a requeue leaves nothing of
the previous attempt running, and a node missing its secrets stops before swift (skip where no Slurm answers)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from mhsft.process import runner
from mhsft.runs import store
from mhsft.runs.records import read_record
from mhsft.slurm import attempt, node

from support.environment import SECRET
from support.running import local_recipe, mhsft, write
from support.slurmtest import job_state, needs_slurm, record, submitted_run
from support.waiting import ended, wait_until

TIMEOUT = 120


def submit(workdir: Path, env: dict, *options: str) -> tuple[str, str]:
    result = mhsft("submit", "r.toml", *options, env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return submitted_run(result.stderr)


def over(workdir: Path, run_id: str) -> dict:
    """Wait until the job has left Slurm's active states and the run's record has a final status."""
    wait_until(lambda: record(workdir, run_id)["status"] not in ("queued", "running"), TIMEOUT, f"run {run_id} to end")
    return record(workdir, run_id)


@pytest.fixture
def trainers(fake_swift):
    """The pids of the trainers fake swifts left (elastic mode); any still alive is killed at teardown."""
    found: list[int] = []

    def pids() -> list[int]:
        found[:] = [json.loads(p.read_text())["trainer"] for p in fake_swift.log.parent.glob("*.trainer-*")]
        return found

    yield pids
    for pid in pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- issue 18, item 1: a run's checkpoint comes only from its own folder


@needs_slurm
def test_a_slurm_run_cancelled_before_it_started_gets_no_other_runs_folder(workdir, env, fake_swift) -> None:
    local_recipe(workdir, '[slurm]\nnodes = 1\nsbatch_args = ["--hold"]')
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0  # run A: out/v0-.../checkpoint-20
    run_id, _ = submit(workdir, env)
    assert mhsft("cancel", run_id, env=env, cwd=workdir).returncode == 0
    listing = mhsft("runs", env=env | {"COLUMNS": "400"}, cwd=workdir)
    row = next(line for line in listing.stdout.splitlines() if run_id in line)
    assert "cancelled" in row and "checkpoint-" not in row and "v0-" not in row, listing.stdout
    inferred = mhsft("infer", "--run", run_id, "--dry-run", env=env, cwd=workdir)
    assert inferred.returncode == 2 and f"run {run_id} has no output folder" in inferred.stderr, inferred.stderr
    assert "checkpoint-20" not in inferred.stdout + inferred.stderr
    assert len(fake_swift.calls()) == 1  # run A only


# --- item 2: two submits of one recipe at once


@needs_slurm
def test_two_submits_of_one_recipe_each_record_the_folder_their_own_swift_wrote(workdir, env, fake_swift) -> None:
    local_recipe(workdir, "[slurm]\nnodes = 1\ncpus_per_task = 1")
    overlap = env | {"FAKE_SWIFT_HOLD": "4"}  # both jobs run at once, one per node
    runs = [submit(workdir, overlap) for _ in range(2)]
    ends = [over(workdir, run_id) for run_id, _ in runs]
    assert [r["status"] for r in ends] == ["succeeded", "succeeded"], ends
    swift_of_job = {c["env"]["SLURM_JOB_ID"]: c for c in fake_swift.calls()}
    folders = set()
    for rec, (_, job_id) in zip(ends, runs, strict=True):
        call = swift_of_job[job_id]
        assert call["argv"][call["argv"].index("--output_dir") + 1] == rec["run_dir"]
        assert json.loads((Path(rec["run_dir"]) / "owner.json").read_text())["pid"] == call["pid"]
        folders.add(rec["run_dir"])
    assert len(folders) == 2


# --- item 3: a requeue stops the whole previous attempt; the nodes agree on where to resume


@needs_slurm
def test_a_requeue_leaves_no_trainer_of_the_previous_attempt_running(workdir, env, fake_swift, trainers) -> None:
    local_recipe(workdir, "[slurm]\nnodes = 1\nrequeue = true")
    run_id, job_id = submit(workdir, env | {"FAKE_SWIFT_MODE": "elastic"})
    (trainer,) = wait_until(trainers, TIMEOUT, "the first attempt's trainer to start")
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    wait_until(lambda: job_state(job_id) == "PENDING", TIMEOUT, "the first attempt to end")
    assert ended(trainer)  # its session was outside the group swift's runner signals; it is gone all the same
    assert record(workdir, run_id)["extra"]["slurm"]["interrupted_by"] == "SIGTERM"
    assert "queued" in mhsft("runs", env=env | {"COLUMNS": "300"}, cwd=workdir).stdout  # waiting for attempt 1
    assert mhsft("cancel", run_id, env=env, cwd=workdir).returncode == 0


def test_every_node_resumes_from_the_checkpoint_node_0_chose(tmp_path) -> None:
    path = write(tmp_path / ".mhsft" / "runs" / "r1.json", json.dumps({
        "id": "r1", "command": "sft", "recipe": None, "recipe_name": None, "recipe_sha256": None, "argv": [],
        "env": {}, "secrets": [], "cwd": str(tmp_path), "versions": {}, "started_at": "2026", "status": "running",
        "extra": {"slurm": {"job_id": "5", "state": "RUNNING"}},
    }))  # fmt: skip
    out = tmp_path / "out"
    first = Path(attempt.choose(tmp_path, "r1", 0, out).run_dir)
    for step in (2, 4):
        write(first / f"checkpoint-{step}" / "trainer_state.json", "{}")
    chosen = attempt.choose(tmp_path, "r1", 1, out)  # node 0 after a requeue
    assert chosen.resume_from == str(first / "checkpoint-4") and chosen.run_dir != str(first)
    write(first / "checkpoint-6" / "trainer_state.json", "{}")  # a save of the old attempt lands late
    assert attempt.chosen(tmp_path, "r1", 1) == chosen  # node 1 takes node 0's word, not its own look
    assert read_record(path).run_dir == chosen.run_dir


def test_a_late_last_write_of_an_old_attempt_leaves_the_new_attempts_record_alone(tmp_path) -> None:
    path = write(tmp_path / ".mhsft" / "runs" / "r2.json", json.dumps({
        "id": "r2", "command": "sft", "recipe": None, "recipe_name": None, "recipe_sha256": None, "argv": [],
        "env": {}, "secrets": [], "cwd": str(tmp_path), "versions": {}, "started_at": "2026", "status": "running",
        "run_dir": "/out/v1", "extra": {"slurm": {"job_id": "5", "state": "RUNNING", "restarts": 1}},
    }))  # fmt: skip
    node._finish(path, 0, runner.Outcome(143, signal.SIGTERM), 12.5)  # attempt 0's runner, after attempt 1 began
    after = json.loads(path.read_text())
    assert after["status"] == "running" and after.get("exit_code") is None and after["run_dir"] == "/out/v1"
    assert after["extra"]["slurm"].get("interrupted_by") is None
    node._finish(path, 1, runner.Outcome(0), 30.0)
    assert json.loads(path.read_text())["status"] == "succeeded"


def test_record_updates_wait_for_each_other(tmp_path) -> None:
    path = write(tmp_path / ".mhsft" / "runs" / "r3.json", json.dumps({
        "id": "r3", "command": "sft", "recipe": None, "recipe_name": None, "recipe_sha256": None, "argv": [],
        "env": {}, "secrets": [], "cwd": str(tmp_path), "versions": {}, "started_at": "2026",
    }))  # fmt: skip
    other = threading.Thread(target=store.update, args=(path, lambda r: r.extra.update(b=2) or True))

    def first(record) -> bool:  # while this update holds the record, another one starts and must wait
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()
        record.extra["a"] = 1
        return True

    store.update(path, first)
    other.join(timeout=30)
    assert json.loads(path.read_text())["extra"] == {"a": 1, "b": 2}  # neither update lost


# --- item 13: a node checks its secrets before starting swift


@needs_slurm
def test_a_node_without_the_swanlab_key_stops_before_swift_and_says_why(workdir, env, fake_swift) -> None:
    local_recipe(workdir, '[slurm]\nnodes = 1\nsbatch_args = ["--hold"]', mode="cloud")
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    run_id, job_id = submit(workdir, env, "--no-preflight")
    (workdir / ".env").unlink()  # gone by the time the job starts
    subprocess.run(["scontrol", "release", job_id], check=True)
    rec = over(workdir, run_id)
    assert rec["status"] == "failed" and fake_swift.calls() == [], rec
    error = rec["extra"]["node_check"]
    assert "SWANLAB_API_KEY" in error and str(workdir / ".env") in error and "swift was not started" in error
    logs = mhsft("logs", run_id, env=env, cwd=workdir)
    assert "SWANLAB_API_KEY" in logs.stdout and "Traceback" not in logs.stdout and SECRET not in logs.stdout
    shown = mhsft("runs", "show", run_id, env=env, cwd=workdir)
    assert "node check" in shown.stdout and "SWANLAB_API_KEY" in shown.stdout
