"""`mhsft eval` on a real tiny training (ms-swift and EvalScope on the CPU): `[eval] after_train` scores the
held-out set on one server (base and LoRA side by side); the same settings on two servers give the same scores;
a local multiple-choice set; the table equals EvalScope's own report files, and the record, `runs show`, the
report and the SwanLab log (read back with the SDK's reader) hold the same numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from test_e2e import records

from support.running import mhsft, tiny_fixtures, write
from support.swanlog import read_scalars
from support.waiting import scaled

pytestmark = pytest.mark.e2e
TIMEOUT = scaled(900)
SETTINGS = ["--set", "eval.eval_limit=4", "--set", "eval.eval_generation_config={max_tokens = 8}"]
MCQ = "id,question,A,B,C,D,answer\n1,What is two plus zero?,1,2,3,4,B\n2,Which is a fruit?,cat,dog,apple,blue,C\n"


def timed(*args: str, tiny: SimpleNamespace) -> tuple[object, float]:
    started = time.monotonic()
    result = mhsft(*args, env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> SimpleNamespace:
    """A tiny training with a val_dataset and `[eval] after_train = true`, then the same held-out set on two
    servers, then a local multiple-choice set (each timed)."""
    tiny = tiny_fixtures(tmp_path_factory.mktemp("eval"))
    held_out = ["--set", f"sft.val_dataset=['{tiny.fx.val}']"]
    trained, t_train = timed("train", "tiny", *held_out, "--set", "eval.after_train=true", *SETTINGS, tiny=tiny)
    (record,) = records(tiny.work, "sft")
    after_train = record["extra"]["eval"]
    two, t_two = timed("eval", record["id"], "--two-servers", "--json", *held_out, *SETTINGS, tiny=tiny)
    write(tiny.work / "mcq" / "mcq_val.csv", MCQ)
    mcq_args = '{general_mcq = {local_path = "mcq", subset_list = ["mcq"]}}'
    mcq, t_mcq = timed(
        "eval", "tiny", "--bench", "general_mcq", "--json", "--set", f"eval.eval_dataset_args={mcq_args}", *SETTINGS,
        tiny=tiny,
    )  # fmt: skip
    print(f"\ntrain + eval (one server) {t_train:.1f} s, eval on two servers {t_two:.1f} s, mcq {t_mcq:.1f} s")
    (record,) = records(tiny.work, "sft")
    return SimpleNamespace(
        tiny=tiny,
        trained=trained,
        record=record,
        record_after_train=after_train,
        two=json.loads(two.stdout),
        mcq=json.loads(mcq.stdout),
    )


def evalscope_scores(result: dict, who: str) -> dict[str, float]:
    """Each benchmark's primary score as EvalScope wrote it in its own report file."""
    found = {}
    for row in result["benchmarks"]:
        report = json.loads(
            (Path(result["output_dir"]) / who / "reports" / who / f"{row['benchmark']}.json").read_text()
        )
        primary = next(m for m in report["metrics"] if m["identity"] == report["primary_metric_identity"])
        found[row["benchmark"]] = primary["score"]
    return found


def test_after_train_scores_the_held_out_set_on_one_server_and_keeps_the_training_s_outcome(evaluated) -> None:
    record, stderr = evaluated.record, evaluated.trained.stderr
    assert record["status"] == "succeeded" and "eval_error" not in record["extra"]
    result = evaluated.record_after_train
    assert result["servers"] == 1 and [r["benchmark"] for r in result["benchmarks"]] == ["general_qa"]
    (row,) = result["benchmarks"]
    assert row["samples"] == 4 and row["metric"] == "rouge-l-recall"
    assert result["settings"]["generation_config"] == {"temperature": 0.0, "max_tokens": 8}
    heldout = (Path(result["output_dir"]) / "heldout" / "heldout.jsonl").read_text().splitlines()
    assert len(heldout) == len(evaluated.tiny.fx.val.read_text().splitlines())
    assert json.loads(heldout[0])["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert "Benchmarks: base vs fine-tuned" in evaluated.trained.stdout
    assert stderr.strip().splitlines()[-1].startswith(f"run {record['id']}: succeeded (swift exit 0)")


def test_the_table_equals_evalscope_s_own_reports(evaluated) -> None:
    for result in (evaluated.record_after_train, evaluated.two, evaluated.mcq):
        rows = {r["benchmark"]: r for r in result["benchmarks"]}
        tuned, base = evalscope_scores(result, "finetuned"), evalscope_scores(result, "base")
        for name, row in rows.items():
            assert row["finetuned"] == tuned[name] and row["base"] == base[name]
            assert row["delta"] == pytest.approx(tuned[name] - base[name])


def predictions(result: dict, who: str) -> list[str]:
    """What EvalScope recorded each model answering on the held-out set."""
    path = Path(result["output_dir"]) / who / "predictions" / who / "general_qa_heldout.jsonl"
    return [json.loads(x)["model_output"]["choices"][0]["message"]["content"] for x in path.read_text().splitlines()]


def test_one_server_and_two_servers_give_the_same_scores(evaluated) -> None:
    one, two = evaluated.record_after_train, evaluated.two
    assert one["servers"] == 1 and two["servers"] == 2 and one["settings"] == two["settings"]
    assert [r["metrics"] for r in one["benchmarks"]] == [r["metrics"] for r in two["benchmarks"]]
    for who in ("base", "finetuned"):
        assert predictions(one, who) == predictions(two, who) and len(predictions(one, who)) == 4


def test_a_local_multiple_choice_set_is_scored_for_both_models(evaluated) -> None:
    (row,) = evaluated.mcq["benchmarks"]
    assert row["benchmark"] == "general_mcq" and row["metric"] == "accuracy" and row["samples"] == 2
    assert row["base"] is not None and 0 <= row["finetuned"] <= 1


def test_runs_show_compare_report_and_swanlab_hold_the_same_numbers(evaluated) -> None:
    tiny, record = evaluated.tiny, evaluated.record
    latest = record["extra"]["eval"]  # the MCQ evaluation, the last one, replaced the held-out one
    assert [r["benchmark"] for r in latest["benchmarks"]] == ["general_mcq"]
    shown = mhsft("runs", "show", record["id"], "--json", env=tiny.env, cwd=tiny.work)
    assert json.loads(shown.stdout)["eval"] == latest
    text = mhsft("runs", "show", record["id"], env=tiny.env, cwd=tiny.work).stdout
    row = latest["benchmarks"][0]
    assert f"general_mcq  accuracy  {row['base']:.4f}" in text
    report = mhsft("report", record["id"], "--samples", "0", env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert report.returncode == 0, report.stderr[-2000:]
    md = (Path(record["run_dir"]) / "report" / "report.md").read_text()
    assert "## Benchmarks: base vs fine-tuned" in md
    assert f"| general_mcq | accuracy | {row['base']:.4f} | {row['finetuned']:.4f} |" in md
    assert md.index("## Benchmarks") < md.index("## 3. Base vs fine-tuned")
    scalars = read_scalars(tiny.work / "swanlog")
    assert scalars["eval/general_mcq/finetuned"][-1][1] == pytest.approx(row["finetuned"])
    assert scalars["eval/general_mcq/base"][-1][1] == pytest.approx(row["base"])
    held = evaluated.two["benchmarks"][0]
    assert scalars["eval/general_qa/finetuned"][-1][1] == pytest.approx(held["finetuned"])
    assert "train/loss" in scalars  # the same run: its curves and its scores on one page
