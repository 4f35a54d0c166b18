"""`mhsft report RUN RUN...` with the fake swift: one report comparing the runs named (settings that differ,
results, overlaid curves, each run's answers to the same prompts from one `swift infer` each), what it refuses,
and the single-run report still taking one RUN.

The same report on the real ms-swift is in test_report_compare_e2e.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_e2e import CHROMIUM, chromium

from support.running import local_recipe, mhsft, write

ANSWER = {"FAKE_SWIFT_ANSWER": "from {adapters}"}  # each answer names the checkpoint that gave it


def two_runs(workdir: Path, env: dict) -> list[dict]:
    """Two fake trainings of one recipe that differ in lora_rank, their checkpoints naming the base model."""
    local_recipe(workdir)
    for rank in (4, 8):
        result = mhsft("train", "r.toml", "--set", f"sft.lora_rank={rank}", env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr
    folder = workdir / ".mhsft" / "runs"
    found = [json.loads(p.read_text()) for p in folder.glob("*-sft-*.json")]
    found.sort(key=lambda r: int(r["argv"][r["argv"].index("--lora_rank") + 1]))  # ids of one second: any order
    for record in found:
        saved = {"model": str(workdir / "model"), "template": "qwen2_5"}
        (Path(record["run_dir"]) / "checkpoint-20" / "args.json").write_text(json.dumps(saved))
    rows = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n" for i in range(4))
    write(workdir / "p.jsonl", rows)
    return found


def infers(fake_swift) -> list[list[str]]:
    return [c["argv"] for c in fake_swift.calls() if c["argv"][0] == "infer"]


def compared(workdir: Path, env: dict, *extra: str) -> tuple[list[dict], Path]:
    """Two runs and their comparison report (2 prompts, --out rep); the runs and the report's folder."""
    a, b = two_runs(workdir, env)
    args = ("report", a["id"], b["id"], "--prompts", "p.jsonl", "--samples", "2", "--out", "rep", *extra)
    result = mhsft(*args, env=env | ANSWER, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "report: rep/report.md and rep/report.html" in result.stderr
    return [a, b], workdir / "rep"


def test_two_runs_side_by_side_with_one_swift_infer_each(workdir: Path, env: dict, fake_swift) -> None:
    (a, b), folder = compared(workdir, env)
    md, page = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert f"| setting | {a['id']} | {b['id']} |" in md and "| sft.lora_rank | 4 | 8 |" in md
    assert "| status | succeeded | succeeded |" in md and "![train loss of every run](curves.png)" in md
    calls = infers(fake_swift)
    checkpoints = [str(Path(r["run_dir"]) / "checkpoint-20") for r in (a, b)]
    assert [c[c.index("--adapters") + 1] for c in calls] == checkpoints  # one per run, in the order named
    assert {c[c.index("--val_dataset") + 1] for c in calls} == {str(folder / "prompts.jsonl")}
    assert len({tuple(c[c.index("--max_new_tokens") :]) for c in calls}) == 1  # the same generation settings
    assert f"| # | prompt | reference | {a['id']} | {b['id']} |" in md
    for i in (1, 2):
        assert f"| {i} | q{i - 1} | - | from {checkpoints[0]} | from {checkpoints[1]} |" in md
    assert page.count("<img ") == 1 and page.count('<table class="side-by-side">') == 1
    assert (folder / f"infer-{a['id']}.jsonl").is_file() and (folder / f"infer-{b['id']}.log").is_file()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="the browser test needs /usr/bin/chromium")
def test_the_comparison_renders_in_chromium(workdir: Path, env: dict, fake_swift, tmp_path: Path) -> None:
    (a, b), folder = compared(workdir, env)
    dom = chromium(folder.joinpath("report.html").as_uri(), tmp_path / "profile", "--dump-dom")
    assert re.findall(r'<img id="([^"]+)" alt="[^"]*" src="data:image/png;base64,', dom) == ["curves.png"]
    side = dom.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    assert side.count("<tr>") == 3 and a["id"] in side and b["id"] in side  # header and two prompts
    assert dom.count("<table>") == 2  # settings that differ, results


