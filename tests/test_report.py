"""`mhsft report` with a fake `swift`: the failed run, bad input, and the curve drawn when swift made none.

The report on a real training run (every section, swift infer twice, the browser) is in test_report_e2e.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from support.environment import SECRET
from support.running import local_recipe, mhsft, training_started, write


def train(workdir: Path, env: dict, mode: str = "exit:0") -> dict:
    result = mhsft("train", "r.toml", env=env | {"FAKE_SWIFT_MODE": mode}, cwd=workdir)
    (record,) = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*-sft-*.json")]
    return record | {"code": result.returncode}


def test_failed_run_gets_a_report_of_what_happened_without_the_side_by_side(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    fake_swift.log.with_name(fake_swift.log.name + ".go").write_text("")  # wait:1 then exits 1 at once
    record = train(workdir, env, "wait:1")
    assert record["code"] == 1 and record["status"] == "failed"
    result = mhsft("report", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    folder = Path(record["run_dir"]) / "report"
    text = (folder / "report.md").read_text()
    assert "| status | failed (exit 1) |" in text
    assert "No side-by-side: the run ended failed before any checkpoint." in text
    assert "No checkpoint was saved." in text and "No loss was logged" in text
    assert [c["argv"][0] for c in fake_swift.calls()] == ["sft"]  # no swift infer was started
    html = (folder / "report.html").read_text()
    assert "<h2>3. Base vs fine-tuned, side by side</h2>" in html
    assert SECRET not in text + html + result.stdout + result.stderr


def test_bad_input_unknown_run_no_prompts_missing_prompts_file(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    none = mhsft("report", env=env, cwd=workdir)
    assert none.returncode == 2 and "no training run is recorded" in none.stderr
    record = train(workdir, env)
    unknown = mhsft("report", "20991231-000000-sft-zzzz", env=env, cwd=workdir)
    assert unknown.returncode == 2 and "is not recorded" in unknown.stderr and record["id"] in unknown.stderr
    no_rows = mhsft("report", env=env, cwd=workdir)
    assert no_rows.returncode == 2 and "no held-out prompts" in no_rows.stderr and "--prompts FILE" in no_rows.stderr
    missing = mhsft("report", "--prompts", "nope.jsonl", env=env, cwd=workdir)
    assert missing.returncode == 2 and "--prompts nope.jsonl: no such file" in missing.stderr
    for result in (none, unknown, no_rows, missing):
        assert "Traceback" not in result.stderr
    assert [c["argv"][0] for c in fake_swift.calls()] == ["sft"]  # none of them started swift


def test_curve_is_drawn_from_logging_jsonl_when_swift_made_no_images(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    record = train(workdir, env)
    run_dir = Path(record["run_dir"])
    rows = [{"loss": 2.0 - s / 10, "global_step/max_steps": f"{s}/20"} for s in range(2, 21, 2)]
    rows.insert(5, {"eval_loss": 1.5, "global_step/max_steps": "10/20"})
    (run_dir / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not (run_dir / "images").exists()
    result = mhsft("report", "--samples", "0", "--out", "rep", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    png = (workdir / "rep" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    text = (workdir / "rep" / "report.md").read_text()
    assert "![train and eval loss (drawn from logging.jsonl)](loss.png)" in text
    assert "| last_loss | 0 |" in text and "No side-by-side: --samples 0." in text
    assert "data:image/png;base64," in (workdir / "rep" / "report.html").read_text()


def test_split_off_rows_are_the_prompts_both_runs_answer(workdir, env, fake_swift) -> None:
    local_recipe(workdir, "split_dataset_ratio = 0.2")
    run_dir = Path(train(workdir, env)["run_dir"])
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(4)
    ]
    (run_dir / "val_dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # as swift writes it
    checkpoint = run_dir / "checkpoint-20"
    missing = mhsft("report", "--samples", "2", env=env, cwd=workdir)
    assert missing.returncode == 2 and "args.json does not name the base model" in missing.stderr
    saved = {"model": str(workdir / "model"), "template": "qwen2_5", "system": "Be brief."}
    (checkpoint / "args.json").write_text(json.dumps(saved))
    result = mhsft("report", "--samples", "2", env=env, cwd=workdir)
    assert result.returncode == 2 and "swift infer wrote no readable results" in result.stderr  # the fake wrote none
    prompts = run_dir / "report" / "prompts.jsonl"
    assert [json.loads(x) for x in prompts.read_text().splitlines()] == rows[:2]
    infer = [c["argv"] for c in fake_swift.calls() if c["argv"][0] == "infer"]
    assert len(infer) == 1 and "--adapters" not in infer[0]  # the base run comes first
    assert infer[0][infer[0].index("--val_dataset") + 1] == str(prompts)
    forced = mhsft("report", "--samples", "1", "--prompts", str(run_dir / "val_dataset.jsonl"), env=env, cwd=workdir)
    assert forced.returncode == 2 and "Traceback" not in forced.stderr


def test_base_run_uses_the_checkpoints_model_template_and_system(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run_dir = Path(train(workdir, env)["run_dir"])
    checkpoint = run_dir / "checkpoint-20"
    saved = {"model": str(workdir / "model"), "template": "qwen2_5", "system": "Be brief.", "lora_rank": 8}
    (checkpoint / "args.json").write_text(json.dumps(saved))
    write(workdir / "p.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n')
    env = env | {"FAKE_SWIFT_MODE": "exit:3"}  # the base run fails: its log is named, nothing else runs
    result = mhsft("report", "--prompts", "p.jsonl", env=env, cwd=workdir)
    assert result.returncode == 2 and "swift infer (base) failed with exit 3" in result.stderr
    assert "infer-base.log" in result.stderr
    (call,) = [c["argv"] for c in fake_swift.calls() if c["argv"][0] == "infer"]
    assert "--adapters" not in call
    assert [call[call.index(f"--{k}") + 1] for k in ("model", "template", "system")] == [
        saved["model"],
        "qwen2_5",
        "Be brief.",
    ]


def test_swanlab_for_a_cloud_run_without_a_key_is_a_clear_error(workdir, env, fake_swift) -> None:
    local_recipe(workdir, mode="cloud")
    trained = mhsft("train", "r.toml", "--no-preflight", env=env, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    result = mhsft("report", "--samples", "0", "--swanlab", env=env, cwd=workdir)
    assert result.returncode == 2 and "--swanlab: no SwanLab API key" in result.stderr
    assert "report: " in result.stderr  # the files are written first
    assert "Traceback" not in result.stderr


def _answerable(workdir: Path, env: dict) -> Path:
    """A trained run whose checkpoint names its base model (as swift's args.json does); its run folder."""
    local_recipe(workdir)
    run_dir = Path(train(workdir, env)["run_dir"])
    saved = {"model": str(workdir / "model"), "template": "qwen2_5"}
    (run_dir / "checkpoint-20" / "args.json").write_text(json.dumps(saved))
    return run_dir


def test_out_is_a_folder_of_the_reports_own_and_an_input_there_is_never_cut(workdir, env, fake_swift) -> None:
    _answerable(workdir, env)
    rows = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n" for i in range(5))
    mine = write(workdir / "mine" / "prompts.jsonl", rows)
    answering = env | {"FAKE_SWIFT_ANSWER": "fine"}
    args = ("report", "--prompts", "mine/prompts.jsonl", "--samples", "2")
    refused = mhsft(*args, "--out", "mine", env=answering, cwd=workdir)
    assert refused.returncode == 2 and "--out mine is not empty (prompts.jsonl)" in refused.stderr
    assert "--overwrite" in refused.stderr
    forced = mhsft(*args, "--out", "mine", "--overwrite", env=answering, cwd=workdir)
    assert forced.returncode == 2 and "would be replaced by the 2 row(s) used" in forced.stderr
    assert mine.read_text() == rows and not [c for c in fake_swift.calls() if c["argv"][0] == "infer"]
    for _ in range(2):  # a new folder, then the same one again: it is the report's own
        written = mhsft(*args, "--out", "rep", env=answering, cwd=workdir)
        assert written.returncode == 0, written.stderr
    assert len((workdir / "rep" / "prompts.jsonl").read_text().splitlines()) == 2
    assert "| 2 | q1 | - | fine | fine |" in (workdir / "rep" / "report.md").read_text()
    assert mine.read_text() == rows
    for result in (refused, forced):
        assert "Traceback" not in result.stderr


HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(2)> <iframe src='http://127.0.0.1:9/f'></iframe> "
    "![t](http://127.0.0.1:9/pixel.png) [click](javascript:alert(3)) <http://127.0.0.1:9/auto>"
)


