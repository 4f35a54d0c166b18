"""`mhsft sweep` with the fake swift: bad spaces refused before anything starts, every trial a recorded run,
trials side by side on disjoint GPUs, a stopped sweep resumed, and `sweep show`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_e2e import CHROMIUM, chromium

from support.environment import SECRET
from support.running import local_recipe, mhsft, write
from support.waiting import wait_until


def records(workdir: Path) -> list[dict]:
    folder = workdir / ".mhsft" / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def show(workdir: Path, env: dict, sweep_id: str = "") -> dict:
    result = mhsft("sweep", "show", *([sweep_id] if sweep_id else []), "--json", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "sft.learning_rate=[1e-4,"], "--grid sft.learning_rate=[1e-4,: not a TOML array"),
        (["--grid", "sft.learning_rate=1e-4"], "expected an array of values"),
        (["--grid", "learning_rate=[1e-4]"], "is not section.key"),
        (["--grid", "sft.lora_r=[8,16]"], "[sft] lora_r: not an argument of `swift sft`"),
        (["--grid", "sft.lora_rank=[]"], "the list is empty"),
        (["--grid", "sft.lora_rank=[8,8]"], "lists a value twice"),
        (["--grid", "sft.lora_rank=['eight']"], "lora_rank"),
        (["--grid", "swanlab.project=['a','b']"], "[swanlab] cannot be swept"),
        (["--zip", "sft.lora_rank=[8,16]", "--zip", "sft.lora_alpha=[16]"], "the same length"),
        (["--range", "sft.learning_rate=1e-5..1e-3"], "a grid takes lists only"),
        (["--method", "tpe", "--range", "sft.learning_rate=1e-3..1e-5"], "a range needs LOW < HIGH"),
        (["--method", "tpe", "--range", "sft.learning_rate=0..1e-3:log", "--trials", "2"], "0 < LOW < HIGH"),
        (["--method", "tpe", "--grid", "sft.lora_rank=[8,16]"], "--trials N"),
        (["--method", "bayes", "--grid", "sft.lora_rank=[8,16]"], "expected one of grid, random, tpe"),
        (["--grid", "sft.lora_rank=[8,16]", "--metric", "eval_loss"], "no eval set"),
        (["--grid", "sft.lora_rank=[8,16]", "--parallel", "2"], "--parallel 2"),
        ([], "nothing to vary"),
    ],
)
def test_a_bad_space_exits_2_and_starts_nothing(workdir: Path, env: dict, fake_swift, args, message) -> None:
    local_recipe(workdir)
    result = mhsft("sweep", "r.toml", *args, env=env, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert fake_swift.calls() == [] and records(workdir) == []
    assert not (workdir / ".mhsft" / "sweeps").exists()


@pytest.mark.parametrize("command", [["submit", "r.toml", "--sweep"], ["sweep", "r.toml", "--slurm"]])
def test_a_job_array_on_offline_nodes_is_refused_before_anything(workdir: Path, env: dict, fake_swift, command) -> None:
    local_recipe(workdir, "\n[slurm]\noffline_nodes = true\n[sweep.grid]\nsft.lora_rank = [4, 8]\n")
    for dry in ([], ["--dry-run"]):
        result = mhsft(*command, *dry, env=env, cwd=workdir)
        assert result.returncode == 2 and "[slurm] offline_nodes = true" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and fake_swift.calls() == []
    assert not (workdir / ".mhsft").exists()


def test_sweep_options_without_a_sweep_are_refused(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir, "\n[slurm]\ncpus_per_task = 1\n")
    result = mhsft("submit", "r.toml", "--parallel", "3", "--metric", "last_loss", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 2 and "--metric, --parallel only apply to a sweep" in result.stderr, result.stderr
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()


def test_a_sweep_table_in_the_recipe_and_a_dry_run(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(
        workdir,
        "learning_rate = 1e-3\n[sweep]\nmetric = 'last_loss'\n[sweep.grid]\nsft.learning_rate = [1e-4, 1e-3]\n"
        "[sweep.zip]\nsft.max_length = [512, 512]\nsft.per_device_train_batch_size = [4, 8]\n",
    )
    result = mhsft("sweep", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "trial 0 lr1e-4-len512-bs4: sft.learning_rate 1e-3 -> 1e-4, sft.max_length unset -> 512, "
        "sft.per_device_train_batch_size unset -> 4",
        "trial 1 lr1e-4-len512-bs8: sft.learning_rate 1e-3 -> 1e-4, sft.max_length unset -> 512, "
        "sft.per_device_train_batch_size unset -> 8",
        "trial 2 lr1e-3-len512-bs4: sft.max_length unset -> 512, sft.per_device_train_batch_size unset -> 4",
        "trial 3 lr1e-3-len512-bs8: sft.max_length unset -> 512, sft.per_device_train_batch_size unset -> 8",
    ]
    assert "metric last_loss (minimize)" in result.stderr
    assert fake_swift.calls() == [] and records(workdir) == []


def test_each_grid_trial_is_a_recorded_run_in_one_swanlab_group(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir)
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    grid = ["--grid", "sft.learning_rate=[1e-4,2e-4]", "--grid", "sft.lora_rank=[8,16]"]
    result = mhsft("sweep", "r.toml", *grid, "--metric", "last_loss", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    runs = records(workdir)
    (sweep_id,) = {r["extra"]["sweep"]["id"] for r in runs}
    by_trial = {r["extra"]["sweep"]["trial"]: r for r in runs}
    names = ["lr1e-4-r8", "lr1e-4-r16", "lr2e-4-r8", "lr2e-4-r16"]
    assert sorted(by_trial) == [0, 1, 2, 3] and [by_trial[n]["extra"]["sweep"]["name"] for n in range(4)] == names
    assert by_trial[3]["extra"]["sweep"]["values"] == {"sft.learning_rate": 2e-4, "sft.lora_rank": 16}
    assert {r["status"] for r in runs} == {"succeeded"} and len({r["run_dir"] for r in runs}) == 4
    calls = fake_swift.calls()
    assert [c["argv"][c["argv"].index("--swanlab_exp_name") + 1] for c in calls] == names
    assert {c["env"]["SWANLAB_GROUP"] for c in calls} == {sweep_id}
    assert {c["argv"][c["argv"].index("--swanlab_project") + 1] for c in calls} == {"unit-proj"}
    assert [c["argv"][c["argv"].index("--learning_rate") + 1] for c in calls] == [
        "0.0001",
        "0.0001",
        "0.0002",
        "0.0002",
    ]
    doc = show(workdir, env)
    assert doc["id"] == sweep_id and doc["status"] == "finished"
    assert [t["run"] for t in doc["trials"]] == [by_trial[n]["id"] for n in range(4)]  # all 1.0: trial order
    assert doc["trials"][0]["best"] and doc["trials"][0]["metric"] == 1.0
    table = mhsft("sweep", "show", sweep_id[:15], env=env, cwd=workdir)
    assert "best" in table.stdout and f"mhsft infer --run {by_trial[0]['id']}" in table.stderr
    for path in workdir.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert SECRET not in path.read_text(errors="replace"), path


def test_trials_side_by_side_get_disjoint_gpus(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir, '\n[launch]\ngpus = "0,1"\n')
    env = env | {"FAKE_SWIFT_MODE": "wait:0"}
    grid = ["--grid", "sft.lora_rank=[4,8,16]", "--parallel", "2", "--metric", "last_loss"]
    proc = subprocess.Popen([sys.executable, "-m", "mhsft", "sweep", "r.toml", *grid], cwd=workdir, env=env)
    try:
        wait_until(lambda: len(fake_swift.calls()) == 2, 60, "two trials running at once")
        first = fake_swift.calls()
        assert sorted(c["env"]["CUDA_VISIBLE_DEVICES"] for c in first) == ["0", "1"]
        Path(f"{fake_swift.log}.go").write_text("")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    calls = fake_swift.calls()
    assert len(calls) == 3 and {c["env"]["CUDA_VISIBLE_DEVICES"] for c in calls} <= {"0", "1"}
    logs = sorted(p.name for p in (workdir / ".mhsft" / "sweeps").glob("*/trial-*.log"))
    assert logs == ["trial-0.log", "trial-1.log", "trial-2.log"]


def test_a_stopped_sweep_keeps_its_finished_trials_and_resume_runs_only_the_rest(
    workdir: Path, env: dict, fake_swift
) -> None:
    local_recipe(workdir)
    space = ["--zip", "env.FAKE_SWIFT_MODE=['exit:0','wait:0','exit:0']", "--zip", "sft.lora_rank=[4,8,16]"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "sweep", "r.toml", *space, "--metric", "last_loss"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = Path(f"{fake_swift.log}.started")
        wait_until(started.exists, 60, "the second trial's swift")
        (folder,) = (workdir / ".mhsft" / "sweeps").iterdir()
        busy = mhsft("sweep", "resume", folder.name, env=env, cwd=workdir)
        assert busy.returncode == 2 and "is still running" in busy.stderr
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "mhsft sweep resume" in stderr
    runs = {r["extra"]["sweep"]["trial"]: r for r in records(workdir)}
    assert sorted(runs) == [0, 1] and runs[0]["status"] == "succeeded" and runs[1]["status"] == "interrupted"
    doc = show(workdir, env)
    assert doc["status"] == "interrupted"
    assert [(t["trial"], t["status"]) for t in doc["trials"]] == [
        (0, "succeeded"),
        (1, "interrupted"),
        (2, "not started"),
    ]
    Path(f"{fake_swift.log}.go").write_text("")
    resumed = mhsft("sweep", "resume", doc["id"], env=env, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert len(fake_swift.calls()) == 4  # trials 1 and 2 again, not 0
    assert [t["status"] for t in show(workdir, env)["trials"]] == ["succeeded"] * 3
    again = mhsft("sweep", "resume", doc["id"], env=env, cwd=workdir)
    assert again.returncode == 0 and "nothing to resume" in again.stderr and len(fake_swift.calls()) == 4


def test_tpe_with_a_seed_samples_the_same_trials_again(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir)
    space = ["--method", "tpe", "--trials", "3", "--seed", "7", "--metric", "last_loss"]
    space += ["--range", "sft.learning_rate=1e-5..1e-3:log", "--grid", "sft.lora_rank=[4,8,16]"]
    values = []
    for _ in range(2):
        result = mhsft("sweep", "r.toml", *space, env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr
        doc = show(workdir, env)
        values.append(sorted((t["trial"], json.dumps(t["values"])) for t in doc["trials"]))
        assert (workdir / ".mhsft" / "sweeps" / doc["id"] / "journal.log").is_file()
    assert values[0] == values[1] and len(values[0]) == 3
    for _, text in values[0]:
        sampled = json.loads(text)
        assert 1e-5 <= sampled["sft.learning_rate"] <= 1e-3 and sampled["sft.lora_rank"] in (4, 8, 16)


def test_sweep_show_lists_the_mhsft_eval_scores_of_the_trials_evaluated(workdir: Path, env: dict, fake_swift) -> None:
    local_recipe(workdir)
    result = mhsft("sweep", "r.toml", "--grid", "sft.lora_rank=[4,8]", "--metric", "last_loss", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (path,) = [p for p in (workdir / ".mhsft" / "runs").glob("*.json") if '"trial": 1' in p.read_text()]
    record = json.loads(path.read_text())
    row = {"benchmark": "general_qa", "metric": "rouge-l-recall", "base": 0.125, "finetuned": 0.4375,
           "delta": 0.3125, "samples": 8, "metrics": {}}  # fmt: skip
    record["extra"]["eval"] = {"evaluated_at": "2026-12-01T10:00:00", "benchmarks": [row]}  # as mhsft eval writes
    path.write_text(json.dumps(record))
    assert [t["scores"] for t in show(workdir, env)["trials"]] == [{}, {"general_qa": 0.4375}]
    table = mhsft("sweep", "show", env=env | {"COLUMNS": "250"}, cwd=workdir).stdout
    header = next(line for line in table.splitlines() if "trial" in line and "status" in line)
    assert [c.strip() for c in header.split("┃")][-3:-1] == ["eval general_qa", "run"]
    body = [[c.strip() for c in line.split("│")][1:-1] for line in table.splitlines() if line.startswith("│")]
    assert [(cells[1], cells[-2], cells[-1]) for cells in body] == [
        ("0", "-", show(workdir, env)["trials"][0]["run"]),
        ("1", "0.4375", record["id"]),
    ]


def sweep_report(workdir: Path, env: dict) -> Path:
    """A two-trial sweep with the fake swift, and its report's folder (2 prompts answered by each trial)."""
    local_recipe(workdir)
    result = mhsft("sweep", "r.toml", "--grid", "sft.lora_rank=[4,8]", "--metric", "last_loss", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    for record in records(workdir):  # swift's args.json names the base model
        (Path(record["run_dir"]) / "checkpoint-20" / "args.json").write_text(json.dumps({"model": "model"}))
    write(workdir / "p.jsonl", "".join(f'{{"messages": [{{"role": "user", "content": "q{i}"}}]}}\n' for i in range(3)))
    sweep_id = show(workdir, env)["id"]
    answering = env | {"FAKE_SWIFT_ANSWER": "by {adapters}"}
    args = ("report", "--sweep", sweep_id, "--prompts", "p.jsonl", "--samples", "2")
    written = mhsft(*args, env=answering, cwd=workdir)
    assert written.returncode == 0, written.stderr
    write(workdir / "mine" / "notes.txt", "mine\n")
    refused = mhsft(*args, "--out", "mine", env=answering, cwd=workdir)  # not empty, not a report's folder
    assert refused.returncode == 2 and "--out mine is not empty (notes.txt)" in refused.stderr
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in (workdir / "mine").iterdir()) == ["notes.txt"]
    return workdir / ".mhsft" / "sweeps" / sweep_id / "report"