def test_what_a_comparison_refuses_starts_no_swift(workdir: Path, env: dict, fake_swift) -> None:
    a, b = two_runs(workdir, env)
    cases = [
        ((a["id"], "20991231-000000-sft-zzzz"), "run 20991231-000000-sft-zzzz: matches no run"),
        ((a["id"], a["id"][:-1]), f"run {a['id']} is named twice"),
        ((a["id"], b["id"], "--sweep", "20991231"), "not both"),
        (("--sweep", "20991231", a["id"]), "not both"),
        ((a["id"], b["id"], "--checkpoint", "out"), "--checkpoint out: a comparison report asks each run's own"),
        ((a["id"], b["id"], "--swanlab"), "--swanlab logs a report to one run's SwanLab experiment"),
    ]
    for args, message in cases:
        result = mhsft("report", *args, "--prompts", "p.jsonl", env=env | ANSWER, cwd=workdir)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert infers(fake_swift) == [] and not (workdir / ".mhsft" / "reports").exists()
    single = mhsft("report", b["id"][:-1], "--samples", "0", env=env, cwd=workdir)  # one RUN: the run's report
    assert single.returncode == 0, single.stderr
    assert f"from run {b['id']}" in (Path(b["run_dir"]) / "report" / "report.md").read_text()


def test_out_must_be_new_empty_or_an_earlier_report(workdir: Path, env: dict, fake_swift) -> None:
    a, b = two_runs(workdir, env)
    write(workdir / "mine" / "notes.txt", "mine\n")
    args = ("report", a["id"], b["id"], "--samples", "0")
    refused = mhsft(*args, "--out", "mine", env=env, cwd=workdir)
    assert refused.returncode == 2 and "--out mine is not empty (notes.txt)" in refused.stderr
    assert "--overwrite" in refused.stderr and not (workdir / "mine" / "report.md").exists()
    assert mhsft(*args, "--out", "mine", "--overwrite", env=env, cwd=workdir).returncode == 0
    for _ in range(2):  # the default folder, then the same again: it is the report's own
        written = mhsft(*args, env=env, cwd=workdir)
        assert written.returncode == 0, written.stderr
    (folder,) = (workdir / ".mhsft" / "reports").iterdir()
    assert "No sample answers: --samples 0." in (folder / "report.md").read_text()
    assert (workdir / "mine" / "notes.txt").read_text() == "mine\n"


def test_every_run_answers_with_the_backend_the_report_names() -> None:
    from types import SimpleNamespace

    from mhsft.reporting.samples import generation

    first = SimpleNamespace(defaults=lambda section: {"infer_backend": "vllm", "max_new_tokens": 16})
    options = {"backend": None, "max_new_tokens": None, "temperature": 0.0}
    settings, said = generation(first, options)  # the first run's [infer]: what every run is then given
    assert settings == {"backend": "vllm", "max_new_tokens": 16, "temperature": 0.0} and "backend vllm" in said
    settings, said = generation(SimpleNamespace(defaults=lambda section: {}), options)
    assert settings["backend"] == "transformers" and "backend transformers" in said


def test_runs_without_held_out_prompts_are_compared_without_answers(workdir: Path, env: dict, fake_swift) -> None:
    a, b = two_runs(workdir, env)  # no val_dataset, no split-off rows, no --prompts
    result = mhsft("report", a["id"], b["id"], "--out", "rep", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "no held-out prompts" in result.stderr and infers(fake_swift) == []
    md = (workdir / "rep" / "report.md").read_text()
    assert "| sft.lora_rank | 4 | 8 |" in md and "No sample answers: run " in md and "--prompts FILE" in md
    missing = mhsft("report", a["id"], b["id"], "--prompts", "nope.jsonl", "--out", "rep2", env=env, cwd=workdir)
    assert missing.returncode == 2 and "--prompts nope.jsonl: no such file" in missing.stderr  # asked for: refused
