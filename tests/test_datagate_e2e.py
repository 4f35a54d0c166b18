"""The dataset gate on the real ms-swift (tiny fixtures, CPU): drop causes, budget, cache, and that training
from the gate's cached dataset is the same training as from the raw file."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from support.running import mhsft, tiny_fixtures, write

pytestmark = pytest.mark.e2e
TIMEOUT = 600


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    return tiny_fixtures(tmp_path_factory.mktemp("gate"))


def check(tiny, *args: str) -> tuple[int, dict | None, str]:
    result = mhsft("data", "check", "tiny", "--json", *args, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, report, result.stderr


@pytest.fixture(scope="module")
def bad_file(tiny) -> Path:
    """50 good rows, one with no user turn (swift keeps it), one with no turns (dropped), one too long."""
    good = tiny.fx.train.read_text().splitlines()[:50]
    rows = [
        *good,
        json.dumps({"conversations": [{"from": "gpt", "value": "an answer to nothing"}]}),
        json.dumps({"conversations": []}),
        json.dumps({"conversations": [{"from": "human", "value": "apple " * 200}, {"from": "gpt", "value": "ok"}]}),
    ]
    return write(tiny.work / "bad.jsonl", "\n".join(rows) + "\n")


def test_each_dropped_row_is_named_with_its_cause(tiny, bad_file: Path) -> None:
    code, report, stderr = check(tiny, "--set", f"sft.dataset=['{bad_file}']", "--set", "sft.max_length=128")
    assert code == 4, stderr
    assert "dataset check failed: 2 of 53 rows" in stderr
    total = report["total"]
    assert (total["read"], total["kept"], total["dropped"]) == (53, 51, 2)
    causes = total["causes"]
    assert causes["no user turn"]["examples"] == ["bad.jsonl:52"]
    (too_long,) = causes["longer than max_length"]["examples"]
    assert too_long.startswith("bad.jsonl:53 (") and int(too_long.split("(")[1].split()[0]) > 128
    assert total["kept_with_problems"]["no user turn"]["examples"] == ["bad.jsonl:51"]
    assert report["lengths"]["max"] <= 128 and report["lengths"]["rows"] == 51


def test_budget_cache_and_every_row_dropped(tiny, bad_file: Path) -> None:
    sets = ["--set", f"sft.dataset=['{bad_file}']", "--set", "sft.max_length=128"]
    code, report, stderr = check(tiny, *sets, "--set", "data_check.max_dropped=0.05")
    assert code == 0 and report["cache_hit"] is True, stderr  # the same data and settings as the test above
    assert "swift export" not in stderr
    started = time.monotonic()
    code, report, _ = check(tiny, *sets, "--set", "data_check.max_dropped=0.05")
    assert code == 0 and time.monotonic() - started < 15
    code, report, stderr = check(tiny, "--set", "sft.max_length=8")
    assert code == 4 and "no training row is left" in stderr
    assert report["total"]["causes"]["longer than max_length"]["count"] == 64


def test_a_model_without_tokenizer_files_is_a_clear_error(tiny) -> None:
    model = tiny.work / "no-tokenizer"
    if not model.exists():
        shutil.copytree(tiny.fx.model, model)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
            (model / name).unlink(missing_ok=True)
    code, _, stderr = check(tiny, "--set", f"sft.model='{model}'")
    assert code == 2, stderr
    assert "has no tokenizer files" in stderr and "no-tokenizer" in stderr
    assert "swift export" not in stderr  # found before swift starts


def test_a_hub_dataset_that_cannot_be_downloaded_is_named(tiny) -> None:
    env = tiny.env | {
        "MODELSCOPE_DOMAIN": "127.0.0.1:9",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "API_HTTP_CLIENT_MAX_RETRIES": "0",
    }
    result = mhsft(
        "data",
        "check",
        "tiny",
        "--set",
        "sft.dataset=['nobody/no-such-dataset']",
        env=env,
        cwd=tiny.work,
        timeout=TIMEOUT,
    )
    assert result.returncode == 4, result.stderr
    assert "nobody/no-such-dataset" in result.stderr and "Traceback" not in result.stderr


def losses(run_dir: Path) -> list[tuple[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines() if line.strip()]
    return [(r["global_step/max_steps"], r["loss"]) for r in rows if "loss" in r]


def test_training_from_the_cache_is_the_same_training(tiny) -> None:
    sets = [
        "--set",
        "sft.max_steps=6",
        "--set",
        "sft.save_steps=6",
        "--set",
        "sft.logging_steps=1",
        "--set",
        "sft.split_dataset_ratio=0.125",
        "--set",
        "sft.eval_steps=6",
    ]
    raw = mhsft("train", "tiny", *sets, "--no-data-check", env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert raw.returncode == 0, raw.stderr[-3000:]
    gated = mhsft("train", "tiny", *sets, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert gated.returncode == 0, gated.stderr[-3000:]
    records = sorted(
        (json.loads(p.read_text()) for p in (tiny.work / ".mhsft" / "runs").glob("*-sft-*.json")),
        key=lambda r: r["started_at"],
    )
    raw_record, gated_record = records[-2], records[-1]
    assert not any("--cached_dataset" in t for t in raw_record["argv"])
    assert "--cached_dataset" in gated_record["argv"] and "--cached_val_dataset" in gated_record["argv"]
    assert "--dataset" not in gated_record["argv"]
    check_summary = gated_record["extra"]["data_check"]
    assert check_summary["rows_read"] == 64 and check_summary["rows_kept"] == 64
    a, b = losses(Path(raw_record["run_dir"])), losses(Path(gated_record["run_dir"]))
    assert len(a) == 6 and [s for s, _ in a] == [s for s, _ in b]
    assert [round(x, 6) for _, x in a] == [round(x, 6) for _, x in b]


def _reader_takes(path: Path, cache: Path) -> bool:
    """Whether ms-swift's reader (its `datasets.load_dataset('json', ...)` call) reads the file."""
    from datasets import load_dataset

    try:
        load_dataset("json", data_files=str(path), split="train", num_proc=1, cache_dir=str(cache))
    except Exception:  # any failure is a refusal; which one does not matter here
        return False
    return True


