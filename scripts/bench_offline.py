"""Time what offline tracking costs: the node check, `mhsft sync` of a 10,000-step log, and the follower's lag.

Usage:  .venv/bin/python scripts/bench_offline.py [--steps 10000] [--live-steps 150] [--download-only]
        (--steps 0 skips the big sync)
Uses the SwanLab stand-in from tests/support on 127.0.0.1, the real swanlab SDK (the fake `swift` of
tests/support logs its steps through it in local mode, as swift's callback does) and the real `mhsft sync`:
- the node check (`slurm.node_check.check`) of a cloud-mode recipe against the stand-in and against a closed
  port (goal: <= 5 s);
- `mhsft sync` of a --steps-step log, then a second sync of the same log (goal: <= 30 s; the second adds nothing);
- the follower's lag: a run logging one step a second for --live-steps steps, the real follower (its default
  60 s interval), and for each step the time from when the SDK wrote it to when the stand-in received it
  (goal: <= 90 s);
- the download before the queue: `mhsft submit` (a fake sbatch) of a recipe naming the tiny model by hub id with
  `[slurm] offline_nodes`, from the hub stand-in through the real ModelScope SDK, twice: the download's own time,
  and the bytes and requests the stand-in served on the second submit (goal: no file byte).
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.hub_server import HubStandIn  # noqa: E402
from support.swanlab_server import SwanLabCloud  # noqa: E402

GOOD = "good-key-0123456789"
RECIPE = """
[swanlab]
project = "bench"
mode = "{mode}"
api_host = "{url}"
[sft]
model = "model"
dataset = ["data/train.jsonl"]
"""


def workdir(url: str, mode: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix="mhsft-bench-offline-"))
    (work / "data").mkdir()
    (work / "model").mkdir()
    (work / "data" / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    (work / "r.toml").write_text(RECIPE.format(mode=mode, url=url))
    (work / ".env").write_text(f"SWANLAB_API_KEY={GOOD}\n")
    return work


def environment(work: Path) -> dict[str, str]:
    """mhsft's environment with the fake swift first on PATH (it logs through the real SDK) and no data gate."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    support = REPO / "tests" / "support"
    swift = bin_dir / "swift"
    swift.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(support)!r})\n"
        f"runpy.run_path({str(support / 'fake_swift.py')!r}, run_name='__main__')\n"
    )
    swift.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB_", "MODELSCOPE_", "HF_"))}
    return env | {
        "HOME": str(work),
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        "FAKE_SWIFT_LOG": str(work / "swift.jsonl"),
        "MHSFT_NO_DATA_CHECK": "1",
        "PYTHONPATH": str(REPO / "src"),
    }


def mhsft(*args: str, env: dict[str, str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mhsft", *args], env=env, cwd=cwd, capture_output=True, text=True, **kw
    )


def node_check(url: str) -> None:
    from mhsft.environment import load_environment
    from mhsft.errors import MhsftError
    from mhsft.launch import load_recipe
    from mhsft.recipe.plan import train_plan
    from mhsft.slurm import node_check as check

    for name, host in (("reachable stand-in", url), ("closed port", "http://127.0.0.1:9")):
        work = workdir(host, "cloud")
        environment = load_environment(work / ".env")
        recipe = load_recipe(str(work / "r.toml"), [], environment)
        plan = train_plan(recipe, environment, work, run_id="bench")
        started = time.perf_counter()
        try:
            check.check(plan, recipe, environment, work, "bench")
            result = "ok"
        except MhsftError as exc:
            result = exc.message.split(". Fix:")[0]
        print(f"node check, {name}: {time.perf_counter() - started:.2f} s ({result[:90]})")


def sync_big(cloud: SwanLabCloud, steps: int) -> None:
    work = workdir(cloud.url, "offline")
    env = environment(work) | {"FAKE_SWIFT_SWANLAB": str(steps)}
    started = time.perf_counter()
    trained = mhsft("train", "r.toml", env=env, cwd=work)
    assert trained.returncode == 0, trained.stderr
    print(f"writing a {steps}-step local log (the SDK in local mode): {time.perf_counter() - started:.1f} s")
    for attempt in ("first", "second"):
        before = sum(len(e.arrivals) for e in cloud.uploads.experiments.values())
        started = time.perf_counter()
        done = mhsft("sync", env=env, cwd=work)
        seconds = time.perf_counter() - started
        added = sum(len(e.arrivals) for e in cloud.uploads.experiments.values()) - before
        outcome = f"exit {done.returncode}, {added} scalars sent"
        print(f"mhsft sync of a {steps}-step log, {attempt}: {seconds:.1f} s, {outcome}")


def follower_lag(cloud: SwanLabCloud, steps: int) -> None:
    work = workdir(cloud.url, "offline")
    env = environment(work) | {"FAKE_SWIFT_SWANLAB": str(steps), "FAKE_SWIFT_STEP_S": "1"}
    train = subprocess.Popen([sys.executable, "-m", "mhsft", "train", "r.toml"], env=env, cwd=work,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    runs = work / ".mhsft" / "runs"
    while not (list(runs.glob("*.json")) if runs.is_dir() else []):
        time.sleep(0.2)
    record = next(runs.glob("*.json"))
    run_id, sid = record.stem, json.loads(record.read_text())["swanlab_run_id"]
    follower = subprocess.Popen([sys.executable, "-m", "mhsft.sync.follower", run_id], env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    train.wait()
    follower.wait()
    lags = [
        received - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        for key, _, created, received in cloud.uploads.experiments[sid].arrivals
        if key == "train/loss" and created
    ]
    print(f"follower lag over {len(lags)} steps (one a second, 60 s interval): max {max(lags):.1f} s, "
          f"mean {sum(lags) / len(lags):.1f} s")  # fmt: skip


def hub_download() -> None:
    from mhsft.selfcheck.tiny import build

    work = workdir("http://127.0.0.1:9", "local")
    hub = HubStandIn(repos={"bench/tiny": build(work / "tiny").model}).start()
    recipe = (work / "r.toml").read_text().replace('model = "model"', 'model = "bench/tiny"')
    (work / "r.toml").write_text(recipe + "[slurm]\noffline_nodes = true\n")
    env = environment(work) | {"MODELSCOPE_ENDPOINT": hub.url}
    (work / "bin" / "sbatch").write_text("#!/bin/sh\necho 1\n")
    (work / "bin" / "sbatch").chmod(0o755)
    try:
        for attempt in ("first", "second"):
            asked, started = len(hub.requests), time.perf_counter()
            hub.served.clear()
            done = mhsft("submit", "r.toml", env=env, cwd=work)
            seconds = time.perf_counter() - started
            said = next((ln for ln in done.stderr.splitlines() if ln.startswith("bench/tiny: ")), done.stderr[-300:])
            paths = sorted({path.split("?")[0] for _, path in hub.requests[asked:]})
            served = f"file bytes served {hub.served_bytes()}, {len(hub.requests) - asked} requests {paths}"
            print(f"submit with the download, {attempt}: exit {done.returncode}, {seconds:.1f} s; {said}; {served}")
    finally:
        hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--live-steps", type=int, default=150)
    parser.add_argument("--download-only", action="store_true", help="only the download before the queue")
    options = parser.parse_args()
    hub_download()
    if options.download_only:
        return
    cloud = SwanLabCloud().start()
    try:
        node_check(cloud.url)
        if options.steps:
            sync_big(cloud, options.steps)
        follower_lag(cloud, options.live_steps)
    finally:
        cloud.stop()


if __name__ == "__main__":
    main()
