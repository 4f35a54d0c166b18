"""The record store: status words, a record's typed Slurm part, and the one "which run?" resolver."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mhsft.errors import MhsftError
from mhsft.runs import checkpoints, records, status, store
from mhsft.runs.slurm_part import SlurmPart

from support.running import write


def record_file(cwd: Path, run_id: str, **fields) -> Path:
    """A minimal record file (a succeeded training unless `fields` say otherwise)."""
    data = {
        "id": run_id, "command": "sft", "recipe": None, "recipe_name": None, "recipe_sha256": None, "argv": [],
        "env": {}, "secrets": [], "cwd": str(cwd), "versions": {}, "started_at": run_id, "status": "succeeded",
    } | fields  # fmt: skip
    return write(cwd / records.RUNS_DIR / f"{run_id}.json", json.dumps(data))


def test_a_slurm_runs_status_follows_slurms_state_and_its_part_is_written_back_whole(tmp_path) -> None:
    slurm = {"job_id": "7", "job_name": "t", "output": "%j.out", "state": "PENDING", "from_a_newer_mhsft": [1]}
    path = record_file(tmp_path, "r1", status="running", extra={"slurm": slurm, "data_check": {"rows": 3}})
    record = records.read_record(path)
    assert record.status == status.QUEUED  # the file said running; PENDING says queued
    assert isinstance(record.slurm, SlurmPart) and record.slurm.job_id == "7"
    for state, expected in [("RUNNING", "running"), ("CANCELLED by 0", "cancelled"), ("TIMEOUT", "failed")]:
        record.set_slurm_state(state)
        assert record.status == expected
    record.set_slurm_state("COMPLETED")
    record.save()
    written = json.loads(path.read_text())
    assert written["status"] == "succeeded" and written["extra"]["data_check"] == {"rows": 3}
    assert written["extra"]["slurm"]["state"] == "COMPLETED" and written["extra"]["slurm"]["from_a_newer_mhsft"] == [1]
    assert "unknown" not in written["extra"]["slurm"] and "slurm" not in written


def test_records_that_say_completed_read_as_succeeded(tmp_path) -> None:
    record_file(tmp_path, "20260101-000000-sft-0001", status="completed")  # a Slurm run of an older mhsft
    old = record_file(tmp_path, "20260101-000000-sft-0002", status="completed", extra={"slurm": {"state": "COMPLETED"}})
    assert [r.status for r in store.load_all(tmp_path)] == ["succeeded", "succeeded"]
    assert checkpoints.last_training(tmp_path).id == old.stem  # type: ignore[union-attr]


def test_runs_started_in_the_same_second_are_ordered_by_their_recorded_start(tmp_path) -> None:
    # the random suffix sorts the later run first; the newest is still the one that started last
    record_file(tmp_path, "20260101-000000-sft-ffff", started_at="2026-01-01T00:00:00.100+00:00")
    record_file(tmp_path, "20260101-000000-sft-0000", started_at="2026-01-01T00:00:00.900+00:00")
    assert store.ids(tmp_path) == ["20260101-000000-sft-ffff", "20260101-000000-sft-0000"]
    assert checkpoints.last_training(tmp_path).id == "20260101-000000-sft-0000"  # type: ignore[union-attr]
    assert [r.id for r in store.latest(tmp_path, 1)] == ["20260101-000000-sft-0000"]


def test_a_slurm_part_of_the_wrong_shape_makes_the_record_unreadable_not_a_crash(tmp_path) -> None:
    path = record_file(tmp_path, "r1", extra={"slurm": {"job_id": 7}})
    with pytest.raises(ValueError, match=r"field extra\.slurm\.job_id: expected str \| None, got int"):
        records.read_record(path)
    assert records.read_record(record_file(tmp_path, "r2", extra={"slurm": "odd"})).slurm is None  # not a Slurm run


def test_which_run_an_exact_id_a_unique_prefix_several_none_and_the_newest_that_fits(tmp_path) -> None:
    for run_id in ("20260101-000000-sft-aa", "20260101-000000-sft-aab", "20260102-000000-infer-cc"):
        record_file(tmp_path, run_id, command=run_id.split("-")[2])
    assert store.which_run(tmp_path, "20260101-000000-sft-aa").id == "20260101-000000-sft-aa"  # exact beats prefix
    assert store.which_run(tmp_path, "20260102").id == "20260102-000000-infer-cc"
    with pytest.raises(MhsftError, match="matches several runs"):
        store.which_run(tmp_path, "20260101")
    with pytest.raises(MhsftError, match=r"--run 2099: matches no run .* Closest: "):
        store.find(tmp_path, "2099", "--run 2099")
    assert store.which_run(tmp_path, None).id == "20260102-000000-infer-cc"
    assert store.which_run(tmp_path, None, fits=lambda r: r.command == "sft").id == "20260101-000000-sft-aab"
    with pytest.raises(MhsftError, match="not a training run"):
        store.which_run(tmp_path, "20260102", fits=lambda r: r.command == "sft", refusal=lambda r: "not a training run")
    with pytest.raises(MhsftError, match=r"nothing fits in .*runs"):
        store.which_run(tmp_path, None, fits=lambda r: False, none="nothing fits in {folder}")


# --- issue 18, item 22: a lookup by id reads only the records it names


def test_show_compare_and_the_listing_read_only_the_records_they_need(tmp_path, monkeypatch) -> None:
    from mhsft.view import show, table

    ids = [f"20260101-{i:06d}-sft-{i:04x}" for i in range(300)]
    for run_id in ids:
        record_file(tmp_path, run_id)
    read = []
    real = records.read_record
    monkeypatch.setattr(store, "read_record", lambda path: read.append(path.stem) or real(path))
    assert show.record_for(tmp_path, ids[150]).id == ids[150]
    assert read == [ids[150]]
    read.clear()
    assert [show.record_for(tmp_path, i).id for i in (ids[7], ids[8])] == [ids[7], ids[8]]  # runs compare A B
    assert show.record_for(tmp_path, None).id == ids[-1] and read == [ids[7], ids[8], ids[-1]]
    read.clear()
    assert [row[0] for row in table.rows(tmp_path, 20)] == ids[::-1][:20] and len(read) == 20  # `mhsft runs`


# --- item 23: a hanging squeue is bounded and said


def test_a_hanging_squeue_is_given_a_few_seconds_and_the_listing_says_slurm_did_not_answer(workdir, env) -> None:
    from support.running import mhsft

    write(workdir / "bin" / "squeue", "#!/bin/sh\nsleep 120\n").chmod(0o755)  # its child keeps the pipes open
    slurm = {"job_id": "77", "job_name": "t", "output": "%j.out", "state": "RUNNING", "nodes": "n1"}
    record_file(workdir, "20260101-000000-sft-0077", status="running", extra={"slurm": slurm})
    hung = env | {"PATH": f"{workdir / 'bin'}{os.pathsep}{env['PATH']}", "COLUMNS": "200"}
    listing = mhsft("runs", env=hung, cwd=workdir, timeout=25)
    assert listing.returncode == 0 and "running" in listing.stdout and "job 77 on n1" in listing.stdout
    assert "Slurm did not answer" in listing.stderr and "as last recorded" in listing.stderr, listing.stderr
    shown = mhsft("runs", "show", "20260101-000000-sft-0077", env=hung, cwd=workdir, timeout=25)
    assert shown.returncode == 0 and "Slurm did not answer" in shown.stderr


# --- item 1: --run ID acts on that run's own folder only


@pytest.mark.parametrize("command", [["export", "--merge-lora"], ["infer"], ["deploy"]])
def test_a_run_whose_folder_is_gone_is_said_never_replaced_by_another_runs(workdir, env, fake_swift, command) -> None:
    import shutil

    from support.running import local_recipe, mhsft

    local_recipe(workdir)
    for _ in range(2):  # run A, then run B, of one recipe: out/v0-..., out/v1-...
        assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    a, b = (json.loads(p.read_text()) for p in sorted((workdir / records.RUNS_DIR).glob("*.json")))
    shutil.rmtree(b["run_dir"])  # B's folder moved away
    result = mhsft(*command, "--run", b["id"], "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 2 and f"run {b['id']}'s folder {b['run_dir']} is gone" in result.stderr
    assert a["run_dir"] not in result.stdout + result.stderr and "Traceback" not in result.stderr
    listing = mhsft("runs", env=env | {"COLUMNS": "400"}, cwd=workdir)
    row = next(line for line in listing.stdout.splitlines() if b["id"] in line)
    assert a["run_dir"] not in row and "checkpoint-" not in row