def _with(row: str, text: str) -> str:
    return row[:-1] + ", " + text + "}"


READER_CASES = {
    "bom.jsonl": lambda rows: "\ufeff" + "\n".join(rows),
    "bom-inside.jsonl": lambda rows: "\n".join([*rows[:3], "\ufeff" + rows[3], *rows[4:]]),
    "nan-inf.jsonl": lambda rows: "\n".join([_with(rows[0], '"s": NaN'), _with(rows[1], '"s": -Inf'), *rows[2:]]),
    "lowercase-nan.jsonl": lambda rows: "\n".join([_with(rows[0], '"s": nan'), *rows[1:]]),
    "key-twice.jsonl": lambda rows: "\n".join([*rows[:18], _with(rows[18], '"conversations": []'), *rows[19:]]),
    "nested-key-twice.jsonl": lambda rows: "\n".join([rows[0].replace('"from"', '"from": "x", "from"', 1), *rows]),
    "depth-63.jsonl": lambda rows: "\n".join([_with(rows[0], '"v": ' + "[" * 62 + "]" * 62), *rows[1:]]),
    "depth-64.jsonl": lambda rows: "\n".join([_with(rows[0], '"v": ' + "[" * 63 + "]" * 63), *rows[1:]]),
    "depth-64.json": lambda rows: "[" + ",".join([_with(rows[0], '"v": ' + "[" * 63 + "]" * 63), *rows[1:]]) + "]",
    "key-twice.json": lambda rows: "[" + ",".join([_with(rows[0], '"conversations": []'), *rows[1:]]) + "]",
    "nan.json": lambda rows: "[" + ",".join([_with(rows[0], '"s": NaN'), *rows[1:]]) + "]",
    "bom.json": lambda rows: "\ufeff[" + ",".join(rows) + "]",
}


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_the_scan_refuses_exactly_what_swifts_reader_refuses(tiny, tmp_path: Path, case: str) -> None:
    from mhsft.datagate.scan import scan
    from mhsft.errors import MhsftError

    rows = tiny.fx.train.read_text().splitlines()[:30]
    path = write(tmp_path / case, READER_CASES[case](rows) + "\n")
    try:
        scan_takes = not scan(path).fatal
    except MhsftError:
        scan_takes = False
    assert scan_takes == _reader_takes(path, tmp_path / "hf-cache")


