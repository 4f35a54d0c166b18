"""The dataset gate on the real ms-swift (tiny fixtures, CPU): drop causes, budget, cache, and that training
from the gate's cached dataset is the same training as from the raw file."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

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
