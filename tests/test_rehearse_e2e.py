"""`mhsft train --rehearse` on the real ms-swift (tiny CPU recipe): the longest rows first, an evaluation and a
save within N steps, the projection against the real full run, a broken eval failing with exit 5, and the real
run's output and --resume left alone."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mhsft.datagate.rows import lengths as kept_lengths
from mhsft.runs.checkpoints import last_training
from mhsft.runs.store import load_all
from mhsft.view.history import rows

from support.running import mhsft, tiny_fixtures, write
from support.waiting import wait_until

pytestmark = pytest.mark.e2e
TIMEOUT = 900
STEPS = 3
SPLIT = ("--set", "sft.split_dataset_ratio=0.2")
ANSWER = {"from": "gpt", "value": "ok"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    built = tiny_fixtures(tmp_path_factory.mktemp("rehearse"))
    fx = built.fx
    # one torch thread: on a shared CPU, threads spinning against other jobs make step times swing 30x
    env = built.env | {"OMP_NUM_THREADS": "1"}
    rng = random.Random(7)  # the fixture's rows (about 30 tokens) plus 16 long ones of different lengths
    long = [
        json.dumps({"conversations": [{"from": "human", "value": "tell me " * rng.randint(10, 40)}, ANSWER]})
        for _ in range(16)
    ]
    mixed = write(fx.root / "data" / "mixed.jsonl", "\n".join([*fx.train.read_text().splitlines(), *long]) + "\n")
    return SimpleNamespace(fx=fx, work=fx.root, env=env, mixed=mixed, output=fx.root / "output")


def rehearse(tiny, *args: str) -> tuple[int, dict, str]:
    result = mhsft(
        "train",
        "tiny",
        "--rehearse",
        "--steps",
        str(STEPS),
        "--json",
        *args,
        env=tiny.env,
        cwd=tiny.work,
        timeout=TIMEOUT,
    )
    assert "Traceback (most recent call last)" not in result.stderr and result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


def test_full_run_then_rehearsal_projects_its_wall_time_and_leaves_it_alone(tiny) -> None:
    full = mhsft("train", "tiny", env=tiny.env, cwd=tiny.work, timeout=TIMEOUT)
    assert full.returncode == 0, full.stderr
    (record,) = load_all(tiny.work)
    before = tree(tiny.output)
    code, verdict, stderr = rehearse(tiny, "--set", f"sft.logging_dir={tiny.output}/tb")  # TensorBoard writes there
    assert Path(verdict["run_dir"], "runs").is_dir()
    assert code == 0, stderr
    assert tree(tiny.output) == before  # the real run's folder is untouched
    assert last_training(tiny.work).id == record.id  # infer/export/deploy still use the real run
    resume = mhsft("train", "tiny", "--resume", "--dry-run", env=tiny.env | {"MHSFT_NO_DATA_CHECK": "1"}, cwd=tiny.work)
    assert resume.returncode == 0 and str(Path(record.run_dir) / "checkpoint-20") in resume.stdout, resume.stderr
    rehearsal = [r for r in load_all(tiny.work) if r.extra.get("rehearsal")]
    assert len(rehearsal) == 1 and rehearsal[0].run_dir == verdict["run_dir"]
    assert rehearsal[0].output_dir == f"{tiny.output}-rehearsal"
    assert rehearsal[0].argv[rehearsal[0].argv.index("--swanlab_exp_name") + 1].endswith("-rehearsal")
    projected, measured = verdict["projection"]["wall_s"], record.duration_s
    error = (projected - measured) / measured
    print(f"projection {projected:.1f} s, full tiny run {measured:.1f} s: error {error:+.1%}")
    # a sanity band only: two real trainings on a shared CPU swing too much for the 25% goal, which
    # scripts/bench_rehearse.py measures and prints
    assert verdict["projection"]["steps"] == 20 and 1 / 3 <= projected / measured <= 3


def test_rehearsal_puts_the_longest_rows_first_evaluates_and_saves_within_n_steps(tiny) -> None:
    from datasets import load_from_disk

    code, verdict, stderr = rehearse(tiny, "--set", f"sft.dataset=['{tiny.mixed}']", *SPLIT)
    assert code == 0, stderr
    assert [(m["name"], m["status"]) for m in verdict["moments"]] == [
        ("longest batches", "passed"), ("evaluation", "passed"), ("checkpoint save", "passed")
    ]  # fmt: skip
    run_dir = Path(verdict["run_dir"])
    assert (run_dir / f"checkpoint-{STEPS}" / "trainer_state.json").is_file()
    logged = rows(run_dir / "logging.jsonl")
    assert [r["global_step/max_steps"] for r in logged if "eval_loss" in r] == [f"{STEPS}/{STEPS}"]
    batch = 2 * 8  # per_device_train_batch_size 2 x grad-accum 8 (swift: ceil(16 / 2)) x 1 process
    derived = load_from_disk(str(run_dir / "rehearsal-data" / "train"))["lengths"]
    derived = [max(n) if isinstance(n, list) else n for n in derived]
    all_lengths = sorted(gate_lengths(tiny.work, derived), reverse=True)
    assert len(derived) == STEPS * batch and derived == sorted(derived, reverse=True)
    assert derived == all_lengths[: STEPS * batch]
    first = next(r for r in logged if r.get("global_step/max_steps") == f"1/{STEPS}")
    assert first["num_input_tokens_seen"] >= sum(derived[:batch]) > batch * 40  # step 1 trained the 16 long rows
    assert verdict["measured"]["tokens_per_s"] > 0 and verdict["measured"]["step_s"] > 0


def gate_lengths(work: Path, derived: list[int]) -> list[int]:
    """The train lengths of the gate's report whose cached dataset the rehearsal was derived from."""
    for entry in (work / ".mhsft" / "data-cache").glob("*/export/rows.npz"):
        lengths = kept_lengths(entry.parent.parent)["train"]
        if max(lengths) == max(derived):
            return lengths
    raise AssertionError("no gate report holds the derived rows")


