"""GPU nodes without internet, on the real two-node Slurm with the real ms-swift and the tiny model.

The SwanLab stand-in runs on this machine's loopback; the nodes cannot reach it: a `sitecustomize` on the job's
PYTHONPATH refuses, in every Python process of the job (node runner, swift, torchrun's workers), connections to
its port (their view of the host is a closed port). `mhsft submit` and its follower, outside the job, reach it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.environment import base_env
from support.running import mhsft, write
from support.slurmtest import REASON, record, submitted_run
from support.swanlab_server import SwanLabCloud
from support.waiting import ended, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")]
TIMEOUT = 600
GOOD = "good-key-0123456789"
BLOCK = """
import os, socket
_ports = {int(p) for p in os.environ.get("MHSFT_TEST_NODE_BLOCKED_PORTS", "").split(",") if p}
if os.environ.get("SLURM_JOB_ID") and _ports:
    _connect = socket.socket.connect
    def _refuse(self, address):
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in _ports:
            raise ConnectionRefusedError(111, "Connection refused")
        return _connect(self, address)
    socket.socket.connect = _refuse
"""
RECIPE = """
extends = "tiny"
swanlab = {{ mode = "cloud", api_host = "{url}" }}
slurm = {{ nodes = 2, cpus_per_task = 1 }}
env = {{ OMP_NUM_THREADS = 1 }}
"""
TWO_NODE_TINY = {"model": "tiny/model", "dataset": "['tiny/data/train.jsonl']", "ddp_backend": "gloo"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> SimpleNamespace:
    from mhsft.selfcheck.tiny import build

    work = tmp_path_factory.mktemp("slurm-offline")
    build(work / "tiny")
    write(work / ".env", f"SWANLAB_API_KEY={GOOD}\n")
    write(work / "site" / "sitecustomize.py", BLOCK)
    (work / "home").mkdir()
    cloud = SwanLabCloud().start()
    env = base_env(work / "home") | {"COLUMNS": "250", "MHSFT_SYNC_INTERVAL": "3"}
    env |= {"PYTHONPATH": f"{work / 'site'}:{env.get('PYTHONPATH', '')}"}
    env |= {"MHSFT_TEST_NODE_BLOCKED_PORTS": str(cloud.server.server_address[1])}
    yield SimpleNamespace(work=work, env=env, cloud=cloud)
    cloud.uploads.release.set()
    cloud.stop()


def submit(cluster, name: str, steps: int, *sets: str) -> tuple[str, str]:
    write(cluster.work / f"{name}.toml", RECIPE.format(url=cluster.cloud.url))
    sft = TWO_NODE_TINY | {"max_steps": steps, "save_steps": steps, "logging_steps": 1, "output_dir": f"out-{name}"}
    options = ["--set", f"swanlab.log_dir=swanlog-{name}"]
    for s in [*(f"sft.{k}={v}" for k, v in sft.items()), *sets]:
        options += ["--set", s]
    options += ["--preflight-timeout", "60"]  # a loaded machine takes seconds to import the SDK
    result = mhsft("submit", f"{name}.toml", *options, env=cluster.env, cwd=cluster.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return submitted_run(result.stderr)


def test_cloud_mode_on_nodes_that_cannot_reach_swanlab_fails_in_seconds_before_swift(cluster) -> None:
    run_id, _ = submit(cluster, "cloud", 4)  # the preflight here passed: this machine reaches the stand-in
    rec = wait_until(lambda: (r := record(cluster.work, run_id))["status"] == "failed" and r, TIMEOUT, "the failure")
    assert rec["exit_code"] == 3
    cause = rec["extra"]["node_check"]
    assert "node check failed (swanlab)" in cause and "cannot be reached from this node" in cause
    assert "offline_nodes = true" in cause and "swift was not started" in cause
    assert not list((cluster.work / "out-cloud").glob("v*"))  # swift never started
    logs = mhsft("logs", run_id, env=cluster.env, cwd=cluster.work)
    assert "node check failed (swanlab)" in logs.stdout + logs.stderr
    assert "world_size" not in logs.stdout
    runs = mhsft("runs", env=cluster.env, cwd=cluster.work)
    assert "node check failed (swanlab)" in runs.stdout and "failed" in runs.stdout


def test_offline_nodes_train_to_the_end_and_the_follower_uploads_while_and_after(cluster) -> None:
    run_id, job_id = submit(cluster, "offline", 40, "slurm.offline_nodes=true")
    rec = record(cluster.work, run_id)
    follower = rec["extra"]["swanlab_follower"]
    assert Path(follower["log"]).is_file()
    sid = rec["swanlab_run_id"]
    uploads = cluster.cloud.uploads
    # the stand-in has steps before the job has ended
    wait_until(lambda: uploads.experiments.get(sid) and uploads.experiments[sid].scalars.get("train/loss"), TIMEOUT,
               "a first upload while the job runs")  # fmt: skip
    assert record(cluster.work, run_id)["status"] in ("queued", "running")
    wait_until(lambda: ended(follower["pid"]), TIMEOUT, "the follower's last upload after the job's end")
    rec = record(cluster.work, run_id)
    assert rec["status"] == "succeeded", rec
    rows = [json.loads(x) for x in (Path(rec["run_dir"]) / "logging.jsonl").read_text().splitlines()]
    losses = [(int(r["global_step/max_steps"].split("/")[0]), r["loss"]) for r in rows if "loss" in r]
    uploaded = uploads.experiments[sid].scalars["train/loss"]
    assert [s for s, _ in uploaded] == [s for s, _ in losses] == list(range(1, 41))  # each step once
    assert [v for _, v in uploaded] == pytest.approx([v for _, v in losses], rel=1e-6)
    assert list(uploads.experiments) == [sid] and uploads.experiments[sid].state == "FINISHED"
    shown = mhsft("runs", "show", run_id, env=cluster.env, cwd=cluster.work)
    assert "uploaded to step 40, all of it" in shown.stdout
    again = mhsft("sync", run_id, env=cluster.env, cwd=cluster.work)
    assert again.returncode == 0 and uploads.experiments[sid].scalars["train/loss"] == uploaded
    print(f"offline nodes: job {job_id} completed, {len(uploaded)} steps uploaded; follower log {follower['log']}")
