"""Checkpoint resolution and `mhsft infer|deploy|export|runs` against a fake swift that lays out 4.6's tree."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mhsft.errors import MhsftError
from mhsft.runs import checkpoints

from support.environment import SECRET
from support.running import mhsft, write
from support.waiting import wait_until


def layout(run_dir: Path, steps: list[int], link: int | None = None, best: int | None = None) -> None:
    for step in steps:
        ckpt = run_dir / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        state = {"best_model_checkpoint": str(run_dir / f"checkpoint-{best}") if best else None}
        (ckpt / "trainer_state.json").write_text(json.dumps(state))
    if link is not None:
        (run_dir / "last-checkpoint").symlink_to(run_dir / f"checkpoint-{link}")


def test_latest_is_by_version_number_then_link_then_highest_step(tmp_path: Path) -> None:
    out = tmp_path / "out"
    layout(out / "v2-20260101-000000", [5, 40, 100])
    layout(out / "v10-20250101-000000", [10, 9, 200], link=9)  # newest by N although older by name and mtime
    os.utime(out / "v10-20250101-000000", (0, 0))
    (out / "v3-not-a-version").mkdir()
    assert checkpoints.resolve("latest", tmp_path, output_dir=out) == out / "v10-20250101-000000" / "checkpoint-9"
    assert checkpoints.latest(out / "v2-20260101-000000") == out / "v2-20260101-000000" / "checkpoint-100"


def test_best_comes_from_trainer_state(tmp_path: Path) -> None:
    run = tmp_path / "out" / "v0-20260101-000000"
    layout(run, [10, 20], best=10)
    assert checkpoints.resolve("best", tmp_path, output_dir=tmp_path / "out") == run / "checkpoint-10"
    other = tmp_path / "other" / "v0-20260101-000000"
    layout(other, [10])
    with pytest.raises(MhsftError, match="no best_model_checkpoint is recorded"):
        checkpoints.resolve("best", tmp_path, output_dir=tmp_path / "other")


def test_nothing_found_says_what_was_searched(tmp_path: Path) -> None:
    with pytest.raises(MhsftError, match=r"no successful `mhsft train` run is recorded in .*\.mhsft/runs"):
        checkpoints.resolve("latest", tmp_path)
    (tmp_path / "out" / "v0-20260101-000000").mkdir(parents=True)
    with pytest.raises(MhsftError, match=r"no checkpoint-STEP folder was found in the recipe's output_dir"):
        checkpoints.resolve("latest", tmp_path, output_dir=tmp_path / "out")
    with pytest.raises(MhsftError, match="no such folder"):
        checkpoints.resolve("does/not/exist", tmp_path)


@pytest.fixture
def trained(workdir: Path, env: dict, fake_swift) -> Path:
    """A recipe trained once with the fake swift: out/v0-.../checkpoint-10, -20 and a last-checkpoint link."""
    write(workdir / "data" / "train.jsonl", "{}\n")
    write(workdir / "data" / "val.jsonl", "{}\n{}\n")
    (workdir / "model").mkdir()
    write(
        workdir / "r.toml",
        '[swanlab]\nmode = "local"\n[sft]\nmodel = "model"\ndataset = ["data/train.jsonl"]\n'
        'output_dir = "out"\n[infer]\nmax_new_tokens = 64\n[deploy]\ninfer_backend = "lmdeploy"\ntp = 2\n',
    )
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    (run_dir,) = (workdir / "out").glob("v0-*")
    return run_dir / "checkpoint-20"


def swift_call(fake_swift, command: str) -> list[str]:
    calls = [c for c in fake_swift.calls() if c["argv"][0] == command]
    assert calls, f"swift {command} was not called"
    return calls[-1]["argv"]


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(f"--{flag}") + 1]


def test_infer_batch_on_the_newest_checkpoint_with_no_path_typed(workdir, env, fake_swift, trained) -> None:
    result = mhsft(
        "infer",
        "--dataset",
        "data/val.jsonl",
        "--backend",
        "pt",
        "--result-path",
        "res.jsonl",
        "--temperature",
        "0",
        "--no-stream",
        env=env,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert "`pt` is the old name of `transformers`" in result.stderr
    argv = swift_call(fake_swift, "infer")
    assert value(argv, "adapters") == str(trained)
    assert value(argv, "infer_backend") == "transformers"
    assert value(argv, "val_dataset") == str(workdir / "data" / "val.jsonl")
    assert value(argv, "result_path") == str(workdir / "res.jsonl")
    assert value(argv, "stream") == "false" and value(argv, "temperature") == "0.0"
    assert "--dataset" not in argv  # a bare --dataset would drop into interactive mode
    rec = json.loads(sorted((workdir / ".mhsft" / "runs").glob("*-infer-*.json"))[0].read_text())
    assert rec["command"] == "infer" and rec["checkpoint"] == str(trained) and rec["status"] == "succeeded"


def test_infer_recipe_defaults_and_backend_options(workdir, env, fake_swift, trained) -> None:
    result = mhsft(
        "infer",
        "r.toml",
        "--backend",
        "lmdeploy",
        "--tp",
        "2",
        "--session-len",
        "4096",
        "--cache-fraction",
        "0.5",
        "--dry-run",
        env=env,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    for expected in (
        "--max_new_tokens 64",
        "--infer_backend lmdeploy",
        "--lmdeploy_tp 2",
        "--lmdeploy_session_len 4096",
        "--lmdeploy_cache_max_entry_count 0.5",
        f"--adapters {trained}",
    ):
        assert expected in result.stdout
    assert "interactive chat" in result.stderr
    bad = mhsft("infer", "--tp", "2", env=env, cwd=workdir)
    assert bad.returncode == 2 and "option --tp" in bad.stderr
    bad = mhsft("infer", "--backend", "tgi", env=env, cwd=workdir)
    assert bad.returncode == 2 and "option --backend" in bad.stderr and "tgi" in bad.stderr


def test_export_merge_default_location_and_overwrite(workdir, env, fake_swift, trained) -> None:
    assert mhsft("export", "--merge-lora", env=env, cwd=workdir).returncode == 0
    argv = swift_call(fake_swift, "export")
    assert value(argv, "merge_lora") == "true" and value(argv, "output_dir") == f"{trained}-merged"
    assert "--merge_dtype" not in argv
    Path(f"{trained}-merged").mkdir()
    again = mhsft("export", "--merge-lora", env=env, cwd=workdir)
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert mhsft("export", "--merge-lora", "--overwrite", env=env, cwd=workdir).returncode == 0
    assert value(swift_call(fake_swift, "export"), "exist_ok") == "true"
    assert mhsft("export", "--merge-lora", "-o", "merged", env=env, cwd=workdir).returncode == 0
    assert value(swift_call(fake_swift, "export"), "output_dir") == str(workdir / "merged")
    nothing = mhsft("export", env=env, cwd=workdir)
    assert nothing.returncode == 2 and "nothing to export" in nothing.stderr


def test_export_push_token_only_in_the_environment(workdir, env, fake_swift, trained) -> None:
    missing = mhsft("export", "--push", "hf:alice/mh-lora", env=env, cwd=workdir)
    assert missing.returncode == 2 and "needs HF_TOKEN" in missing.stderr
    assert not [c for c in fake_swift.calls() if c["argv"][0] == "export"]
    write(workdir / ".env", f"HF_TOKEN={SECRET}\nMODELSCOPE_API_TOKEN=ms-{SECRET}\n")
    result = mhsft("export", "--merge-lora", "--push", "modelscope:alice/mh-7b", "-o", "ignored", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "the output folder is ignored" in result.stderr
    call = [c for c in fake_swift.calls() if c["argv"][0] == "export"][-1]
    argv = call["argv"]
    assert value(argv, "push_to_hub") == "true" and value(argv, "hub_model_id") == "alice/mh-7b"
    assert "--use_hf" not in argv and "--output_dir" not in argv and "--hub_token" not in argv
    assert not any(SECRET in t for t in argv) and call["env"]["MODELSCOPE_API_TOKEN"] == f"ms-{SECRET}"
    assert mhsft("export", "--push", "hf:alice/mh-lora", env=env, cwd=workdir).returncode == 0
    assert value(swift_call(fake_swift, "export"), "use_hf") == "true"
    bad = mhsft("export", "--push", "github:alice/x", env=env, cwd=workdir)
    assert bad.returncode == 2 and "modelscope:OWNER/NAME" in bad.stderr
    assert SECRET not in "".join(p.read_text() for p in (workdir / ".mhsft").rglob("*.json"))


def test_run_option_and_runs_listing(workdir, env, fake_swift, trained) -> None:
    assert mhsft("train", "r.toml", env=env | {"FAKE_SWIFT_STEPS": "5,7"}, cwd=workdir).returncode == 0
    records = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*-sft-*.json")]
    first = min(records, key=lambda r: r["run_dir"])["id"]
    assert mhsft("infer", "--run", first, "--dry-run", env=env, cwd=workdir).stdout.count(str(trained)) == 1
    newest = mhsft("infer", "--dry-run", env=env, cwd=workdir)
    (second,) = (workdir / "out").glob("v1-*")
    assert str(second / "checkpoint-7") in newest.stdout
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, cwd=workdir)
    assert listing.returncode == 0 and first in listing.stdout and "succeeded" in listing.stdout
    assert "checkpoint-7" in listing.stdout
    unknown = mhsft("infer", "--run", "nope", env=env, cwd=workdir)
    assert unknown.returncode == 2 and "matches no run" in unknown.stderr


def port_is_free(port: int) -> bool:
    """Nothing listens there any more (connecting is refused) and a new server could bind it."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do, past TIME_WAIT
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def with_backend(env: dict, folder: Path, name: str, body: str = "") -> dict:
    """`env` with a stand-in package `name` importable (the fake swift stands in for the real backend's work)."""
    write(folder / name / "__init__.py", body)
    return env | {"PYTHONPATH": f"{folder}{os.pathsep}{env.get('PYTHONPATH', '')}"}


