"""Running mhsft as a user would: the CLI in a subprocess, small recipes, the fake swift, the tiny fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from support.environment import base_env
from support.waiting import scaled, wait_until


@dataclass
class FakeSwift:
    """A fake `swift` first on PATH that logs every call (argv, environment) to a jsonl file."""

    bin_dir: Path
    log: Path

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def mhsft(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `python -m mhsft ARGS` as a user would, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "mhsft", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        **kw,
    )


def recorded(*args: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `mhsft ARGS` and return the one run record it wrote. Not "the newest": ids made in the same second
    sort by their random suffix."""
    runs = cwd / ".mhsft" / "runs"
    before = set(runs.glob("*.json"))
    result = mhsft(*args, env=env, cwd=cwd)
    (path,) = set(runs.glob("*.json")) - before
    return result, json.loads(path.read_text())


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
    workdir: Path,
    env: dict[str, str],
    fake_swift: FakeSwift,
    args: tuple[str, ...] = ("train", "r.toml"),
    timeout: float = 30.0,
    **popen,
) -> tuple[subprocess.Popen, dict]:
    """`mhsft train r.toml` (or `mhsft ARGS`) in the background until the fake swift has started (within
    `timeout` s); returns it and swift's start info (pid, grandchild). `popen` goes to Popen (stdout/stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "mhsft", *args], cwd=workdir, env=env, **popen)
    started = Path(f"{fake_swift.log}.started")
    wait_until(started.exists, timeout, "the fake swift to start")
    return proc, json.loads(started.read_text())
