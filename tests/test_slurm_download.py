"""`mhsft submit` with `[slurm] offline_nodes`: the model named by hub id is downloaded here, before sbatch, by the
real ModelScope / Hugging Face SDK from the hub stand-in, and the nodes get its local folder (a fake sbatch and
the fake swift: what is sent; tests/test_slurm_offline_e2e.py trains from the copy on the real Slurm)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

from test_cli_basics import HEAVY, loaded_modules

from support.environment import SECRET
from support.hub_server import HubStandIn
from support.running import mhsft, write
from support.waiting import wait_until

RECIPE = """
name = "dl"
[swanlab]
project = "p"
mode = "local"
[sft]
model = "tiny/model"
dataset = ["data/train.jsonl"]
output_dir = "out"
[slurm]
offline_nodes = true
"""


@pytest.fixture
def hub(tmp_path: Path):
    from mhsft.selfcheck.tiny import build

    stand_in = HubStandIn(repos={"tiny/model": build(tmp_path / "tiny").model}).start()
    yield stand_in
    stand_in.release.set()
    stand_in.stop()


def setup(workdir: Path, env: dict[str, str], hub: HubStandIn, extra: str = "") -> tuple[dict[str, str], Path]:
    write(workdir / "data" / "train.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n')
    write(workdir / "r.toml", RECIPE + extra)
    mark = workdir.parent / "sbatch-called"
    write(workdir.parent / "bin" / "sbatch", f"#!/bin/sh\ntouch {mark}\necho 7\n").chmod(0o755)
    path = f"{workdir.parent / 'bin'}{os.pathsep}{env['PATH']}"
    return env | {"PATH": path, "MODELSCOPE_ENDPOINT": hub.url, "HF_ENDPOINT": hub.url}, mark


def frozen(workdir: Path) -> tuple[dict, str]:
    """The newest run's frozen recipe and batch script."""
    batch = max((workdir / ".mhsft" / "slurm").glob("*.sbatch"), key=lambda p: p.stat().st_mtime)
    return tomllib.loads(batch.with_suffix(".toml").read_text()), batch.read_text()


