"""The whole chain on the real ms-swift with a tiny local Qwen2 on the CPU (no hub, no GPU, SwanLab local).

Slow (about 4 minutes on 2 cores): marked e2e; `pytest -m "not e2e"` skips them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.environment import SECRET, base_env
from support.running import mhsft, tiny_fixtures, watch_stderr
from support.swanlog import read_scalars
from support.waiting import wait_until

pytestmark = pytest.mark.e2e
TIMEOUT = 600


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """Fixtures built once for the module; MHSFT_TINY_DIR points the built-in `tiny` recipe at them."""
    return tiny_fixtures(tmp_path_factory.mktemp("e2e"))


def records(work: Path, command: str) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (work / ".mhsft" / "runs").glob(f"*-{command}-*.json")]
    return sorted(found, key=lambda r: r["started_at"])


def logged(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r]


def step_of(row: dict) -> int:
    return int(row["global_step/max_steps"].split("/")[0])


@pytest.fixture(scope="module")
def trained(tiny) -> SimpleNamespace:
    """`mhsft train tiny`: a 20-step LoRA run through mhsft, with the preflight (local mode), evaluated every 10."""
    evaluated = ["--set", f"sft.val_dataset=['{tiny.fx.val}']", "--set", "sft.eval_steps=10"]
    result = mhsft("train", "tiny", *evaluated, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (record,) = records(tiny.work, "sft")
    return SimpleNamespace(result=result, record=record, run_dir=Path(record["run_dir"]))


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_train_writes_checkpoints_finite_losses_and_the_same_curve_to_swanlab(tiny, trained) -> None:
    assert "swanlab ok: mode=local" in trained.result.stderr
    record, run_dir = trained.record, trained.run_dir
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert run_dir.parent == tiny.work / "output" and run_dir.name.startswith("v0-")
    checkpoint = run_dir / "checkpoint-20"
    assert (checkpoint / "adapter_config.json").is_file() and (checkpoint / "adapter_model.safetensors").is_file()
    rows = logged(run_dir)
    assert [step_of(r) for r in rows][-1] == 20
    assert all(math.isfinite(r["loss"]) for r in rows)
    swanlab_loss = dict(read_scalars(tiny.work / "swanlog")["train/loss"])
    assert {step_of(r): pytest.approx(r["loss"], rel=1e-6) for r in rows} == swanlab_loss
    # the run id mhsft assigned reached swanlab (through SWANLAB_RUN_ID in swift's environment)
    assert list((tiny.work / "swanlog").glob(f"run-*-{record['swanlab_run_id']}"))
    # no report_to in the recipe: ms-swift's own default reporter (TensorBoard) still writes its logs
    assert list(run_dir.glob("runs/events.out.tfevents.*"))


def test_infer_batch_with_no_checkpoint_typed(tiny, trained) -> None:
    result = mhsft(
        "infer",
        "--backend",
        "transformers",
        "--dataset",
        str(tiny.fx.val),
        "--result-path",
        "res.jsonl",
        "--max-new-tokens",
        "8",
        env=tiny.env,
        cwd=tiny.work,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (tiny.work / "res.jsonl").read_text().splitlines()
    assert len(lines) == len(tiny.fx.val.read_text().splitlines())
    assert all("response" in json.loads(line) for line in lines)
    assert records(tiny.work, "infer")[-1]["checkpoint"] == str(trained.run_dir / "checkpoint-20")


def test_export_merge_lora_loads_and_generates(tiny, trained) -> None:
    result = mhsft("export", "--merge-lora", env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    merged = trained.run_dir / "checkpoint-20-merged"
    code = (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1]); m = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
        "ids = t('two plus three', return_tensors='pt')\n"
        "out = m.generate(**ids, max_new_tokens=5, do_sample=False)\n"
        "print(out.shape[1] - ids['input_ids'].shape[1])\n"
    )
    gen = subprocess.run(
        [sys.executable, "-c", code, str(merged)], capture_output=True, text=True, env=tiny.env, timeout=TIMEOUT
    )
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert int(gen.stdout.strip().splitlines()[-1]) > 0
    again = mhsft("export", "--merge-lora", env=tiny.env, cwd=tiny.work)
    assert again.returncode == 2 and "already exists" in again.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url: str, key: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode() if body else None, headers={"Content-Type": "application/json"}
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, {}


def test_deploy_serves_chat_completions_behind_the_key_and_stops_on_ctrl_c(tiny, trained, tmp_path) -> None:
    port = free_port()
    env = tiny.env | {"MHSFT_DEPLOY_API_KEY": SECRET}
    log = (tmp_path / "deploy.out").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mhsft",
            "deploy",
            "--backend",
            "transformers",
            "--port",
            str(port),
            "--served-model-name",
            "tiny-mh",
        ],
        cwd=tiny.work,
        env=env,
        stdout=log,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, ready = watch_stderr(proc, "ready:")
    try:
        assert ready.wait(TIMEOUT), "".join(lines)[-3000:]
        base = f"http://127.0.0.1:{port}/v1"
        status, listing = http(f"{base}/models")  # swift leaves discovery open
        assert status == 200 and [m["id"] for m in listing["data"]] == ["tiny-mh"]
        chat = {"model": "tiny-mh", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        assert http(f"{base}/chat/completions", None, chat)[0] == 400  # no key: refused (swift answers 400)
        assert http(f"{base}/chat/completions", "wrong-key", chat)[0] == 400
        status, answer = http(f"{base}/chat/completions", SECRET, chat)
        assert status == 200 and isinstance(answer["choices"][0]["message"]["content"], str)
        pid = records(tiny.work, "deploy")[-1]["pid"]
        assert SECRET not in Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 130
    output = (tmp_path / "deploy.out").read_text() + "".join(lines)
    assert SECRET not in output  # swift logs its arguments; mhsft redacts them
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_ctrl_c_stops_the_whole_group_then_resume_continues_the_same_swanlab_run(tiny, trained) -> None:
    sets = ["--set", "sft.max_steps=200", "--set", "sft.save_steps=10", "--set", f"sft.output_dir={tiny.work}/resume"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "train", "tiny", *sets],
        cwd=tiny.work,
        env=tiny.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def first_checkpoint() -> list[Path]:
        assert proc.poll() is None, "training ended before its first checkpoint"
        return list((tiny.work / "resume").glob("v*/checkpoint-10/trainer_state.json"))

    wait_until(first_checkpoint, TIMEOUT, "the first checkpoint", poll=0.2)
    pgid = [r for r in records(tiny.work, "sft") if r["output_dir"].endswith("resume")][-1]["pid"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    wait_until(lambda: not group_alive(pgid), 10, "swift's process group to end after Ctrl-C")
    first = [r for r in records(tiny.work, "sft") if r["output_dir"].endswith("resume")][-1]
    assert first["status"] == "interrupted" and first["exit_code"] == 130
    saved = max(
        int(p.parent.name.split("-")[1]) for p in Path(first["run_dir"]).glob("checkpoint-*/trainer_state.json")
    )

    result = mhsft(
        "train", "tiny", *sets, "--set", "sft.max_steps=30", "--resume", env=tiny.env, cwd=tiny.work, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    second = [r for r in records(tiny.work, "sft") if r["output_dir"].endswith("resume")][-1]
    assert second["resumed_from"] == str(Path(first["run_dir"]) / f"checkpoint-{saved}")
    assert second["swanlab_run_id"] == first["swanlab_run_id"]
    assert second["run_dir"] != first["run_dir"]  # resuming writes a new vN folder
    assert step_of(logged(Path(second["run_dir"]))[0]) > saved


def test_selftest_is_green(tmp_path) -> None:
    env = base_env(tmp_path / "home")
    result = mhsft(
        "selftest", "--workdir", str(tmp_path / "st"), env=env | {"COLUMNS": "200"}, cwd=tmp_path, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count(" ok ") == 5


def test_runs_show_matches_logging_jsonl_and_best_is_the_lowest_eval_loss(tiny, trained) -> None:
    rows = [json.loads(line) for line in (trained.run_dir / "logging.jsonl").read_text().splitlines()]
    train = [[step_of(r), r["loss"]] for r in rows if "loss" in r]
    evals = {step_of(r): r["eval_loss"] for r in rows if "eval_loss" in r}
    assert sorted(evals) == [10, 20]
    run_id = trained.record["id"]  # other tests of this module train too: name the run
    doc = json.loads(mhsft("runs", "show", run_id, "--json", env=tiny.env, cwd=tiny.work).stdout)
    assert doc["id"] == run_id
    assert doc["loss"] == {"train": train, "eval": [[s, v] for s, v in evals.items()]}
    lowest = min(evals, key=evals.get)
    assert doc["best_checkpoint"] == str(trained.run_dir / f"checkpoint-{lowest}")
    result = mhsft("runs", "show", run_id, env=tiny.env, cwd=tiny.work)
    assert result.returncode == 0, result.stderr
    shown = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\S+/checkpoint-\d+)(?:  \((.*)\))?$", result.stdout, re.M)
    assert [int(step) for step, *_ in shown] == [10, 20]
    for step, train_loss, eval_loss, path, marks in shown:
        logged = dict(map(tuple, train))[int(step)]
        assert float(train_loss) == pytest.approx(logged, abs=5e-5) and float(eval_loss) == pytest.approx(
            evals[int(step)], abs=5e-5
        )
        assert ("best" in marks) == (int(step) == lowest) and path == str(trained.run_dir / f"checkpoint-{step}")
    assert "train loss: line, eval loss: x" in result.stdout  # the curve
    # the end of `mhsft train` summed it up
    first, last = train[0], train[-1]
    assert f"loss {first[1]:.4f} (step {first[0]}) -> {last[1]:.4f} (step {last[0]})" in trained.result.stderr
    assert f"newest checkpoint  {trained.run_dir / 'checkpoint-20'}" in trained.result.stderr


CHROMIUM = Path("/usr/bin/chromium")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,800",
    "--virtual-time-budget=10000",
    "--run-all-compositor-stages-before-draw",
]


def chromium(url: str, profile: Path, *action: str) -> str:
    """Load `url` in a fresh headless Chromium profile; return what it printed (the DOM for --dump-dom)."""
    profile.mkdir(parents=True)
    result = subprocess.run(
        [str(CHROMIUM), *HEADLESS, f"--user-data-dir={profile}", *action, url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="the browser test needs /usr/bin/chromium (Debian: apt-get install chromium)"
)
def test_board_in_a_real_browser_shows_the_project_the_experiment_and_train_loss(tiny, trained, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "board", trained.record["id"]],
        cwd=tiny.work,
        env=tiny.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, ready = watch_stderr(proc, "Ctrl-C stops")
    try:
        assert ready.wait(120), "".join(lines)[-3000:]
        text = "".join(lines)
        base = re.search(r"board ready: (http://127\.0\.0\.1:\d+)", text).group(1)
        page = re.search(r"run page: (\S+) \(experiment tiny\)", text).group(1)
        project = chromium(base, tmp_path / "p1", "--dump-dom")
        assert "mhsft-tiny" in project and re.search(r">\s*tiny\s*<", project)  # project and its experiment
        run = chromium(page, tmp_path / "p2", "--dump-dom")
        chart = run.split(">train/loss<", 1)
        assert len(chart) == 2 and "<canvas" in chart[1][:3000]  # the train/loss chart, drawn
        shot = tmp_path / "board.png"
        chromium(page, tmp_path / "p3", f"--screenshot={shot}")
        assert shot.stat().st_size > 10_000
        if os.environ.get("MHSFT_BOARD_SCREENSHOT"):  # keep the artifact (README's picture comes from here)
            shutil.copyfile(shot, os.environ["MHSFT_BOARD_SCREENSHOT"])
        port = int(base.rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
