"""`mhsft train --rehearse` without running swift: row picking, failure attribution, schedule, record marker,
and the push write-permission check with the hubs' real SDKs against the 127.0.0.1 stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from mhsft.environment import Environment
from mhsft.recipe.load import load
from mhsft.recipe.validate import validate
from mhsft.rehearse.push import check_push, decide
from mhsft.rehearse.subset import longest
from mhsft.rehearse.verdict import (
    BATCHES,
    EVALUATION,
    FAILED,
    PASSED,
    SAVE,
    SKIPPED,
    crashed_in,
    full_schedule,
    judge,
    measure,
    project,
)
from mhsft.runs.checkpoints import last_training

from support.environment import SECRET, base_env
from support.hub_server import HubStandIn
from support.running import local_recipe, mhsft, tiny_fixtures, training_started, write
from support.waiting import gone

TRACEBACK = """Train:  40%|####      | 2/5
Traceback (most recent call last):
  File "/x/swift/cli/sft.py", line 5, in <module>
  File "/x/transformers/trainer.py", line 2254, in _maybe_log_save_evaluate
  File "/x/transformers/trainer.py", line {line}, in {frame}
{error}
"""


def test_longest_rows_first_repeated_when_short_and_never_over_max_length_with_delete() -> None:
    lengths = [30, 700, 120, 512, 90, 513]
    assert longest(lengths, 3, 512, "delete") == [3, 2, 4]  # 700 and 513 are dropped by swift: never picked
    assert longest(lengths, 3, 512, "right") == [1, 5, 3]  # truncated to 512: still the longest batches
    assert longest([5, 9], 5, None, "delete") == [1, 0, 1, 0, 1]  # N steps of the whole batch even from few rows


@pytest.mark.parametrize(
    ("frame", "error", "moment"),
    [
        ("_determine_best_metric", "KeyError: 'eval_bogus'", EVALUATION),
        ("evaluation_loop", "torch.OutOfMemoryError: CUDA out of memory.", EVALUATION),
        ("_save_checkpoint", "OSError: [Errno 28] No space left on device", SAVE),
        ("training_step", "torch.OutOfMemoryError: CUDA out of memory.", BATCHES),
    ],
)
def test_a_crash_is_put_on_the_moment_whose_code_it_was_in(tmp_path: Path, frame, error, moment) -> None:
    text = TRACEBACK.format(line=99, frame=frame, error=error)
    assert crashed_in(text) == moment
    write(tmp_path / "logging.jsonl", json.dumps({"loss": 1.0, "global_step/max_steps": "2/2"}) + "\n")
    moments = {m.name: m for m in judge(tmp_path, text, 1, 2, evaluate=True, save=True)}
    assert moments[moment].status == FAILED and moments[moment].detail == error
    assert all(m.status in (PASSED, SKIPPED) for name, m in moments.items() if name != moment)


def test_swift_dying_before_training_is_no_moment_and_a_clean_run_passes_each(tmp_path: Path) -> None:
    assert crashed_in('Traceback (most recent call last):\n  File "x", line 1, in get_model\nOSError: x\n') is None
    rows = [{"loss": 1.0, "global_step/max_steps": "2/2"}, {"eval_loss": 1.0, "global_step/max_steps": "2/2"}]
    write(tmp_path / "logging.jsonl", "\n".join(map(json.dumps, rows)))
    write(tmp_path / "checkpoint-2" / "trainer_state.json", "{}")
    assert [m.status for m in judge(tmp_path, "", 0, 2, evaluate=True, save=True)] == [PASSED] * 3
    assert [m.status for m in judge(tmp_path, "", 0, 3, evaluate=False, save=True)] == [FAILED, SKIPPED, FAILED]


def test_the_full_runs_schedule_follows_swifts_defaults() -> None:
    assert full_schedule({"max_steps": 20, "save_steps": 10}, 3, has_eval=True) == (20, 2, 2)
    assert full_schedule({"num_train_epochs": 2, "save_steps": 4, "eval_steps": 3}, 5, has_eval=True) == (10, 4, 3)
    assert full_schedule({"save_strategy": "no"}, 100, has_eval=False) == (300, 0, 0)


def test_a_rehearsal_record_is_never_the_run_infer_export_or_deploy_use(tmp_path: Path) -> None:
    runs = tmp_path / ".mhsft" / "runs"
    for stamp, extra in (("20260101-000000", {}), ("20260101-000001", {"rehearsal": True})):
        rid = f"{stamp}-sft-0000"
        record = {
            "id": rid, "command": "sft", "recipe": None, "recipe_name": None, "recipe_sha256": None, "argv": [],
            "env": {}, "secrets": [], "cwd": str(tmp_path), "versions": {}, "started_at": f"{stamp}",
            "status": "succeeded", "extra": extra,
        }  # fmt: skip
        write(runs / f"{rid}.json", json.dumps(record))
    assert last_training(tmp_path).id == "20260101-000000-sft-0000"


def test_rehearse_refuses_dry_run_and_resume_without_starting_anything(workdir: Path, env, fake_swift) -> None:
    local_recipe(workdir)
    for flag in ("--dry-run", "--resume"):
        result = mhsft("train", "r.toml", "--rehearse", flag, env=env | {"MHSFT_NO_DATA_CHECK": ""}, cwd=workdir)
        assert result.returncode == 2 and "--rehearse" in result.stderr and "Traceback" not in result.stderr
    assert fake_swift.calls() == []


def test_steps_past_the_full_run_are_capped_and_absurd_ones_refused_before_anything(workdir: Path, env, capsys) -> None:
    from mhsft.rehearse.command import capped_steps

    report = {"steps": {"steps_per_epoch": 4}, "train_rows": 64}
    assert capped_steps(3, {"num_train_epochs": 5}, report) == 3
    assert capped_steps(100_000, {"num_train_epochs": 5}, report) == 20
    assert "--steps 100000 is more than the 20 step(s) of the full run" in capsys.readouterr().err
    assert capped_steps(50, {"max_steps": 30}, report) == 30
    local_recipe(workdir)
    result = mhsft("train", "r.toml", "--rehearse", "--steps", "99999999999999999999", env=env, cwd=workdir)
    assert result.returncode == 2 and "--steps" in result.stderr and "1<=x<=100000" in result.stderr
    assert "Traceback" not in result.stderr and not (workdir / "out-rehearsal").exists()


@pytest.mark.parametrize(("role", "orgs", "repo", "refused"), [
    ("write", [], "alice/m", ""),
    ("write", ["lab"], "lab/m", ""),
    ("read", [], "alice/m", "read-only"),
    ("write", ["lab"], "bob/m", "neither the token's user alice nor one of its organisations (lab)"),
    ("fineGrained", [], "alice/m", "no repo.write permission"),
])  # fmt: skip
def test_the_push_decision(role, orgs, repo, refused) -> None:
    why = decide("alice", role, orgs, repo)
    assert (refused in why) if refused else why == ""
    granted = [{"entity": {"type": "user", "name": "alice"}, "permissions": ["repo.write"]}]
    assert decide("alice", "fineGrained", [], "alice/m", granted) == ""


@pytest.fixture
def hub():
    server = HubStandIn(tokens={"ms-write-token-0123456789": "alice", "ms-read-token-0123456789": "alice"}).start()
    server.read_only.add("ms-read-token-0123456789")
    yield server
    server.stop()


def _push_recipe(folder: Path, use_hf: bool) -> object:
    local_recipe(folder)
    extra = "use_hf = true\n" if use_hf else ""
    with (folder / "r.toml").open("a") as f:
        f.write(f'[export]\npush_to_hub = true\nhub_model_id = "alice/tiny-lora"\n{extra}')
    return validate(load(str(folder / "r.toml"), Environment(values={})))


@pytest.mark.parametrize("use_hf", [False, True], ids=["modelscope", "hf"])
def test_a_token_that_cannot_write_to_the_push_target_is_reported(workdir: Path, hub, use_hf) -> None:
    recipe = _push_recipe(workdir, use_hf)
    var, endpoint = ("HF_TOKEN", "HF_ENDPOINT") if use_hf else ("MODELSCOPE_API_TOKEN", "MODELSCOPE_ENDPOINT")
    base = base_env(workdir) | {endpoint: hub.url}

    def moment(token: str):
        return check_push(recipe, Environment(values=base | {var: token}), timeout=20)

    ok = moment("ms-write-token-0123456789")
    assert ok.status == PASSED and "alice (write) may push to alice/tiny-lora" in ok.detail
    read = moment("ms-read-token-0123456789")
    assert read.status == FAILED and "read-only" in read.detail and "alice/tiny-lora" in read.detail
    bad = moment(f"ms-{SECRET}")
    assert bad.status == FAILED and "rejected" in bad.detail and SECRET not in bad.detail
    assert all(method in ("GET", "POST") for method, _ in hub.requests)  # nothing created: no PUT or DELETE
    assert {path for method, path in hub.requests if method == "POST"} <= {"/api/v1/login"}  # the login only
    assert check_push(recipe, Environment(values=base), 5).detail.startswith(f"no {var} is set")
    assert not os.path.exists(workdir / ".modelscope")


def test_the_projection_adds_start_up_first_step_steady_steps_evaluations_and_saves(tmp_path: Path) -> None:
    logged = [  # swift 4.6's rows: train_speed(s/it) is the mean since the start, eval_runtime, train_runtime
        {"loss": 2.0, "global_step/max_steps": "1/3", "train_speed(s/it)": 4.0, "num_input_tokens_seen": 100},
        {"loss": 1.9, "global_step/max_steps": "2/3", "train_speed(s/it)": 3.0, "num_input_tokens_seen": 200},
        {"loss": 1.8, "global_step/max_steps": "3/3", "train_speed(s/it)": 2.5, "num_input_tokens_seen": 300},
        {"eval_loss": 1.7, "eval_runtime": 1.5, "global_step/max_steps": "3/3"},
        {"train_runtime": 10.5, "global_step/max_steps": "3/3"},
    ]
    write(tmp_path / "logging.jsonl", "\n".join(map(json.dumps, logged)) + "\n")
    measured = measure(tmp_path, 3, wall_s=30.5)
    assert (measured["first_step_s"], measured["step_s"], measured["eval_s"]) == (4.0, 1.75, 1.5)
    assert measured["save_s"] == 10.5 - 7.5 - 1.5 and measured["overhead_s"] == 20.0
    assert measured["tokens_per_s"] == 40.0 and measured["peak_memory_gib"] is None
    projection = project(measured, full_steps=21, evals=2, saves=3, eval_scale=4.0)
    assert projection["parts_s"] == {"start-up": 20.0, "steps": 39.0, "evaluation": 12.0, "saves": 4.5}
    assert projection["wall_s"] == 75.5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny fixtures (the dataset gate runs the real ms-swift on them; its cache is shared by these tests)."""
    return tiny_fixtures(tmp_path_factory.mktemp("rehearse-fake"))