def test_deploy_waits_until_ready_then_ctrl_c_stops_it(workdir, env, fake_swift, trained, tmp_path) -> None:
    env = with_backend(env, tmp_path / "backends", "lmdeploy")  # the recipe's [deploy] backend
    with socket.socket() as busy:  # the requested port is taken: mhsft moves to the next free one and says so
        busy.bind(("", 0))
        taken = busy.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "mhsft", "deploy", "r.toml", "--port", str(taken), "--served-model-name", "mh-test"],
            cwd=workdir,
            env=env | {"FAKE_SWIFT_MODE": "serve"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if line.startswith("ready:") or not line:
                break
    text = "".join(lines)
    assert "ready: OpenAI-compatible API at http://127.0.0.1:" in text, text
    assert f"port {taken} is in use" in text
    base = text.split("API at ")[1].split()[0]
    port = int(base.split(":")[2].split("/")[0])
    assert port != taken
    with urllib.request.urlopen(f"{base}/models", timeout=5) as response:
        assert json.load(response)["data"][0]["id"] == "mh-test"
    assert "curl " in proc.stderr.readline() + proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    wait_until(lambda: port_is_free(port), 10, f"port {port} to be free")
    argv = swift_call(fake_swift, "deploy")
    assert value(argv, "port") == str(port) and value(argv, "infer_backend") == "lmdeploy"
    assert value(argv, "lmdeploy_tp") == "2"  # the recipe's old `tp`, translated for lmdeploy
    assert "--api_key" not in argv


def test_deploy_api_key_goes_through_the_entry_point_not_argv(workdir, env, fake_swift, trained, tmp_path) -> None:
    write(workdir / ".env", f"MHSFT_DEPLOY_API_KEY={SECRET}\n")
    dry = mhsft("deploy", "--dry-run", env=env, cwd=workdir)
    assert dry.returncode == 0 and "-m mhsft.deploy_entry" in dry.stdout
    assert 'MHSFT_DEPLOY_API_KEY="$MHSFT_DEPLOY_API_KEY"' in dry.stdout and SECRET not in dry.stdout + dry.stderr
    # the entry point hands the key to swift's deploy_main in-process: a stand-in swift package records it
    fake_pkg = tmp_path / "fakepkg" / "swift"
    write(fake_pkg / "__init__.py", "")
    write(
        fake_pkg / "pipelines.py",
        "import json, os, sys\ndef deploy_main(argv):\n"
        "    cmdline = open(f'/proc/{os.getpid()}/cmdline').read()\n"
        "    print(json.dumps({'argv': argv, 'cmdline': cmdline, 'env': os.environ.get('MHSFT_DEPLOY_API_KEY')}))\n",
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-m", "mhsft.deploy_entry", "--port", "9"],
        capture_output=True,
        text=True,
        env=env | {"MHSFT_DEPLOY_API_KEY": SECRET, "PYTHONPATH": f"{fake_pkg.parent}:{src}"},
    )
    seen = json.loads(out.stdout)
    assert seen["argv"] == ["--port", "9", "--api_key", SECRET]
    assert SECRET not in seen["cmdline"] and seen["env"] is None


def test_recipe_deploy_and_export_values_are_defaults(workdir, env, fake_swift, trained) -> None:
    write(
        workdir / "d.toml",
        '[swanlab]\nmode = "local"\n[sft]\nmodel = "model"\ndataset = ["data/train.jsonl"]\n'
        'output_dir = "out"\n[deploy]\nhost = "0.0.0.0"\nport = 9001\n[export]\noutput_dir = "merged-here"\n',
    )
    dry = mhsft("deploy", "d.toml", "--dry-run", env=env, cwd=workdir)
    assert "--host 0.0.0.0" in dry.stdout and "--port 9001" in dry.stdout
    dry = mhsft("deploy", "d.toml", "--port", "9002", "--dry-run", env=env, cwd=workdir)
    assert "--port 9002" in dry.stdout
    dry = mhsft("export", "d.toml", "--merge-lora", "--dry-run", env=env, cwd=workdir)
    assert f"--output_dir {workdir / 'merged-here'}" in dry.stdout


def test_an_empty_newest_version_folder_is_passed_over(workdir, env, fake_swift, trained) -> None:
    (workdir / "out" / "v1-20260101-000009").mkdir()  # a run that died before its first checkpoint
    dry = mhsft("infer", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert dry.returncode == 0 and f"--adapters {trained}" in dry.stdout


def test_best_pointing_at_a_missing_folder_is_not_used(tmp_path: Path) -> None:
    run = tmp_path / "out" / "v0-20260101-000000"
    layout(run, [10])
    (run / "checkpoint-10" / "trainer_state.json").write_text('{"best_model_checkpoint": "/gone/checkpoint-3"}')
    with pytest.raises(MhsftError, match="no best_model_checkpoint"):
        checkpoints.resolve("best", tmp_path, output_dir=tmp_path / "out")
    (run / "checkpoint-10" / "trainer_state.json").write_text("[1]")  # valid JSON, not an object
    with pytest.raises(MhsftError, match="no best_model_checkpoint"):
        checkpoints.resolve("best", tmp_path, output_dir=tmp_path / "out")


def test_a_half_written_checkpoint_is_passed_over(tmp_path: Path) -> None:
    run = tmp_path / "out" / "v0-20260101-000000"
    layout(run, [10])
    (run / "checkpoint-20").mkdir()  # interrupted while saving: no trainer_state.json yet
    assert checkpoints.resolve("latest", tmp_path, output_dir=tmp_path / "out") == run / "checkpoint-10"


def test_without_a_recipe_the_runs_own_recipe_gives_the_defaults(workdir, env, fake_swift, trained) -> None:
    """`mhsft infer` (no RECIPE) once ignored the run's [infer] max_new_tokens and asked for 2,000 tokens a prompt."""
    for command, expected in (("infer", "--max_new_tokens 64"), ("deploy", "--lmdeploy_tp 2")):
        dry = mhsft(command, "--dry-run", env=env, cwd=workdir)
        assert dry.returncode == 0 and expected in dry.stdout and f"--adapters {trained}" in dry.stdout, dry.stderr
        records = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*-sft-*.json")]
        by_run = mhsft(command, "--run", records[0]["id"], "--dry-run", env=env, cwd=workdir)
        assert expected in by_run.stdout
    (workdir / "r.toml").unlink()  # the recipe is gone: a warning, swift's own defaults
    dry = mhsft("infer", "--dry-run", env=env, cwd=workdir)
    assert dry.returncode == 0 and "--max_new_tokens" not in dry.stdout and "cannot be loaded" in dry.stderr


def test_ctrl_d_ends_the_chat_cleanly_and_the_run_succeeds(workdir, env, fake_swift, trained, tmp_path) -> None:
    """swift 4.6's chat reads prompts with input(): the end of input was an EOFError traceback and a failed run."""
    package = tmp_path / "chat-swift" / "swift"  # stands in for swift.pipelines in the chat's own process
    write(package / "__init__.py", "")
    write(
        package / "pipelines.py",
        "import sys\ndef infer_main(args):\n    print('args', args)\n    while True:\n"
        "        print('answer to', input('<<< '))\n",
    )
    chat_env = env | {"PYTHONPATH": f"{package.parent}{os.pathsep}{env.get('PYTHONPATH', '')}"}
    result = mhsft("infer", env=chat_env, cwd=workdir, input="hello\n")  # then the input ends: Ctrl-D
    assert result.returncode == 0, result.stderr
    assert "answer to hello" in result.stdout and f"'--adapters', '{trained}'" in result.stdout
    assert "Traceback" not in result.stderr and "EOFError" not in result.stderr
    rec = json.loads(sorted((workdir / ".mhsft" / "runs").glob("*-infer-*.json"))[-1].read_text())
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0


def test_a_backend_that_does_not_import_stops_before_any_model_loads(workdir, env, fake_swift, trained, tmp_path):
    """lmdeploy missing once meant loading the model (minutes on a 32B), then swift's ModuleNotFoundError."""
    gone = mhsft("deploy", env=env, cwd=workdir)  # the run's recipe: [deploy] infer_backend = "lmdeploy"
    assert gone.returncode == 2 and "the lmdeploy backend is not installed" in gone.stderr
    assert "pip install lmdeploy" in gone.stderr and "--backend transformers" in gone.stderr
    broken = with_backend(env, tmp_path / "backends", "vllm", "raise ImportError('libcudart.so.12: cannot open')")
    result = mhsft("infer", "--backend", "vllm", "--dataset", "data/val.jsonl", env=broken, cwd=workdir)
    assert result.returncode == 2 and "the vllm backend does not import (ImportError: libcudart" in result.stderr
    assert [c["argv"][0] for c in fake_swift.calls()] == ["sft"]  # no swift infer or deploy was started
    doctor = mhsft("doctor", "r.toml", "--json", "--timeout", "1", env=env, cwd=workdir)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert (
        checks["recipe deploy backend"]["status"] == "fail"
        and "pip install lmdeploy" in checks["recipe deploy backend"]["fix"]
    )
