"""`mhsft eval` without a model: the [eval] section, the held-out set, EvalScope's reports read back, the plans
for one or two servers, and every bad input refused before swift starts (exit 2 or 4, one paragraph)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from mhsft.evaluation import heldout, reports
from mhsft.view.benchmarks import table
from test_cli_basics import HEAVY, loaded_modules

from support.environment import loopback_only
from support.running import local_recipe, mhsft, recorded, write


def checkpoint(folder: Path, lora: bool = True, args: bool = True) -> Path:
    """A checkpoint folder as swift saves it (args.json naming a local model; adapter_config.json for a LoRA)."""
    ckpt = folder / "out" / "v0-20261201-000000" / "checkpoint-10"
    ckpt.mkdir(parents=True)
    (folder / "model").mkdir(exist_ok=True)
    if args:
        saved = {"model": str(folder / "model"), "model_type": "qwen2", "template": "qwen2_5", "system": "Be brief."}
        write(ckpt / "args.json", json.dumps(saved | {"val_dataset": [str(folder / "val.jsonl")]}))
    if lora:
        write(ckpt / "adapter_config.json", "{}")
    write(
        folder / "val.jsonl",
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n',
    )
    return ckpt


def refused(result, code: int, *needles: str) -> None:
    """A one-paragraph error with `code`, no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_held_out_rows_of_every_swift_format_become_prompt_and_reference() -> None:
    rows = [
        {"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}]},
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a2"}]},
        {"query": "q3", "response": "a3", "history": [["h", "hh"]]},
        {"instruction": "do", "input": "this", "output": "a4"},
        {"messages": [{"role": "user", "content": "no answer"}]},
    ]  # fmt: skip
    found = [heldout.qa_row(r, "Be brief.") for r in rows]
    system, user = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"}
    assert found[0] == {"messages": [system, user], "answer": "a1"}
    assert found[1]["messages"][0] == {"role": "system", "content": "S"} and found[1]["answer"] == "a2"
    assert [m["content"] for m in found[2]["messages"]] == ["Be brief.", "h", "hh", "q3"] and found[2]["answer"] == "a3"
    assert found[3]["messages"][-1]["content"] == "do\nthis" and found[3]["answer"] == "a4"
    assert found[4] is None


def test_a_held_out_file_without_answers_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "v.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(Exception, match="no prompt with a reference answer") as caught:
        heldout.collect([path], None)
    assert caught.value.exit_code == 4


def test_the_report_s_primary_metric_is_the_row_and_every_metric_is_kept() -> None:
    def metric(name: str, dims: dict, score: float) -> dict:
        return {"identity": {"name": name, "aggregation": "mean", "dimensions": dims}, "score": score, "num": 7}

    report = {
        "primary_metric_identity": {"name": "rouge", "aggregation": "mean",
                                    "dimensions": {"variant": "l", "statistic": "recall"}},
        "metrics": [metric("bleu", {"ngram": 1}, 0.1), metric("rouge", {"ngram": 1, "statistic": "recall"}, 0.25),
                    metric("rouge", {"variant": "l", "statistic": "recall"}, 0.5)],
    }  # fmt: skip
    score = reports.score_of(report, "general_qa")
    assert (score.metric, score.score, score.samples) == ("rouge-l-recall", 0.5, 7)
    assert score.metrics["bleu-1"] == 0.1 and score.metrics["rouge-1-recall"] == 0.25
    tuned, base = {"general_qa": score}, {"general_qa": reports.score_of({"metrics": [metric("rouge", {}, 0.2)]}, "x")}
    (row,) = reports.rows(tuned, base)
    assert row["base"] == 0.2 and row["delta"] == pytest.approx(0.3)
    header, cells = table([row])
    assert header == ["benchmark", "metric", "base", "fine-tuned", "delta", "samples"]
    assert cells == [["general_qa", "rouge-l-recall", "0.2000", "0.5000", "+0.3000", "7"]]


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ("eval_limt = 3", "Did you mean `eval_limit`?"),
        ('eval_backend = "OpenCompass"', "Native backend only"),
        ('eval_url = "http://127.0.0.1:8000/v1"', "deploys the base model and the checkpoint itself"),
        ("eval_limit = 0", "must be >= 1"),
        ('after_train = "yes"', "expected true or false"),
    ],
)
def test_the_eval_section_is_validated(workdir, env, section, needle) -> None:
    write(workdir / "r.toml", f'[sft]\nmodel = "m"\ndataset = ["d.jsonl"]\n[eval]\n{section}\n')
    refused(mhsft("validate", "r.toml", env=env, cwd=workdir), 2, "r.toml, [eval]", needle)