def _rendered_tags(markdown: str) -> list[tuple[str, dict]]:
    """The HTML elements a Markdown viewer that renders inline HTML (markdown-it, CommonMark + tables) makes."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    found: list[tuple[str, dict]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Tags().feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return found


def test_report_md_shows_hostile_prompts_and_answers_as_text(workdir, env, fake_swift) -> None:
    _answerable(workdir, env)
    write(workdir / "p.jsonl", json.dumps({"messages": [{"role": "user", "content": HOSTILE}]}) + "\n")
    result = mhsft(
        "report", "--prompts", "p.jsonl", "--samples", "1", env=env | {"FAKE_SWIFT_ANSWER": HOSTILE}, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    folder = next((workdir / "out").glob("v*")) / "report"
    md = (folder / "report.md").read_text()
    tags = _rendered_tags(md)
    assert not [t for t, _ in tags if t in ("script", "iframe")]
    assert [a["src"] for t, a in tags if t == "img"] == ["loss.png"]  # the curve beside it; nothing from elsewhere
    assert not [a for t, a in tags if t == "a" and "127.0.0.1" in a.get("href", "") + a.get("src", "")]
    assert not [a for t, a in tags if t == "a" and a.get("href", "").startswith("javascript")]
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert rendered.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # prompt, base and fine-tuned answer
    assert "<script" not in (folder / "report.html").read_text()


def test_report_of_a_run_still_going_says_so_in_words(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    proc, _ = training_started(
        workdir, env | {"FAKE_SWIFT_MODE": "sleep"}, fake_swift, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        result = mhsft("report", "--samples", "0", "--out", "rep", env=env, cwd=workdir)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    assert result.returncode == 0, result.stderr
    text = (workdir / "rep" / "report.md").read_text()
    assert "| status | still running |" in text and "exit None" not in text
    assert "No side-by-side: the run is still running: no checkpoint yet." in text