def _faked(tiny, fake_swift, mode: str) -> dict[str, str]:
    return tiny.env | {
        "PATH": f"{fake_swift.bin_dir}{os.pathsep}{tiny.env['PATH']}",
        "FAKE_SWIFT_LOG": str(fake_swift.log),
        "FAKE_SWIFT_MODE": mode,
    }


@pytest.mark.e2e  # the dataset gate runs the real ms-swift preprocessing
def test_every_output_path_of_the_recipe_goes_to_the_rehearsals_folder(tiny, fake_swift) -> None:
    output = tiny.work / "output"
    sets = ("--set", f"sft.logging_dir={output}/tb", "--set", f"swanlab.log_dir={output}/swanlog")
    env = _faked(tiny, fake_swift, "exit:0")
    result = mhsft("train", "tiny", "--rehearse", "--steps", "2", *sets, env=env, cwd=tiny.work, timeout=600)
    assert "Traceback" not in result.stderr and "run " in result.stderr, result.stderr
    (call,) = [c for c in fake_swift.calls() if c["argv"][0] == "sft"]
    argv = call["argv"]
    run_dir = Path(argv[argv.index("--output_dir") + 1])
    assert run_dir.parent == Path(f"{output}-rehearsal")
    assert argv[argv.index("--logging_dir") + 1] == str(run_dir / "runs") == call["env"]["TENSORBOARD_LOGGING_DIR"]
    assert call["env"]["SWANLAB_LOG_DIR"] == f"{output}-rehearsal/swanlog"
    assert not output.exists()  # neither the preflight, nor the gate, nor swift wrote into the real run's folder


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sig", "code", "name"), [(signal.SIGINT, 130, "Ctrl-C, SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_an_interrupted_rehearsal_says_so_and_gives_no_verdict(tiny, fake_swift, sig, code, name) -> None:
    env = _faked(tiny, fake_swift, "sleep")  # the fake prints swift's "Train:" progress line, then waits
    args = ("train", "tiny", "--rehearse", "--steps", "2")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc, started = training_started(tiny.work, env, fake_swift, args=args, timeout=600, **pipes)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"error: the rehearsal was interrupted ({name}) at step 0/2: no verdict on the recipe" in err
    assert "rehearsal: FAILED" not in out and "rehearsal: passed" not in out and "fix the recipe" not in err
    assert "Traceback" not in err
    assert Path(f"{fake_swift.log}.signal").read_text() == sig.name  # swift got it, and is gone with its child
    assert gone(started["pid"]) and gone(started["grandchild"])