def test_a_lora_is_planned_on_one_server_and_imports_nothing_heavy(workdir, env) -> None:
    ckpt = checkpoint(workdir)
    result = mhsft("eval", "-c", str(ckpt), "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("swift deploy") == 1
    assert f"--adapters finetuned={ckpt}" in result.stdout and "--served_model_name base" in result.stdout
    assert f"--model {workdir / 'model'}" in result.stdout and "--system 'Be brief.'" in result.stdout
    assert "held-out rows         1" in result.stderr and "servers               1 (base+finetuned)" in result.stderr
    assert loaded_modules(["eval", "-c", str(ckpt), "--dry-run"], env, workdir) & HEAVY == set()


def test_a_full_fine_tune_or_two_servers_deploys_each_model_apart(workdir, env) -> None:
    full = checkpoint(workdir / "full", lora=False)
    result = mhsft("eval", "-c", str(full), "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0 and result.stdout.count("swift deploy") == 2, result.stderr
    assert f"--model {full}" in result.stdout and "--served_model_name finetuned" in result.stdout
    lora = checkpoint(workdir / "lora")
    two = mhsft("eval", "-c", str(lora), "--two-servers", "--no-base", "--dry-run", env=env, cwd=workdir)
    assert two.stdout.count("swift deploy") == 1 and f"--adapters {lora}" in two.stdout


def test_a_checkpoint_without_args_json_is_refused(workdir, env, fake_swift) -> None:
    ckpt = checkpoint(workdir, args=False)
    refused(mhsft("eval", "-c", str(ckpt), env=env, cwd=workdir), 2, "args.json")
    assert fake_swift.calls() == []


def test_an_unknown_benchmark_is_refused_with_evalscope_s_closest_name(workdir, env, fake_swift) -> None:
    ckpt = checkpoint(workdir)
    refused(mhsft("eval", "-c", str(ckpt), "--bench", "gsm8kk", env=env, cwd=workdir), 2, "`gsm8kk`", "`gsm8k`")
    assert fake_swift.calls() == []


def test_a_missing_local_path_is_refused(workdir, env, fake_swift) -> None:
    ckpt = checkpoint(workdir)
    args = '{general_mcq = {local_path = "data/nope"}}'
    result = mhsft("eval", "-c", str(ckpt), "--bench", "general_mcq", env=env, cwd=workdir)
    refused(result, 2, "needs a folder", "local_path")
    write(workdir / "r.toml", f'[sft]\nmodel = "model"\ndataset = ["val.jsonl"]\n[eval]\neval_dataset_args = {args}\n')
    result = mhsft("eval", "r.toml", "-c", str(ckpt), "--bench", "general_mcq", env=env, cwd=workdir)
    refused(result, 4, f"{workdir / 'data' / 'nope'}, does not exist")
    assert fake_swift.calls() == []


def test_an_uncached_benchmark_is_refused_in_seconds_when_the_hub_is_unreachable(workdir, env, fake_swift) -> None:
    ckpt = checkpoint(workdir)
    started = time.monotonic()
    result = mhsft("eval", "-c", str(ckpt), "--bench", "gsm8k", env=env, cwd=workdir)  # the hub: a closed port
    elapsed = time.monotonic() - started
    refused(result, 4, "`gsm8k` is not in the local cache", "refused the connection", "--datasets gsm8k")
    assert elapsed < 5 and fake_swift.calls() == []


def test_an_uncached_benchmark_is_refused_in_seconds_without_dns(workdir, env, fake_swift) -> None:
    prefix = loopback_only()
    if not prefix:
        pytest.skip("no loopback-only network namespace here (unshare -n)")
    ckpt = checkpoint(workdir)
    env = {k: v for k, v in env.items() if k != "MODELSCOPE_ENDPOINT"}  # the real hub name: DNS fails
    import subprocess
    import sys

    started = time.monotonic()
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "mhsft", "eval", "-c", str(ckpt), "--bench", "ceval"],
        env=env, cwd=workdir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    refused(result, 4, "`ceval` is not in the local cache", "https://modelscope.cn cannot be resolved (DNS)")
    assert elapsed < 5 and fake_swift.calls() == []


def test_evalscope_missing_gives_the_install_command(workdir, env, fake_swift) -> None:
    ckpt = checkpoint(workdir)
    hide = write(workdir / "hide" / "sitecustomize.py", "import sys\nsys.modules['evalscope'] = None\n")
    env = env | {"PYTHONPATH": f"{hide.parent}:{env.get('PYTHONPATH', '')}"}
    refused(mhsft("eval", "-c", str(ckpt), env=env, cwd=workdir), 2, "EvalScope", 'pip install "mhsft[eval]"')
    assert fake_swift.calls() == []


def test_a_failed_evaluation_after_training_leaves_the_training_succeeded(workdir, env, fake_swift) -> None:
    local_recipe(workdir, "[eval]\nafter_train = true\n")
    result = mhsft("train", "r.toml", "--no-preflight", env=env, cwd=workdir)  # the fake checkpoints: no args.json
    assert result.returncode == 0, result.stderr
    assert "the evaluation after training failed" in result.stderr and "mhsft eval " in result.stderr
    (path,) = (workdir / ".mhsft" / "runs").glob("*-sft-*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "succeeded" and "args.json" in record["extra"]["eval_error"]
    assert result.stderr.strip().splitlines()[-1].startswith(f"run {record['id']}: succeeded (swift exit 0)")


def test_a_target_that_is_neither_a_recipe_nor_a_run_is_refused(workdir, env, fake_swift) -> None:
    refused(mhsft("eval", "nosuch", env=env, cwd=workdir), 2, "nosuch: not a recipe file", "recorded run id")
    assert fake_swift.calls() == []


def test_runs_show_and_compare_list_the_recorded_scores(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    trained: list[str] = []  # in training order
    for lora_rank, tuned in ((8, 0.25), (16, 0.5)):
        result, record = recorded("train", "r.toml", "--set", f"sft.lora_rank={lora_rank}", env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr
        trained.append(record["id"])
        path = workdir / ".mhsft" / "runs" / f"{record['id']}.json"
        row = {"benchmark": "general_qa", "metric": "rouge-l-recall", "base": 0.125, "finetuned": tuned,
               "delta": tuned - 0.125, "samples": 8, "metrics": {}}  # fmt: skip
        record["extra"]["eval"] = {"evaluated_at": "2026-12-01T10:00:00", "benchmarks": [row]}
        path.write_text(json.dumps(record))
    first, second = trained
    shown = mhsft("runs", "show", second, env=env, cwd=workdir).stdout
    assert "benchmarks (mhsft eval, 2026-12-01 10:00:00):" in shown
    assert "general_qa  rouge-l-recall  0.1250  0.5000      +0.3750  8" in shown
    assert json.loads(mhsft("runs", "show", second, "--json", env=env, cwd=workdir).stdout)["eval"]["benchmarks"] == [
        row
    ]
    compared = mhsft("runs", "compare", first, second, env=env | {"COLUMNS": "200"}, cwd=workdir).stdout
    assert re.search(r"eval general_qa\s+│ 0\.2500 \(\+0\.1250\)\s+│ 0\.5000 \(\+0\.3750\)", compared)


def test_the_server_address_is_the_one_uvicorn_reports(tmp_path: Path) -> None:
    from mhsft.evaluation.server import listening

    log = write(tmp_path / "deploy.log", "INFO:     Uvicorn running on http://127.0.0.1:8002 (Press CTRL+C to quit)\n")
    assert listening(log) == "http://127.0.0.1:8002/v1"
    assert listening(tmp_path / "none.log") is None  # not the planned port: another server may answer there


def test_a_backend_that_does_not_import_stops_eval_before_any_server_starts(workdir, env, fake_swift) -> None:
    """`swift deploy --infer_backend lmdeploy` without lmdeploy loads the model, then fails: checked first."""
    ckpt = checkpoint(workdir)
    write(workdir / "r.toml", '[sft]\nmodel = "model"\ndataset = ["val.jsonl"]\n[eval]\ninfer_backend = "vllm"\n')
    stand_in = write(workdir / "backends" / "vllm" / "__init__.py", "raise ImportError('libcudart.so.12: cannot open')")
    broken = env | {"PYTHONPATH": f"{stand_in.parent.parent}:{env.get('PYTHONPATH', '')}"}
    result = mhsft("eval", "r.toml", "-c", str(ckpt), "--ready-timeout", "5", env=broken, cwd=workdir)
    refused(result, 2, "the vllm backend does not import (ImportError: libcudart.so.12", "pip install vllm")
    assert fake_swift.calls() == []  # the recipe's [eval] backend: no swift deploy started
    result = mhsft("eval", "-c", str(ckpt), "--backend", "lmdeploy", env=env, cwd=workdir)
    refused(result, 2, "the lmdeploy backend is not installed", "pip install lmdeploy", "--backend transformers")
    assert fake_swift.calls() == []
    planned = mhsft("eval", "-c", str(ckpt), "--backend", "lmdeploy", "--dry-run", env=env, cwd=workdir)
    assert planned.returncode == 0 and "--infer_backend lmdeploy" in planned.stdout  # a dry run imports nothing
    write(workdir / "r.toml", '[sft]\nmodel = "model"\ndataset = ["val.jsonl"]\n[eval]\ninfer_backend = "lmdeploy"\n')
    doctor = mhsft("doctor", "r.toml", "--json", "--timeout", "1", env=env, cwd=workdir)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert (
        checks["recipe eval backend"]["status"] == "fail"
        and "pip install lmdeploy" in checks["recipe eval backend"]["fix"]
    )
