"""Shared test fixtures: an isolated environment, a fake `swift` on PATH, and ways to run mhsft."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SECRET = "sk-test-SECRET-0123456789abcdef"  # a recognisable fake key; must never show up anywhere
CLOSED = "http://127.0.0.1:9"  # nothing listens there: connection refused at once


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment: no SwanLab/hub variables or secrets from the developer's shell."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "HOME": str(home),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        "HF_HUB_OFFLINE": "1",
        "MODELSCOPE_CACHE": str(home / "modelscope"),
        "SWANLAB_ROOT": str(home / ".swanlab"),
        # nothing beyond 127.0.0.1: hosts a test does not set point at a closed loopback port
        "SWANLAB_API_HOST": CLOSED,
        "MODELSCOPE_ENDPOINT": CLOSED,
        "HF_ENDPOINT": CLOSED,
    }
    return env


@dataclass
class FakeSwift:
    """A fake `swift` first on PATH that logs every call (argv, environment) to a jsonl file."""

    bin_dir: Path
    log: Path

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_swift(tmp_path: Path) -> FakeSwift:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "swift"
    script.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(TESTS)!r})\n"
        "runpy.run_path(" + repr(str(TESTS / "fake_swift.py")) + ", run_name='__main__')\n"
    )
    script.chmod(0o755)
    return FakeSwift(bin_dir, tmp_path / "swift-calls.jsonl")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, made current, with HOME pointing inside tmp."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def env(tmp_path: Path, fake_swift: FakeSwift) -> dict[str, str]:
    """Environment for `mhsft` subprocesses: isolated HOME, the fake swift first on PATH."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    e = base_env(home)
    e["PATH"] = f"{fake_swift.bin_dir}{os.pathsep}{e.get('PATH', '')}"
    e["FAKE_SWIFT_LOG"] = str(fake_swift.log)
    e["MHSFT_NO_DATA_CHECK"] = "1"  # the gate runs the real ms-swift; tests of it use real fixtures
    return e


def mhsft(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `python -m mhsft ARGS` as a user would, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "mhsft", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def local_recipe(folder: Path, extra: str = "", mode: str = "local") -> Path:
    """A small valid recipe with a local dataset file (which exists) and SwanLab in `mode`."""
    write(folder / "data" / "train.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n')
    (folder / "model").mkdir(exist_ok=True)
    return write(
        folder / "r.toml",
        f"""
name = "unit"
[swanlab]
project = "unit-proj"
mode = "{mode}"
[sft]
model = "model"
dataset = ["data/train.jsonl"]
output_dir = "out"
{extra}
""",
    )


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` ends within `timeout` s (a zombie not yet reaped by init counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def loopback_only() -> list[str]:
    """A command prefix that runs in a new network namespace with only `lo` up (root and `unshare -n` needed),
    or [] where the machine does not allow one."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return []
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def watch_stderr(proc: subprocess.Popen, marker: str) -> tuple[list[str], threading.Event]:
    """Collect a text-mode child's stderr lines in the background; the event is set at the first line that
    starts with `marker` (e.g. a server saying it is ready)."""
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(marker):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return lines, ready


def tiny_fixtures(root: Path) -> SimpleNamespace:
    """The tiny model and data built under `root`, a home folder, and an environment whose `tiny` recipe uses
    them (MHSFT_TINY_DIR); the working folder is the fixtures' root."""
    from mhsft.selfcheck.tiny import build

    fx = build(root / "tiny")
    (root / "home").mkdir(exist_ok=True)
    return SimpleNamespace(fx=fx, work=fx.root, env=base_env(root / "home") | {"MHSFT_TINY_DIR": str(fx.root)})


def training_started(
    workdir: Path, env: dict[str, str], fake_swift: FakeSwift, **popen
) -> tuple[subprocess.Popen, dict]:
    """`mhsft train r.toml` in the background until the fake swift has started; returns it and swift's start info
    (pid, grandchild). `popen` goes to Popen (stdout/stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "mhsft", "train", "r.toml"], cwd=workdir, env=env, **popen)
    started = Path(f"{fake_swift.log}.started")
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, json.loads(started.read_text())
