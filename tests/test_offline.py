"""No outside network: a real tiny `mhsft train` (real ms-swift) makes no lookup or connection beyond 127.0.0.1.

Every Python process of the run (mhsft, swift, its workers) loads an audit hook that logs each name lookup and
connection to a host other than loopback; where the machine allows it (root, `unshare -n`), the run also
happens in a network namespace that has only loopback. Slow (a real sft): marked e2e.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.environment import loopback_only
from support.running import mhsft, tiny_fixtures, write
from support.swanlab_server import SwanLabCloud

pytestmark = pytest.mark.e2e

AUDIT = """
import os, sys
LOG = os.environ.get("NET_AUDIT_LOG")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "", None)
def hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    host = host.decode() if isinstance(host, bytes) else host
    if host not in LOOPBACK:
        with open(LOG, "a") as f:
            f.write(f"{event} {host} in {' '.join(sys.argv[:2])}\\n")
if LOG:
    sys.addaudithook(hook)
"""


def test_a_local_train_makes_no_outside_lookup(tmp_path: Path) -> None:
    tiny = tiny_fixtures(tmp_path)
    fx = tiny.fx
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "net.log"
    env = dict(tiny.env)
    env.pop("HF_HUB_OFFLINE")  # mhsft itself must set the offline settings
    env |= {
        "NET_AUDIT_LOG": str(log),
        "PYTHONPATH": f"{hook_dir}:{env.get('PYTHONPATH', '')}",
    }
    argv = [*loopback_only(), sys.executable, "-m", "mhsft", "train", "tiny", "--set", "sft.max_steps=2"]
    result = subprocess.run(argv, env=env, cwd=fx.root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not log.exists(), f"outside lookups:\n{log.read_text()}"
    assert "Repo unknown" not in result.stderr + result.stdout  # ModelScope's listing retries never started


def test_offline_mode_trains_without_network_then_sync_uploads_each_logged_step(tmp_path: Path) -> None:
    """`[swanlab] mode = "offline"`: a real tiny training inside a loopback-only namespace (the stand-in, on the
    host's loopback, cannot be reached from there), then `mhsft sync` outside it against the stand-in."""
    prefix = loopback_only()
    if not prefix:
        pytest.skip("no loopback-only network namespace here (needs root and `unshare -n`)")
    tiny = tiny_fixtures(tmp_path)
    cloud = SwanLabCloud().start()
    try:
        write(tiny.work / ".env", "SWANLAB_API_KEY=good-key-0123456789\n")
        env = tiny.env | {"SWANLAB_API_HOST": cloud.url}
        argv = ["train", "tiny", "--set", "swanlab.mode=offline", "--set", "sft.max_steps=6"]
        argv += ["--set", "sft.logging_steps=1"]
        trained = subprocess.run(
            [*prefix, sys.executable, "-m", "mhsft", *argv], env=env, cwd=tiny.work, capture_output=True, text=True
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert cloud.requests == []  # nothing reached the (unreachable) server while training
        record = json.loads(next((tiny.work / ".mhsft" / "runs").glob("*-sft-*.json")).read_text())
        synced = mhsft("sync", env=env, cwd=tiny.work, timeout=300)
        assert synced.returncode == 0, synced.stderr
        rows = [json.loads(x) for x in (Path(record["run_dir"]) / "logging.jsonl").read_text().splitlines()]
        losses = [(int(r["global_step/max_steps"].split("/")[0]), r["loss"]) for r in rows if "loss" in r]
        uploaded = cloud.uploads.experiments[record["swanlab_run_id"]].scalars["train/loss"]
        assert [s for s, _ in uploaded] == [s for s, _ in losses] == list(range(1, 7))
        assert [v for _, v in uploaded] == pytest.approx([v for _, v in losses], rel=1e-6)
    finally:
        cloud.stop()
