"""`mhsft selftest` run again in its folder: it removes what it made itself, never a user's own `tiny` trainings.

swift is the fake (trainings lay out swift's tree, SwanLab local mode a run folder); the fixtures and the dataset
gate are real, so this is an e2e test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.environment import base_env
from support.running import mhsft

pytestmark = pytest.mark.e2e


def trainings(folder: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (folder / ".mhsft" / "runs").glob("*-sft-*.json")]
    return sorted(found, key=lambda r: r["started_at"])


def test_a_second_selftest_removes_its_own_runs_and_keeps_the_users(tmp_path: Path, fake_swift) -> None:
    env = base_env(tmp_path / "home") | {
        "PATH": f"{fake_swift.bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SWIFT_LOG": str(fake_swift.log),
    }
    st = tmp_path / "st"
    first = mhsft("selftest", "--workdir", "st", env=env, cwd=tmp_path, timeout=900)
    assert "Traceback" not in first.stderr and trainings(st), first.stdout + first.stderr  # it trained, then stopped
    (own,) = trainings(st)
    own_swanlog = list((st / "swanlog").glob(f"run-*{own['swanlab_run_id']}"))
    user = mhsft("train", "tiny", "--no-data-check", env=env | {"MHSFT_TINY_DIR": str(st)}, cwd=tmp_path)
    assert user.returncode == 0, user.stderr
    (mine,) = trainings(tmp_path)  # the user's run: recorded where they typed it, its outputs in the selftest folder
    mine_swanlog = list((st / "swanlog").glob(f"run-*{mine['swanlab_run_id']}"))
    assert Path(mine["run_dir"]).parent == st / "output" and len(own_swanlog) == len(mine_swanlog) == 1
    second = mhsft("selftest", "--workdir", "st", env=env, cwd=tmp_path, timeout=900)
    assert "Traceback" not in second.stderr, second.stderr
    assert Path(mine["run_dir"]).is_dir() and mine_swanlog[0].is_dir()  # the user's training is all there
    assert not Path(own["run_dir"]).exists() and not own_swanlog[0].exists()  # the first selftest's is gone
    assert [r["id"] for r in trainings(st)] != [own["id"]] and len(trainings(st)) == 1  # its record too
