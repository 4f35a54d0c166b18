"""`mhsft sweep` on the real ms-swift (tiny model, CPU): a 2x2 grid to the end with one dataset gate for the
four trials, a 3-trial TPE search with a fixed seed, and a grid whose second max_length drops rows refused
before any trial starts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.environment import SECRET
from support.running import mhsft, tiny_fixtures, write
from support.swanlog import read_starts

pytestmark = pytest.mark.e2e
TIMEOUT = 1800
FAST = ["--set", "sft.max_steps=1", "--set", "sft.save_steps=1", "--set", "sft.eval_steps=1"]
FAST += ["--set", "sft.logging_steps=1", "--set", "sft.split_dataset_ratio=0.1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    tiny = tiny_fixtures(tmp_path_factory.mktemp("sweep"))
    write(tiny.work / ".env", f"SWANLAB_API_KEY={SECRET}\n")  # local mode: swift gets it, no file may hold it
    return tiny


def records(tiny: SimpleNamespace, sweep_id: str) -> dict[int, dict]:
    found = {}
    for path in (tiny.work / ".mhsft" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if record["extra"].get("sweep", {}).get("id") == sweep_id:
            found[record["extra"]["sweep"]["trial"]] = record
    return found


def shown(tiny: SimpleNamespace, sweep_id: str = "") -> dict:
    result = mhsft("sweep", "show", *([sweep_id] if sweep_id else []), "--json", env=tiny.env, cwd=tiny.work)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def logged(run_dir: str) -> tuple[float, float]:
    """(last eval_loss, train_loss) as swift wrote them in logging.jsonl."""
    rows = [json.loads(line) for line in (Path(run_dir) / "logging.jsonl").read_text().splitlines()]
    return [r["eval_loss"] for r in rows if "eval_loss" in r][-1], next(
        r["train_loss"] for r in rows if "train_loss" in r
    )


def test_a_max_length_that_drops_rows_refuses_the_sweep_before_any_trial(tiny) -> None:
    args = ["sweep", "tiny", "--grid", "sft.max_length=[512,16]", *FAST, "--set", "sft.output_dir=out-refused"]
    result = mhsft(*args, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 4, result.stderr
    assert "sweep trial len16: dataset check failed" in result.stderr and "No trial was started" in result.stderr
    # one gate per max_length, in the grid's order: the first passes, the second is refused
    assert result.stderr.count("swift export") == 2, result.stderr
    assert result.stderr.index("data check for len512") < result.stderr.index("data check for len16")
    assert not (tiny.work / "out-refused").exists() and not (tiny.work / ".mhsft" / "runs").exists()


def test_a_two_by_two_grid_runs_four_recorded_trials_on_one_gate_run(tiny) -> None:
    grid = ["--grid", "sft.learning_rate=[1e-3,2e-3]", "--grid", "sft.lora_rank=[4,8]"]
    result = mhsft("sweep", "tiny", *grid, *FAST, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("sweep: data check for") == 1
    doc = shown(tiny)
    runs = records(tiny, doc["id"])
    assert sorted(runs) == [0, 1, 2, 3] and {r["status"] for r in runs.values()} == {"succeeded"}
    folders = {r["run_dir"] for r in runs.values()}
    assert len(folders) == 4 and all((Path(f) / "logging.jsonl").is_file() for f in folders)
    assert len({r["extra"]["data_check"]["key"] for r in runs.values()}) == 1  # one cache for the four
    names = ["lr1e-3-r4", "lr1e-3-r8", "lr2e-3-r4", "lr2e-3-r8"]
    starts = read_starts(tiny.work / "swanlog")
    assert sorted(s["name"] for s in starts) == names
    assert {(s["project"], s["group"]) for s in starts} == {("mhsft-tiny", doc["id"])}
    assert doc["metric"] == "eval_loss" and doc["status"] == "finished"
    for row in doc["trials"]:
        record = runs[row["trial"]]
        eval_loss, train_loss = logged(record["run_dir"])
        assert (row["run"], row["status"], row["name"]) == (record["id"], "succeeded", names[row["trial"]])
        assert row["metric"] == eval_loss and row["metrics"]["train_loss"] == train_loss
    metrics = [row["metric"] for row in doc["trials"]]
    assert metrics == sorted(metrics) and doc["trials"][0]["best"]
    table = mhsft("sweep", "show", doc["id"], env=tiny.env, cwd=tiny.work)
    assert f"mhsft infer --run {doc['trials'][0]['run']}" in table.stderr
    for path in tiny.work.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert SECRET.encode() not in path.read_bytes(), path


def test_tpe_runs_three_trials_told_to_optuna(tiny) -> None:
    import optuna

    space = ["--method", "tpe", "--trials", "3", "--seed", "5", "--range", "sft.learning_rate=1e-4..1e-2:log"]
    result = mhsft("sweep", "tiny", *space, *FAST, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    doc = shown(tiny)
    runs = records(tiny, doc["id"])
    assert sorted(runs) == [0, 1, 2] and {r["status"] for r in runs.values()} == {"succeeded"}
    journal = tiny.work / ".mhsft" / "sweeps" / doc["id"] / "journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=doc["id"], storage=storage)
    told = sorted(t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert told == sorted(row["metric"] for row in doc["trials"])
    for row in doc["trials"]:
        assert 1e-4 <= row["values"]["sft.learning_rate"] <= 1e-2
        assert row["metric"] == logged(runs[row["trial"]]["run_dir"])[0]