def test_a_byte_order_mark_and_nan_columns_keep_every_row_through_swift(tiny) -> None:
    rows = tiny.fx.train.read_text().splitlines()[:30]
    data = write(tiny.work / "bom-nan.jsonl", "\ufeff" + "\n".join([_with(rows[0], '"s": NaN'), *rows[1:]]) + "\n")
    code, report, stderr = check(tiny, "--set", f"sft.dataset=['{data}']")
    assert code == 0, stderr
    assert (report["total"]["read"], report["total"]["kept"], report["total"]["dropped"]) == (30, 30, 0)


def test_a_truncated_arrow_file_in_the_cache_is_found_and_rebuilt(tiny) -> None:
    code, report, stderr = check(tiny)
    assert code == 0, stderr
    arrow = next(Path(report["cached_dataset"]).glob("*.arrow"))
    size = arrow.stat().st_size
    os.truncate(arrow, size // 2)
    code, again, stderr = check(tiny)
    assert code == 0 and again["cache_hit"] is False, stderr
    assert "is damaged" in stderr and f"{arrow.name} is {size // 2} bytes" in stderr
    assert arrow.stat().st_size == size
    code, third, _ = check(tiny)
    assert code == 0 and third["cache_hit"] is True


def test_one_or_two_processes_give_the_same_rows_and_the_same_key(tiny) -> None:
    split = ["--set", "sft.split_dataset_ratio=0.25"]
    found = {}
    for count in (1, 2):
        code, report, stderr = check(tiny, *split, "--set", f"data_check.num_proc={count}")
        assert code == 0 and report["cache_hit"] is False, stderr
        assert f"tokenising with {count} process" in stderr and f"--dataset_num_proc {count}" in stderr
        entry = Path(report["cache_dir"])
        with np.load(entry / "export" / "rows.npz") as rows:
            arrays = {name: rows[name].tobytes() for name in ("train_lengths", "val_lengths", "train_sigs")}
        arrow = {p.relative_to(entry): p.read_bytes() for p in (entry / "export").glob("*/*.arrow")}
        found[count] = report["key"], arrays, arrow, report["lengths"]
        shutil.rmtree(entry)  # the next count exports again
    assert found[1] == found[2]
    assert len(found[1][2]) == 2  # a train and a val arrow file, byte for byte the same


def test_a_folder_of_data_files_trains_with_every_file_checked(tiny) -> None:
    """A folder swift reads whole (two .jsonl files, one in a subfolder, a README.md aside) passes the gate with
    every row of both files read, and real swift trains from it."""
    rows = tiny.fx.train.read_text().splitlines(keepends=True)
    folder = tiny.work / "folder-data"
    write(folder / "a.jsonl", "".join(rows[:40]))
    write(folder / "more" / "b.jsonl", "".join(rows[40:]))
    write(folder / "README.md", "# my data\n")
    sets = ["--set", "sft.dataset=['folder-data']", "--set", "sft.max_steps=2", "--set", "sft.save_steps=2"]
    result = mhsft("train", "tiny", *sets, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    record = max(
        (json.loads(p.read_text()) for p in (tiny.work / ".mhsft" / "runs").glob("*-sft-*.json")),
        key=lambda r: r["started_at"],
    )
    assert record["status"] == "succeeded" and "--cached_dataset" in record["argv"]
    assert record["extra"]["data_check"]["rows_read"] == 64 and record["extra"]["data_check"]["rows_kept"] == 64