def test_a_broken_eval_fails_the_rehearsal_at_the_eval_moment_with_exit_5(tiny) -> None:
    code, verdict, stderr = rehearse(tiny, *SPLIT, "--set", "sft.metric_for_best_model=bogus")
    assert code == 5, stderr
    moments = {m["name"]: m for m in verdict["moments"]}
    assert moments["longest batches"]["status"] == "passed"
    assert moments["evaluation"]["status"] == "failed" and "eval_bogus" in moments["evaluation"]["detail"]
    assert moments["checkpoint save"]["status"] == "skipped" and verdict["swift_exit"] == 1
    assert "rehearsal failed at the evaluation" in stderr


def test_swift_failing_before_its_first_step_gives_swifts_own_exit_code(tiny) -> None:
    code, verdict, stderr = rehearse(tiny, "--set", "sft.lora_rank=0")  # peft refuses it while swift prepares the model
    assert code == verdict["swift_exit"] != 0 and code != 5, stderr
    assert "swift crashed before the rehearsal's first step" in stderr
    assert [m["status"] for m in verdict["moments"]] == ["skipped"] * 3


def test_ctrl_c_during_a_real_rehearsal_is_an_interruption_not_a_verdict(tiny) -> None:
    folders = Path(f"{tiny.output}-rehearsal")
    earlier = set(folders.glob("v*"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "train", "tiny", "--rehearse", "--steps", "40"],
        env=tiny.env,
        cwd=tiny.work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def training() -> bool:
        return any("loss" in r for d in set(folders.glob("v*")) - earlier for r in rows(d / "logging.jsonl"))

    wait_until(lambda: training() or proc.poll() is not None, TIMEOUT, "swift to log a training step")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "error: the rehearsal was interrupted (Ctrl-C, SIGINT) at step " in err
    assert "no verdict on the recipe" in err and "fix the recipe" not in err and "rehearsal: FAILED" not in out
    (record,) = [r for r in load_all(tiny.work) if r.extra.get("rehearsal") and Path(r.run_dir) not in earlier]
    assert record.status == "interrupted"
