"""The isolated environment every test process runs in: no SwanLab/hub variables or secrets from the
developer's shell, hosts pointed at a closed loopback port, and a loopback-only network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from support.waiting import scaled

TESTS = Path(__file__).resolve().parents[1]
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
        # the preflight's default bound, stretched with every other timeout on a loaded machine
        "MHSFT_PREFLIGHT_TIMEOUT": f"{scaled(5.0):g}",
    }
    return env


def loopback_only() -> list[str]:
    """A command prefix that runs in a new network namespace with only `lo` up (root and `unshare -n` needed),
    or [] where the machine does not allow one."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return []
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
