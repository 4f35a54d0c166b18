"""`[swanlab] mode = "offline"` and `mhsft sync`: the real swanlab SDK writes the local log (the fake swift logs
through it as swift's callback would), the SDK's own sync uploads it to the SwanLab stand-in on 127.0.0.1, and
the stand-in keeps every step it received."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.environment import SECRET
from support.running import local_recipe, mhsft, recorded, write
from support.swanlab_server import SwanLabCloud
from support.waiting import scaled, wait_until

GOOD = "good-key-0123456789"
STEPS = 30


@pytest.fixture
def cloud():
    server = SwanLabCloud().start()
    yield server
    server.uploads.release.set()
    server.stop()


@pytest.fixture
def offline(workdir: Path, env: dict[str, str], cloud: SwanLabCloud) -> dict[str, str]:
    """An offline recipe (r.toml), the key in .env, SwanLab's host at the stand-in, the fake swift logging 30 steps."""
    local_recipe(workdir, mode="offline")
    write(workdir / ".env", f"SWANLAB_API_KEY={GOOD}\n")
    return env | {"SWANLAB_API_HOST": cloud.url, "FAKE_SWIFT_SWANLAB": str(STEPS)}


def train(workdir: Path, env: dict[str, str], *args: str) -> dict:
    result, record = recorded("train", "r.toml", *args, env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return record


def logged(record: dict) -> list[tuple[int, float]]:
    """(step, loss) of each row of the run's logging.jsonl."""
    rows = [json.loads(line) for line in (Path(record["run_dir"]) / "logging.jsonl").read_text().splitlines()]
    return [(int(r["global_step/max_steps"].split("/")[0]), r["loss"]) for r in rows if "loss" in r]


def test_offline_training_logs_locally_in_the_runs_folder_without_the_key(workdir, offline, fake_swift) -> None:
    record = train(workdir, offline)
    call = fake_swift.calls()[-1]
    argv, child_env = call["argv"], call["env"]
    assert argv[argv.index("--swanlab_mode") + 1] == "local"  # swift knows only cloud | local
    sid = record["swanlab_run_id"]
    assert child_env["SWANLAB_LOG_DIR"] == str(workdir / "swanlog" / sid)
    assert "SWANLAB_API_KEY" not in child_env and GOOD not in json.dumps(call)  # nothing reaches SwanLab from here
    assert list((workdir / "swanlog" / sid).glob(f"run-*-{sid}/run-{sid}.swanlab"))
    shown = mhsft("runs", "show", record["id"], env=offline, cwd=workdir)
    assert f"not uploaded yet: mhsft sync {record['id']}" in shown.stdout


def test_dry_run_says_it_is_tracked_locally_and_uploaded_by_sync(workdir, offline) -> None:
    result = mhsft("train", "r.toml", "--dry-run", env=offline, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "offline: tracked locally, uploaded with `mhsft sync`" in result.stderr
    assert "--swanlab_mode local" in result.stdout


def test_sync_uploads_each_step_once_under_the_run_id_however_often_it_runs(workdir, offline, cloud) -> None:
    record = train(workdir, offline)
    sid = record["swanlab_run_id"]
    for _ in range(3):
        result = mhsft("sync", record["id"], env=offline, cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert list(cloud.uploads.experiments) == [sid]  # one experiment, the id mhsft assigned
        experiment = cloud.uploads.experiments[sid]
        assert experiment.scalars["train/loss"] == logged(record)  # each step once, the values logged
        assert experiment.state == "FINISHED"
    assert f"uploaded to step {STEPS}, all of it" in result.stderr
    url = f"{cloud.url}/@alice/unit-proj/runs/{sid}"
    assert url in result.stderr
    shown = mhsft("runs", "show", record["id"], env=offline, cwd=workdir)
    assert f"uploaded to step {STEPS}, all of it" in shown.stdout and url in shown.stdout
    again = mhsft("sync", "--all", env=offline, cwd=workdir)
    assert again.returncode == 0 and "nothing to sync" in again.stderr


def test_a_sync_cut_half_way_then_repeated_gives_the_same_result(workdir, offline, cloud) -> None:
    record = train(workdir, offline)
    cloud.uploads.cut_scalars = True  # the first half of the scalars arrive, then the link hangs
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "sync", "--timeout", "10"],
        env=offline,
        cwd=workdir,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = proc.communicate(timeout=scaled(120))
    assert proc.returncode == 1, stderr
    assert "did not finish" in stderr and "sends only the rest" in stderr
    experiment = cloud.uploads.experiments[record["swanlab_run_id"]]
    assert 0 < len(experiment.scalars["train/loss"]) < STEPS
    cloud.uploads.release.set()
    result = mhsft("sync", env=offline, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert experiment.scalars["train/loss"] == logged(record)


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, their children, ...), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def test_the_key_is_never_on_a_command_line_or_in_the_childs_environment(workdir, offline, cloud) -> None:
    record = train(workdir, {**offline, "SWANLAB_ROOT": str(workdir / "root")})
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    cloud.keys[SECRET] = "alice"
    cloud.uploads.cut_scalars = True  # holds the sync open while the processes are read
    proc = subprocess.Popen([sys.executable, "-m", "mhsft", "sync", "--timeout", "20"], env=offline, cwd=workdir)
    try:
        wait_until(lambda: cloud.uploads.experiments.get(record["swanlab_run_id"]), 60, "the sync's experiment")
        seen = b""
        for pid in [proc.pid, *descendants(proc.pid)]:
            for name in ("cmdline", "environ"):
                try:
                    seen += Path(f"/proc/{pid}/{name}").read_bytes()
                except OSError:
                    continue
        assert b"mhsft.process.isolated" in seen  # the sync's child was among them
        assert SECRET.encode() not in seen
    finally:
        cloud.uploads.release.set()
        proc.wait(60)


def test_a_rejected_key_exits_3_and_uploads_nothing(workdir, offline, cloud) -> None:
    record = train(workdir, offline)
    write(workdir / ".env", "SWANLAB_API_KEY=wrong-key-0123456789\n")
    result = mhsft("sync", record["id"], env=offline, cwd=workdir)
    assert result.returncode == 3, result.stderr
    assert "rejected" in result.stderr and "Nothing was uploaded" in result.stderr
    assert cloud.uploads.experiments == {}
    write(workdir / ".env", f"SWANLAB_API_KEY={GOOD}\n")
    assert mhsft("sync", record["id"], env=offline, cwd=workdir).returncode == 0
    assert cloud.uploads.experiments[record["swanlab_run_id"]].scalars["train/loss"] == logged(record)


def test_sync_of_a_run_without_a_local_log_is_an_error(workdir, offline, env) -> None:
    record = train(workdir, offline)
    sid = record["swanlab_run_id"]
    for folder in (workdir / "swanlog" / sid).glob("run-*"):
        os.rename(folder, workdir / folder.name)
    result = mhsft("sync", record["id"], env=offline, cwd=workdir)
    assert result.returncode == 2 and f"no folder run-*-{sid}" in result.stderr, result.stderr
    cloud_run = train(workdir, offline | {"FAKE_SWIFT_SWANLAB": "0"}, "--set", "swanlab.mode=cloud", "--no-preflight")
    result = mhsft("sync", cloud_run["id"], env=offline, cwd=workdir)
    assert result.returncode == 2 and "cloud mode" in result.stderr, result.stderr


def test_sync_all_uploads_every_offline_run_not_yet_uploaded(workdir, offline, cloud) -> None:
    first, second = train(workdir, offline), train(workdir, offline)
    result = mhsft("sync", "--all", env=offline, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert set(cloud.uploads.experiments) == {first["swanlab_run_id"], second["swanlab_run_id"]}
    for record in (first, second):
        assert cloud.uploads.experiments[record["swanlab_run_id"]].scalars["train/loss"] == logged(record)


def test_the_follower_uploads_an_ended_run_once_and_exits(workdir, offline, cloud) -> None:
    record = train(workdir, offline)
    follower = subprocess.run(
        [sys.executable, "-m", "mhsft.sync.follower", record["id"]],
        env=offline,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert follower.returncode == 0, follower.stderr
    assert f"uploaded to step {STEPS}, all of it" in follower.stderr
    assert cloud.uploads.experiments[record["swanlab_run_id"]].scalars["train/loss"] == logged(record)
    assert GOOD not in follower.stderr + follower.stdout


def test_an_attempt_killed_before_its_sdk_wrote_leaves_an_empty_log_that_sync_skips(workdir, offline, cloud) -> None:
    record = train(workdir, offline)
    sid = record["swanlab_run_id"]
    # a requeued attempt killed soon after its start: its SDK had not flushed a byte of its record log yet
    empty = write(workdir / "swanlog" / sid / f"run-20000101_000000-{sid}" / f"run-{sid}.swanlab", "")
    result = mhsft("sync", record["id"], env=offline, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert empty.stat().st_size == 0 and cloud.uploads.experiments[sid].scalars["train/loss"] == logged(record)
