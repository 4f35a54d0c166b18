"""`mhsft report RUN RUN` on two real tiny trainings (ms-swift on the CPU): the settings that differ, eval losses
equal to each run's logging.jsonl, the eval curves overlaid in one image, and each run's answers to the same
held-out prompts from one real `swift infer` per run; the HTML rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mhsft.view.links import flags
from test_e2e import CHROMIUM, chromium, records

from support.running import mhsft, tiny_fixtures

pytestmark = pytest.mark.e2e
TIMEOUT = 900
SAMPLES = 2
RATES = ("1e-3", "5e-3")


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> SimpleNamespace:
    """Two 4-step trainings that differ in learning rate, then `mhsft report A B --samples 2` (timed)."""
    built = tiny_fixtures(tmp_path_factory.mktemp("compare"))
    fx, env = built.fx, built.env
    short = ["--set", "sft.max_steps=4", "--set", "sft.save_steps=4", "--set", "sft.eval_steps=2"]
    short += ["--set", "sft.logging_steps=1", "--set", f"sft.val_dataset=['{fx.val}']"]
    for rate in RATES:
        trained = mhsft("train", "tiny", *short, "--set", f"sft.learning_rate={rate}", env=env, cwd=fx.root)
        assert trained.returncode == 0, trained.stderr[-3000:]
    runs = sorted(records(fx.root, "sft"), key=lambda r: r["started_at"])
    started = time.monotonic()
    result = mhsft(
        "report", runs[0]["id"], runs[1]["id"], "--samples", str(SAMPLES), env=env, cwd=fx.root, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\nmhsft report of two tiny runs with {SAMPLES} samples: {time.monotonic() - started:.1f} s")
    (folder,) = (fx.root / ".mhsft" / "reports").iterdir()
    return SimpleNamespace(fx=fx, runs=runs, folder=folder, md=(folder / "report.md").read_text())


def logged_eval(run: dict) -> float:
    rows = [json.loads(line) for line in (Path(run["run_dir"]) / "logging.jsonl").read_text().splitlines()]
    return [r["eval_loss"] for r in rows if "eval_loss" in r][-1]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_the_runs_settings_results_and_curves_side_by_side(compared) -> None:
    a, b = compared.runs
    md = compared.md
    assert f"| setting | {a['id']} | {b['id']} |" in md
    rate = cells(next(x for x in md.splitlines() if x.startswith("| sft.learning_rate |")))
    assert [float(v) for v in rate[1:]] == [float(r) for r in RATES]
    losses = cells(next(x for x in md.splitlines() if x.startswith("| eval_loss |")))
    assert [float(v) for v in losses[1:]] == pytest.approx([logged_eval(a), logged_eval(b)], rel=1e-5)
    assert "![eval loss of every run](curves.png)" in md and (compared.folder / "curves.png").stat().st_size > 5000


def test_each_run_answers_the_same_prompts_with_its_own_checkpoint(compared) -> None:
    a, b = compared.runs
    section = compared.md.split("## Sample answers to the same prompts", 1)[1]
    lines = [x for x in section.splitlines() if re.match(r"\| \d+ \|", x)]
    prompts = [json.loads(x) for x in compared.fx.val.read_text().splitlines()][:SAMPLES]
    answers = [
        [json.loads(x) for x in (compared.folder / f"infer-{r['id']}.jsonl").read_text().splitlines()] for r in (a, b)
    ]
    assert len(lines) == SAMPLES and [len(x) for x in answers] == [SAMPLES, SAMPLES]
    for i, (line, prompt) in enumerate(zip(lines, prompts, strict=True)):
        row = cells(line)
        assert row[1:3] == [prompt["conversations"][0]["value"], prompt["conversations"][1]["value"]]
        expected = [
            x[i]["response"].strip() or f"(blank: {len(x[i]['response'])} whitespace characters)" for x in answers
        ]
        assert row[3:] == expected
    infers = sorted(records(compared.fx.root, "infer"), key=lambda r: r["started_at"])
    assert len(infers) == 2  # one swift infer per run
    used = [flags(r["argv"]) for r in infers]
    assert [u.pop("adapters") for u in used] == [str(Path(r["run_dir"]) / "checkpoint-4") for r in (a, b)]
    assert [u.pop("result_path") for u in used] == [str(compared.folder / f"infer-{r['id']}.jsonl") for r in (a, b)]
    assert used[0] == used[1] and used[0]["val_dataset"] == str(compared.folder / "prompts.jsonl")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="the browser test needs /usr/bin/chromium")
def test_the_comparison_in_a_real_browser_has_one_curve_image_and_one_side_by_side(compared, tmp_path) -> None:
    dom = chromium((compared.folder / "report.html").as_uri(), tmp_path / "profile", "--dump-dom")
    assert re.findall(r'<img id="([^"]+)" alt="[^"]*" src="data:image/png;base64,', dom) == ["curves.png"]
    assert dom.count('<table class="side-by-side">') == 1
    side = dom.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    assert side.count("<tr>") == SAMPLES + 1 and all(r["id"] in side for r in compared.runs)
    assert not re.search(r'(src|href)="(https?:)?//', dom)  # nothing fetched from elsewhere