@pytest.mark.parametrize("use_hf", [False, True], ids=["modelscope", "huggingface"])
def test_submit_downloads_the_hub_model_once_and_the_nodes_get_its_folder(workdir, env, hub, use_hf) -> None:
    e, mark = setup(workdir, env, hub)
    sets = ["--set", "sft.use_hf=true"] if use_hf else []
    target = workdir / ".mhsft" / "hub-cache" / ("hf" if use_hf else "modelscope") / "tiny" / "model"
    dry = mhsft("submit", "r.toml", "--dry-run", *sets, env=e, cwd=workdir)
    assert dry.returncode == 0, dry.stderr
    assert f"downloaded here  tiny/model -> {target}" in dry.stderr and hub.requests == []
    sdks = HEAVY | {"modelscope_hub", "huggingface_hub"}
    assert loaded_modules(["submit", "r.toml", "--dry-run", *sets], e, workdir) & sdks == set()
    first = mhsft("submit", "r.toml", *sets, env=e, cwd=workdir)
    assert first.returncode == 0, first.stderr
    size = sum(p.stat().st_size for p in hub.repos["tiny/model"].iterdir())
    assert hub.served_bytes() == size and len(hub.served) == 6  # every file once
    assert (target / "model.safetensors").read_bytes() == (hub.repos["tiny/model"] / "model.safetensors").read_bytes()
    recipe, script = frozen(workdir)
    assert recipe["sft"]["model"] == str(target)
    assert f"--model {target}" in script and "--check_model false" in script
    assert "export HF_HUB_OFFLINE=1" in script and "export HF_DATASETS_OFFLINE=1" in script
    assert mark.exists() and "queued as Slurm job 7" in first.stderr
    listed = len(hub.requests)
    hub.served.clear()
    second = mhsft("submit", "r.toml", *sets, env=e, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert hub.served_bytes() == 0 and "already here" in second.stderr  # only the file list was asked for
    metadata = hub.requests[listed:]
    assert metadata and all("/resolve/" not in p and "FilePath" not in p for _, p in metadata), metadata
    assert frozen(workdir)[0]["sft"]["model"] == str(target)


def test_a_complete_download_is_used_when_the_hub_does_not_answer(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    target = workdir / ".mhsft" / "hub-cache" / "modelscope" / "tiny" / "model"
    assert mhsft("submit", "r.toml", env=e, cwd=workdir).returncode == 0
    hub.stop()  # the hub is gone now (a login node that lost its route): the copy here is whole
    mark.unlink()
    again = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "the hub's file list could not be read" in again.stderr and "is used as it is" in again.stderr
    assert mark.exists() and frozen(workdir)[0]["sft"]["model"] == str(target)
    (target / "model.safetensors").write_bytes(b"cut")  # no longer whole: without the hub, nothing to go on
    mark.unlink()
    cut = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert cut.returncode == 3 and "failed before the queue" in cut.stderr and not mark.exists(), cut.stderr


def test_adapters_named_by_hub_id_are_downloaded_too(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    write(workdir.parent / "adapter" / "adapter_config.json", '{"peft_type": "LORA"}')
    hub.repos["tiny/adapter"] = workdir.parent / "adapter"
    result = mhsft("submit", "r.toml", "--set", "sft.adapters=['tiny/adapter']", env=e, cwd=workdir)
    assert result.returncode == 0, result.stderr
    cache = workdir / ".mhsft" / "hub-cache" / "modelscope"
    assert frozen(workdir)[0]["sft"]["adapters"] == [str(cache / "tiny" / "adapter")]
    assert (cache / "tiny" / "adapter" / "adapter_config.json").is_file() and mark.exists()
    assert hub.served["tiny/adapter/adapter_config.json"] == len('{"peft_type": "LORA"}')


def test_an_interrupted_download_resumes_in_the_same_folder(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    big = os.urandom(3 << 20)  # three of the SDK's 1 MiB chunks: about two arrive, then the line goes quiet
    write(hub.repos["tiny/model"] / "shard.bin", "").write_bytes(big)
    hub.hold_after = {"shard.bin": 2 << 20}
    partial = workdir / ".mhsft" / "hub-cache" / "modelscope" / "tiny" / "model" / "shard.bin.incomplete"
    cmd = [sys.executable, "-m", "mhsft", "submit", "r.toml"]
    proc = subprocess.Popen(cmd, env=e, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: partial.is_file() and partial.stat().st_size >= 1 << 20, 60, "a MiB on disk")
    proc.send_signal(signal.SIGINT)  # Ctrl-C: mhsft and its download child stop; nothing is queued
    proc.communicate(timeout=60)
    assert proc.returncode != 0 and not mark.exists()
    kept = partial.stat().st_size
    hub.release.set()
    hub.served.clear()
    again = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert hub.served["tiny/model/shard.bin"] == len(big) - kept  # only what was missing: resumed from the partial file
    assert (partial.parent / "shard.bin").read_bytes() == big and mark.exists()


def test_a_model_too_big_for_the_disk_is_refused_before_any_byte(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    hub.listed_sizes = {"model.safetensors": 1 << 60}  # an exabyte: no disk here has it
    result = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "[sft] model tiny/model needs" in result.stderr and "which has" in result.stderr
    assert "Nothing was downloaded and nothing queued" in result.stderr
    assert "[slurm] download_dir" in result.stderr and "Traceback" not in result.stderr
    assert hub.served_bytes() == 0 and not mark.exists() and not (workdir / ".mhsft" / "runs").exists()


def test_an_unknown_hub_model_is_exit_3_with_the_cause_and_nothing_queued(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    result = mhsft("submit", "r.toml", "--set", "sft.model=tiny/nope", env=e, cwd=workdir)
    assert result.returncode == 3, result.stderr
    assert "the download of [sft] model tiny/nope" in result.stderr and "no such repository" in result.stderr
    assert not mark.exists() and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "sets", "expected"),
    [
        ("download_dir = 5", [], "[slurm] download_dir"),
        ('download_dir = "blocker/cache"', [], "[slurm] download_dir: "),
        ("", ["--set", "sft.dataset=['owner/hub-data']", "--no-data-check"], "the hub dataset owner/hub-data"),
    ],
    ids=["wrong-type", "not-writable", "hub-dataset-without-gate"],
)
def test_bad_download_settings_are_exit_2_naming_the_key(workdir, env, hub, extra, sets, expected) -> None:
    e, mark = setup(workdir, env, hub, extra)
    write(workdir / "blocker", "a file where the download folder should be")
    result = mhsft("submit", "r.toml", *sets, env=e, cwd=workdir)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert not mark.exists() and hub.served_bytes() == 0 and "Traceback" not in result.stderr


def test_the_progress_bar_off_a_terminal_prints_a_line_a_quarter(capsys) -> None:
    from mhsft.slurm.download import Bar

    bar = Bar("org/big")
    for done in (0, 10, 30, 30, 60, 99, 100):
        bar("progress", {"done": done * 10**7, "of": 10**9})
    bar("facts", {})  # other kinds are not progress
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "  org/big: 30%, 300.0 MB of 1.0 GB",
        "  org/big: 60%, 600.0 MB of 1.0 GB",
        "  org/big: 99%, 990.0 MB of 1.0 GB",
        "  org/big: 100%, 1.0 GB of 1.0 GB",
    ]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_or_read_only_disk_during_the_download_is_named_not_the_hub(tmp_path, monkeypatch, code) -> None:
    from mhsft.checks import Check
    from mhsft.environment import Environment
    from mhsft.errors import MhsftError
    from mhsft.process.isolated import Outcome
    from mhsft.slurm import download, hub_download

    def disk_fails(*_args) -> None:
        raise OSError(code, os.strerror(code))  # as the SDK's write lets it through

    monkeypatch.setattr(hub_download, "listing", lambda *_args: {"model.safetensors": 10})
    monkeypatch.setattr(hub_download, "snapshot", disk_fails)
    said: list[tuple[str, object]] = []
    target = tmp_path / "hub-cache" / "modelscope" / "tiny" / "model"
    hub_download.download(
        {"hub": "ms", "repo_id": "tiny/model", "revision": None, "target": str(target)},
        lambda k, v: said.append((k, v)),
    )
    checks = [Check(**v) for k, v in said if k == "check"]
    assert [(c.name, c.detail) for c in checks] == [("target disk", os.strerror(code))]
    wanted = download.Download("model", "tiny/model", "ms", None, target)
    with pytest.raises(MhsftError) as raised:
        download._outcome(wanted, Outcome(checks=checks, facts={"total": "10", "needed": "10"}), Environment({}))
    assert raised.value.exit_code == 2 and os.strerror(code) in raised.value.message
    assert "not the hub" in raised.value.message and "[slurm] download_dir" in raised.value.message


def test_reaping_a_killed_child_ends_though_popens_waitpid_lock_was_left_held() -> None:
    from mhsft.process.isolated import REAP_S, reap

    proc = subprocess.Popen(["sleep", "600"], text=True)
    proc._waitpid_lock.acquire()  # what a Ctrl-C inside Popen.wait, just after it took the lock, leaves behind
    proc.kill()
    started = time.monotonic()
    reap(proc)  # a plain proc.wait() would block here for good
    assert time.monotonic() - started < REAP_S + 30
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)  # reaped: no zombie left


def test_the_hub_token_reaches_no_output_and_no_written_file(workdir, env, hub) -> None:
    e, mark = setup(workdir, env, hub)
    hub.tokens[SECRET] = "alice"  # a real-looking token the stand-in accepts, for the login and the download
    write(workdir / ".env", f"MODELSCOPE_API_TOKEN={SECRET}\n")
    result = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert result.returncode == 0 and mark.exists(), result.stderr
    assert SECRET not in result.stdout + result.stderr
    written = [p for p in workdir.rglob("*") if p.is_file() and p.name != ".env"]
    assert written and not [p for p in written if SECRET.encode() in p.read_bytes()]  # records, script, model files
