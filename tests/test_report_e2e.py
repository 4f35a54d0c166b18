"""`mhsft report` on a real tiny training (ms-swift on the CPU): every section, losses equal to logging.jsonl,
the side-by-side from two real `swift infer` runs, the export listed, SwanLab text, no secret, and the HTML
rendered by headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mhsft.trained.infer import BASE_MODEL_ARGS
from mhsft.view.links import flags
from test_e2e import CHROMIUM, chromium, records

from support.environment import SECRET
from support.running import mhsft, tiny_fixtures
from support.swanlog import read_texts

pytestmark = pytest.mark.e2e
TIMEOUT = 600
SAMPLES = 3


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> SimpleNamespace:
    """One tiny training with an eval set, a merged export, then `mhsft report --samples 3 --swanlab` (timed)."""
    built = tiny_fixtures(tmp_path_factory.mktemp("report"))
    fx, env = built.fx, built.env
    (fx.root / ".env").write_text(f"SWANLAB_API_KEY={SECRET}\n")
    evaluated = ["--set", f"sft.val_dataset=['{fx.val}']", "--set", "sft.eval_steps=10"]
    trained = mhsft("train", "tiny", *evaluated, env=env, cwd=fx.root, timeout=TIMEOUT)
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = mhsft("export", "--merge-lora", env=env, cwd=fx.root, timeout=TIMEOUT)
    assert exported.returncode == 0, exported.stderr[-3000:]
    started = time.monotonic()
    result = mhsft("report", "--samples", str(SAMPLES), "--swanlab", env=env, cwd=fx.root, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\nmhsft report on the tiny run: {elapsed:.1f} s")
    (record,) = records(fx.root, "sft")
    run_dir = Path(record["run_dir"])
    folder = run_dir / "report"
    return SimpleNamespace(
        fx=fx,
        env=env,
        result=result,
        record=record,
        run_dir=run_dir,
        folder=folder,
        md=(folder / "report.md").read_text(),
        html=(folder / "report.html").read_text(),
    )


def test_report_has_every_section_and_the_losses_of_logging_jsonl(reported) -> None:
    md, record = reported.md, reported.record
    assert f"report: {reported.folder / 'report.md'} and {reported.folder / 'report.html'}" in reported.result.stderr
    headings = ("1. Overview and set-up", "2. Training results", "3. Base vs fine-tuned", "4. Exported", "5. Appendix")
    for heading in headings:
        assert f"## {heading}" in md
    assert f"sha256 {record['recipe_sha256']}" in md and "| model | " + str(reported.fx.model) in md
    assert f"| val_dataset | \\['{reported.fx.val}'\\] |" in md  # the recipe's, not the gate's cache (brackets escaped)
    assert "| rows read | kept | dropped |" in md and "| tuner_type | lora |" in md and "| lora_rank | 8 |" in md
    assert "| ms-swift | 4.6" in md and "| torch | " in md and "| status | succeeded (exit 0) |" in md
    assert "swift sft --model" in md and "--swanlab_mode local" in md
    rows = [json.loads(line) for line in (reported.run_dir / "logging.jsonl").read_text().splitlines()]
    train = {int(r["global_step/max_steps"].split("/")[0]): r["loss"] for r in rows if "loss" in r}
    evals = {int(r["global_step/max_steps"].split("/")[0]): r["eval_loss"] for r in rows if "eval_loss" in r}
    for step in (10, 20):
        line = next(x for x in md.splitlines() if x.startswith(f"| {step} | "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(train[step], rel=1e-5)
        assert float(cells[2]) == pytest.approx(evals[step], rel=1e-5)
    last = re.search(r"\| last_loss \| (\S+) \|", md).group(1)
    assert float(last) == pytest.approx(train[max(train)], rel=1e-5)
    assert "![train loss (swift's plot)](train_loss.png)" in md
    assert (reported.folder / "train_loss.png").read_bytes() == (
        reported.run_dir / "images/train_loss.png"
    ).read_bytes()
    assert f"mhsft board {record['id']}" in md


def test_side_by_side_answers_come_from_swift_infer_with_and_without_the_adapter(reported) -> None:
    folder, checkpoint = reported.folder, reported.run_dir / "checkpoint-20"
    tuned = [json.loads(x) for x in (folder / "infer-finetuned.jsonl").read_text().splitlines()]
    base = [json.loads(x) for x in (folder / "infer-base.jsonl").read_text().splitlines()]
    prompts = [json.loads(x) for x in reported.fx.val.read_text().splitlines()][:SAMPLES]
    table = reported.md.split("## 3. Base vs fine-tuned", 1)[1].split("## 4.", 1)[0]
    lines = [x for x in table.splitlines() if re.match(r"\| \d+ \|", x)]
    assert len(lines) == len(tuned) == len(base) == SAMPLES
    for line, t, b, p in zip(lines, tuned, base, prompts, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == p["conversations"][0]["value"] and cells[2] == p["conversations"][1]["value"]
        shown = [t["response"].strip() or f"(blank: {len(t['response'])} whitespace characters)"]
        shown.append(b["response"].strip() or f"(blank: {len(b['response'])} whitespace characters)")
        assert [cells[4], cells[3]] == shown
    infers = records(reported.fx.root, "infer")
    with_adapter = [r for r in infers if "--adapters" in r["argv"]]
    without = [r for r in infers if "--adapters" not in r["argv"]]
    assert len(with_adapter) == len(without) == 1
    assert with_adapter[0]["argv"][with_adapter[0]["argv"].index("--adapters") + 1] == str(checkpoint)
    args = json.loads((checkpoint / "args.json").read_text())
    tuned_flags, base_flags = flags(with_adapter[0]["argv"]), flags(without[0]["argv"])
    for key in ("model", "template", "system"):
        assert base_flags.pop(key) == args[key]
    base_flags = {k: v for k, v in base_flags.items() if k not in BASE_MODEL_ARGS}
    tuned_flags.pop("adapters")
    assert base_flags.pop("result_path").endswith("infer-base.jsonl")
    assert tuned_flags.pop("result_path").endswith("infer-finetuned.jsonl")
    assert base_flags == tuned_flags and {"max_new_tokens", "temperature", "val_dataset"} <= tuned_flags.keys()


def test_export_is_listed_and_the_report_is_logged_to_swanlab_and_no_secret_anywhere(reported) -> None:
    (export,) = records(reported.fx.root, "export")
    section = reported.md.split("## 4. Exported and deployed", 1)[1].split("## 5.", 1)[0]
    assert (
        f"| {export['id']} | export | succeeded | checkpoint-20 | {reported.run_dir}/checkpoint-20-merged |" in section
    )
    logged = read_texts(reported.fx.root / "swanlog")["mhsft/report"]
    assert logged == [(reported.record["swanlab_run_id"], reported.md)]
    for path in reported.folder.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in reported.result.stdout + reported.result.stderr


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="the browser test needs /usr/bin/chromium (Debian: apt-get install chromium)"
)
def test_report_html_in_a_real_browser_shows_the_curves_and_the_tables(reported, tmp_path) -> None:
    page = (reported.folder / "report.html").as_uri()
    dom = chromium(page, tmp_path / "p1", "--dump-dom")
    images = re.findall(r'<img id="([^"]+)" alt="[^"]*" src="data:image/png;base64,', dom)
    assert images == ["train_loss.png", "eval_loss.png"]
    side = dom.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    assert side.count("<tr>") == SAMPLES + 1  # the header and one row per prompt
    assert dom.split('<table class="checkpoints">', 1)[1].split("</table>", 1)[0].count("<tr>") == 3
    assert not re.search(r'(src|href)="(https?:)?//', dom)  # nothing fetched from elsewhere
    shot = tmp_path / "report.png"
    chromium(page, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1000,2200")
    assert shot.stat().st_size > 10_000
    if os.environ.get("MHSFT_REPORT_SCREENSHOT"):  # keep the artifact (README's picture comes from here)
        shutil.copyfile(shot, os.environ["MHSFT_REPORT_SCREENSHOT"])