def test_the_sweep_report_puts_the_trials_and_their_answers_side_by_side(workdir: Path, env: dict, fake_swift) -> None:
    folder = sweep_report(workdir, env)
    markdown, page = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert "| setting | 0 r4 (best) | 1 r8 |" in markdown and "| sft.lora_rank | 4 | 8 |" in markdown
    assert "| last_loss | 1 | 1 |" in markdown and "![train loss of every run](curves.png)" in markdown
    assert page.count("<img ") == 1 and page.count("<table>") == 2 and (folder / "curves.png").is_file()
    by_trial = {r["extra"]["sweep"]["trial"]: r for r in records(workdir) if r["command"] == "sft"}
    tuned = [str(Path(by_trial[n]["run_dir"]) / "checkpoint-20") for n in (0, 1)]
    calls = [c["argv"] for c in fake_swift.calls() if c["argv"][0] == "infer"]
    assert [c[c.index("--adapters") + 1] for c in calls] == tuned  # one swift infer per trial, best first
    assert "| # | prompt | reference | 0 r4 (best) | 1 r8 |" in markdown
    assert f"| 2 | q1 | - | by {tuned[0]} | by {tuned[1]} |" in markdown and "| 3 |" not in markdown


@pytest.mark.skipif(not CHROMIUM.exists(), reason="the browser test needs /usr/bin/chromium")
def test_the_sweep_report_renders_in_chromium(workdir: Path, env: dict, fake_swift, tmp_path: Path) -> None:
    folder = sweep_report(workdir, env)
    dom = chromium(folder.joinpath("report.html").as_uri(), tmp_path / "profile", "--dump-dom")
    assert dom.count("<img ") == 1 and dom.count("<table>") == 2 and "0 r4 (best)" in dom and "1 r8" in dom
    side = dom.split('<table class="side-by-side">', 1)[1].split("</table>", 1)[0]
    assert side.count("<tr>") == 3  # the header and one row per prompt
