"""Time the SwanLab preflight's answers and a full `mhsft doctor` with no network.

Usage:  .venv/bin/python scripts/bench_preflight.py [--timeout 5]
Uses the SwanLab stand-in from tests/swanlab_server.py on 127.0.0.1 and the real swanlab SDK inside
`mhsft preflight`. Prints wall time (of the whole `mhsft preflight` process) and exit code per case (goal:
failures in seconds, stalls bounded by the timeout plus a small constant; doctor under 15 s).
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from swanlab_server import SwanLabCloud  # noqa: E402

GOOD = "good-key-0123456789"


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mhsft"), *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - started, done.returncode, last[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", default="5")
    timeout = parser.parse_args().timeout
    work = Path(tempfile.mkdtemp(prefix="mhsft-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB_", "MODELSCOPE_", "HF_"))}
    env["HOME"] = str(work)
    ok, hanging = SwanLabCloud().start(), SwanLabCloud(behaviour="hang", delay=120).start()
    stalls = {b: SwanLabCloud(behaviour=b, delay=120).start() for b in ("stall_lookup", "trickle_login", "huge_login")}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cases = {
        "valid key": (ok.url, GOOD),
        "rejected key (401)": (ok.url, "wrong-key-0123456789"),
        "connection refused": (refused, GOOD),
        "DNS failure": ("http://swanlab.invalid", GOOD),
        f"hanging server (timeout {timeout} s)": (hanging.url, GOOD),
        **{f"{b} (timeout {timeout} s)": (server.url, GOOD) for b, server in stalls.items()},
    }
    for name, (host, key) in cases.items():
        seconds, code, last = run(
            ["preflight", "qwen7b", "--set", f"swanlab.api_host={host}", "--preflight-timeout", timeout],
            env | {"SWANLAB_API_KEY": key},
            work,
        )
        print(f"preflight, {name:32s} {seconds:6.2f} s  exit {code}  {last}")
    seconds, code, _ = run(
        ["doctor", "qwen7b", "--json", "--timeout", timeout],
        env | {"SWANLAB_API_KEY": GOOD, "MODELSCOPE_API_TOKEN": "ms-0123456789"},
        work,
    )
    print(f"doctor, no network (cloud hosts unreachable)  {seconds:6.2f} s  exit {code}")
    seconds, code, _ = run(
        ["doctor", "--json", "--timeout", timeout],
        env | {"SWANLAB_API_KEY": GOOD, "SWANLAB_API_HOST": hanging.url},
        work,
    )
    print(f"doctor, SwanLab host hanging                  {seconds:6.2f} s  exit {code}")
    for server in (ok, hanging, *stalls.values()):
        server.stop()


if __name__ == "__main__":
    main()
