"""GPU nodes without internet, on the real two-node Slurm with the real ms-swift and the tiny model.

The SwanLab and hub stand-ins run on this machine's loopback; the nodes cannot reach them: a `sitecustomize` on
the job's PYTHONPATH refuses, in every Python process of the job (node runner, swift, torchrun's workers),
connections to their ports (their view of the hosts is a closed port). `mhsft submit` and its follower, outside
the job, reach them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.environment import base_env
from support.hub_server import HubStandIn
from support.running import mhsft, write
from support.slurmtest import REASON, job_state, record, submitted_run
from support.swanlab_server import SwanLabCloud
from support.waiting import ended, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(REASON is not None, reason=f"Slurm tests skipped: {REASON}")]
TIMEOUT = 600
GOOD = "good-key-0123456789"
HUB_TOKEN = "ms-good-token-0123456789"  # the hub stand-in's known token
HUB_MODEL = "mhsft/tiny-model"  # the tiny model as the hub stand-in serves it
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
    model = build(work / "tiny").model
    write(work / ".env", f"SWANLAB_API_KEY={GOOD}\nMODELSCOPE_API_TOKEN={HUB_TOKEN}\n")
    write(work / "site" / "sitecustomize.py", BLOCK)
    (work / "home").mkdir()
    cloud, hub = SwanLabCloud().start(), HubStandIn(repos={HUB_MODEL: model}).start()
    env = base_env(work / "home") | {"COLUMNS": "250", "MHSFT_SYNC_INTERVAL": "3", "MODELSCOPE_ENDPOINT": hub.url}
    env |= {"PYTHONPATH": f"{work / 'site'}:{env.get('PYTHONPATH', '')}"}
    blocked = (cloud.server.server_address[1], hub.server.server_address[1])
    env |= {"MHSFT_TEST_NODE_BLOCKED_PORTS": ",".join(map(str, blocked))}
    yield SimpleNamespace(work=work, env=env, cloud=cloud, hub=hub)
    cloud.uploads.release.set()
    cloud.stop()
    hub.stop()


def submit(cluster, name: str, steps: int, *sets: str) -> tuple[str, str]:
    """Submit the tiny 2-node recipe (`sets` are more --set values); (run id, job id)."""
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


def test_a_model_named_by_hub_id_is_downloaded_here_once_and_the_job_trains_from_the_copy(cluster) -> None:
    hub = cluster.hub
    run_id, job_id = submit(cluster, "hubmodel", 4, "slurm.offline_nodes=true", f"sft.model={HUB_MODEL}")
    size = sum(p.stat().st_size for p in hub.repos[HUB_MODEL].iterdir())
    assert hub.served_bytes() == size  # downloaded on the submitting side, before sbatch
    asked = len(hub.requests)
    target = cluster.work / ".mhsft" / "hub-cache" / "modelscope" / HUB_MODEL
    rec = wait_until(lambda: (r := record(cluster.work, run_id))["status"] in ("succeeded", "failed") and r, TIMEOUT,
                     "the job's end")  # fmt: skip
    assert rec["status"] == "succeeded", rec
    assert json.loads((Path(rec["run_dir"]) / "args.json").read_text())["model"] == str(target)
    assert len(hub.requests) == asked  # the nodes never reached the hub (they cannot)
    print(f"hub model: job {job_id} trained from {target} ({size} bytes downloaded before sbatch)")


def test_a_hub_id_left_for_the_nodes_fails_the_node_check_in_seconds_before_swift(cluster) -> None:
    # without offline_nodes the nodes would download the model themselves: the node check finds the hub unreachable
    write(cluster.work / "hubcheck.toml", RECIPE.format(url=cluster.cloud.url))
    sft = TWO_NODE_TINY | {"max_steps": 2, "output_dir": "out-hubcheck", "model": HUB_MODEL}
    options = [x for k, v in sft.items() for x in ("--set", f"sft.{k}={v}")]
    options += ["--set", "swanlab.mode=local", "--no-data-check"]
    result = mhsft("submit", "hubcheck.toml", *options, env=cluster.env, cwd=cluster.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr  # the hub login here passed: this machine reaches the stand-in
    run_id, _ = submitted_run(result.stderr)
    rec = wait_until(lambda: (r := record(cluster.work, run_id))["status"] == "failed" and r, TIMEOUT, "the failure")
    cause = rec["extra"]["node_check"]
    assert rec["exit_code"] == 3 and "node check failed (modelscope)" in cause, cause
    assert "cannot be reached from this node" in cause and "swift was not started" in cause
    assert not list((cluster.work / "out-hubcheck").glob("v*"))


def test_a_requeue_under_offline_nodes_resumes_the_same_local_log_and_cloud_experiment(cluster) -> None:
    before = set(cluster.cloud.uploads.experiments)
    run_id, job_id = submit(cluster, "requeue", 8, "slurm.offline_nodes=true", "slurm.requeue=true", "sft.save_steps=2")
    out, sid = cluster.work / "out-requeue", record(cluster.work, run_id)["swanlab_run_id"]
    wait_until(lambda: list(out.glob("v*/checkpoint-2/trainer_state.json")), TIMEOUT, "the first checkpoint", poll=0.5)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    wait_until(lambda: job_state(job_id) == "PENDING", 120, "the job to be pending again", poll=0.5)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)  # no BeginTime hold
    follower = record(cluster.work, run_id)["extra"]["swanlab_follower"]
    wait_until(lambda: ended(follower["pid"]), TIMEOUT, "the follower's last upload after the job's end")
    rec = record(cluster.work, run_id)
    assert rec["status"] == "succeeded" and rec["extra"]["slurm"]["restarts"] == 1, rec
    folders = sorted((cluster.work / "swanlog-requeue" / sid).glob("run-*"))
    assert len(folders) == 2 and all(f.name.endswith(sid) for f in folders)  # one local log, one folder an attempt
    uploads = cluster.cloud.uploads
    assert set(uploads.experiments) - before == {sid}  # both attempts went into the run's one experiment
    steps = [s for s, _ in uploads.experiments[sid].scalars["train/loss"]]
    second = [json.loads(x) for x in (Path(rec["run_dir"]) / "logging.jsonl").read_text().splitlines()]
    resumed = [int(r["global_step/max_steps"].split("/")[0]) for r in second if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 8, steps  # each step once, across both attempts
    assert set(resumed) <= set(steps), (resumed, steps)  # the resumed attempt's steps went into the same experiment
    print(f"requeue under offline nodes: {len(folders)} log folders, steps uploaded {steps}")
