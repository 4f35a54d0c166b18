"""The dataset gate's cache: keyed by what swift read, verified before use, rebuilt when damaged, swept.

ms-swift's export is replaced here by a stand-in that writes a cache entry's files (the real export is in
test_datagate_e2e.py); everything else is the gate's own code.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mhsft.datagate import gate, rows
from mhsft.datagate.rows import Split
from mhsft.datagate.scan import fingerprint
from mhsft.datagate.spec import CACHE_DIR, gate_spec
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.recipe.load import load
from mhsft.recipe.validate import validate

from support.running import local_recipe, write

ROWS = 6


def sharegpt(i: int) -> str:
    return json.dumps({"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]})


class Export:
    """A stand-in for the worker: lays out export/train like `swift export` does; counts its calls."""

    def __init__(self, during=None) -> None:
        self.calls = 0
        self.during = during

    def __call__(self, spec, recipe, environment, cwd, folder: Path, processes: int) -> dict:
        self.calls += 1
        train = folder / "export" / "train"
        train.mkdir(parents=True)
        (train / "data-00000-of-00001.arrow").write_bytes(os.urandom(3 << 20))
        (train / "state.json").write_text("{}")
        if self.during:
            self.during()
        kept = Split.of([None] * ROWS, [10] * ROWS, [fingerprint([f"q{i}", f"a{i}"]) for i in range(ROWS)])
        rows.save(folder / "export" / rows.FILE, {"train": kept, "val": None}, None)
        return rows.load(folder / "export" / rows.FILE)


@pytest.fixture
def recipe(workdir: Path):
    local_recipe(workdir, extra="per_device_train_batch_size = 1\ngradient_accumulation_steps = 1\n")
    write(workdir / "data" / "train.jsonl", "\n".join(sharegpt(i) for i in range(ROWS)) + "\n")
    write(workdir / "model" / "tokenizer.json", "{}")
    return validate(load("r.toml", Environment(values={})))


def run(recipe, workdir: Path, export: Export, monkeypatch, **kw) -> dict:
    monkeypatch.setattr(gate, "_export", export)
    return gate.check(recipe, Environment(values={}), workdir, **kw)


def test_a_dataset_rewritten_while_swift_reads_it_is_refused_and_not_cached(recipe, workdir, monkeypatch) -> None:
    data = workdir / "data" / "train.jsonl"
    export = Export(during=lambda: data.write_text(sharegpt(99) + "\n"))
    with pytest.raises(MhsftError, match=r"train\.jsonl changed while the data check read it") as err:
        run(recipe, workdir, export, monkeypatch)
    assert err.value.exit_code == 4
    assert [p.name for p in (workdir / CACHE_DIR).iterdir() if not p.name.startswith(".tmp-")] == []


def test_a_dataset_only_touched_while_swift_reads_it_is_kept(recipe, workdir, monkeypatch) -> None:
    data = workdir / "data" / "train.jsonl"
    export = Export(during=lambda: os.utime(data, ns=(1, 1)))  # the mtime moves, the bytes do not: the hash decides
    assert run(recipe, workdir, export, monkeypatch)["total"]["kept"] == ROWS
    assert run(recipe, workdir, export, monkeypatch)["cache_hit"] is True and export.calls == 1


def test_a_dataset_folder_is_keyed_by_its_files(recipe, workdir) -> None:
    folder = workdir / "data" / "parts"
    write(folder / "a.jsonl", sharegpt(1) + "\n")
    write(folder / "dataset_infos.json", "{}")  # swift renames it away when it loads the folder
    with_folder = validate(load("r.toml", Environment(values={}), [f"sft.dataset=['{folder}']"]))
    before = gate_spec(with_folder, workdir).key
    (folder / "dataset_infos.json").rename(folder / "dataset_infos.json_bak")
    assert gate_spec(with_folder, workdir).key == before
    write(folder / "sub" / "b.jsonl", sharegpt(2) + "\n")
    assert gate_spec(with_folder, workdir).key != before


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda e: __import__("shutil").rmtree(e / "export" / "train"), "is missing"),
        (lambda e: os.truncate(e / "export" / "train" / "data-00000-of-00001.arrow", 1000), "1000 bytes"),
        (lambda e: (e / "report.json").write_text('{"schema_ver'), "report.json is"),
        (lambda e: (e / "manifest.json").unlink(), "no manifest.json: an older mhsft"),
    ],
)
def test_a_damaged_cache_entry_is_rebuilt_with_a_note(recipe, workdir, monkeypatch, capsys, damage, why) -> None:
    export = Export()
    first = run(recipe, workdir, export, monkeypatch)
    assert (first["cache_hit"], export.calls) == (False, 1)
    assert run(recipe, workdir, export, monkeypatch)["cache_hit"] is True and export.calls == 1
    damage(Path(first["cache_dir"]))
    capsys.readouterr()
    again = run(recipe, workdir, export, monkeypatch)
    assert (again["cache_hit"], export.calls) == (False, 2)
    err = capsys.readouterr().err
    assert "is damaged" in err and why in err, err
    assert Path(again["cached_dataset"], "data-00000-of-00001.arrow").stat().st_size == 3 << 20


def test_steps_per_epoch_follow_the_launch_also_from_the_cache(recipe, workdir, monkeypatch) -> None:
    export = Export()
    assert run(recipe, workdir, export, monkeypatch)["steps"]["steps_per_epoch"] == ROWS
    two_nodes = {"NNODES": "2", "NPROC_PER_NODE": "1"}
    cached = run(recipe, workdir, export, monkeypatch, launch_env=two_nodes)
    assert cached["cache_hit"] and cached["steps"]["processes"] == 2 and cached["steps"]["steps_per_epoch"] == 3


def test_submit_counts_steps_per_epoch_for_the_jobs_nodes_and_records_them(workdir, monkeypatch) -> None:
    from mhsft.process import slurm as sbatch
    from mhsft.slurm.submit import submit

    local_recipe(
        workdir, extra="per_device_train_batch_size = 1\ngradient_accumulation_steps = 1\n[slurm]\nnodes = 2\n"
    )
    write(workdir / "data" / "train.jsonl", "\n".join(sharegpt(i) for i in range(ROWS)) + "\n")
    write(workdir / "model" / "tokenizer.json", "{}")
    monkeypatch.setattr(gate, "_export", Export())
    monkeypatch.setattr(sbatch, "tool", lambda name: name)
    monkeypatch.setattr(sbatch, "submit", lambda batch, env, cwd: "4242")  # nothing is queued
    for nodes, steps in ((None, 3), (3, 2)):
        assert submit("r.toml", [], None, nodes=nodes, check=False) == 0
        newest = max((workdir / ".mhsft" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        record = json.loads(newest.read_text())
        assert record["extra"]["data_check"]["steps_per_epoch"] == steps, record["extra"]["data_check"]


def test_stale_temporary_folders_of_dead_checks_are_removed(recipe, workdir, monkeypatch) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    store = workdir / CACHE_DIR
    stale = write(store / f".tmp-{host}.{int(dead.stdout)}.abc123" / "export" / "big.arrow", "x").parent.parent
    live = write(store / f".tmp-{host}.{os.getpid()}.def456" / "x", "x").parent
    elsewhere = write(store / f".tmp-other-host.{int(dead.stdout)}.ghi789" / "x", "x").parent
    run(recipe, workdir, Export(), monkeypatch)
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_max_length_is_in_the_key_though_the_export_runs_without_it(recipe, workdir, monkeypatch) -> None:
    short, long = (validate(load("r.toml", Environment(values={}), [f"sft.max_length={n}"])) for n in (8, 512))
    assert gate_spec(short, workdir).args == gate_spec(long, workdir).args  # the export keeps every row's length
    export = Export()
    assert run(short, workdir, export, monkeypatch)["train_rows"] == 0  # every row is 10 tokens
    again = run(long, workdir, export, monkeypatch)
    assert (again["cache_hit"], again["train_rows"], export.calls) == (False, ROWS, 2)
