"""`mhsft train` as a user runs it, against a fake `swift` on PATH that records what it was given."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mhsft.errors import MhsftError
from mhsft.process.runner import executable

from support.environment import SECRET
from support.running import FakeSwift, local_recipe, mhsft, training_started, write
from support.waiting import gone


def records(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workdir / ".mhsft" / "runs").glob("*.json"))]


def all_text(workdir: Path) -> str:
    """Every file mhsft wrote in the work directory, concatenated."""
    return "".join(p.read_text() for p in (workdir / ".mhsft").rglob("*") if p.is_file())


def test_train_passes_the_key_only_through_the_environment(workdir, env, fake_swift: FakeSwift) -> None:
    local_recipe(workdir, mode="local")
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\nHF_TOKEN=hf_{SECRET}\n")
    result = mhsft("train", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (call,) = fake_swift.calls()
    assert call["argv"][0] == "sft"
    assert not any(SECRET in tok for tok in call["argv"])
    assert "--swanlab_token" not in call["argv"] and "--hub_token" not in call["argv"]
    assert call["env"]["SWANLAB_API_KEY"] == SECRET  # from .env, into the child's environment
    assert "HF_TOKEN" not in call["env"]  # a local run gets no hub token
    assert "SWANLAB_PROJECT" not in call["env"]
    argv = call["argv"]
    assert argv[argv.index("--report_to") + 1 : argv.index("--report_to") + 3] == ["tensorboard", "swanlab"]
    assert argv[argv.index("--model") + 1] == str(workdir / "model")
    assert call["sid"] == call["pid"]  # its own session and process group
    assert SECRET not in result.stdout + result.stderr
    (rec,) = records(workdir)
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0
    assert rec["secrets"] == ["SWANLAB_API_KEY"]
    run_dir = Path(rec["run_dir"])  # the vN folder mhsft chose and passed to swift, which wrote into it
    assert run_dir.parent == workdir / "out" and re.fullmatch(r"v0-\d{8}-\d{6}", run_dir.name)
    assert argv[argv.index("--output_dir") + 1] == str(run_dir) and argv[argv.index("--add_version") + 1] == "false"
    assert json.loads((run_dir / "owner.json").read_text())["pid"] == call["pid"] == rec["pid"]
    assert rec["argv"][:2] == ["swift", "sft"] and rec["versions"]["mhsft"]
    assert rec["recipe"].endswith("r.toml") and len(rec["recipe_sha256"]) == 64
    assert rec["swanlab_run_id"] == call["env"]["SWANLAB_RUN_ID"]
    assert SECRET not in all_text(workdir)


def test_swift_exit_code_is_propagated_and_recorded(workdir, env, fake_swift: FakeSwift) -> None:
    local_recipe(workdir)
    result = mhsft("train", "r.toml", env=env | {"FAKE_SWIFT_MODE": "exit:7"}, cwd=workdir)
    assert result.returncode == 7
    (rec,) = records(workdir)
    assert rec["status"] == "failed" and rec["exit_code"] == 7 and rec["ended_at"]


def test_dry_run_prints_a_pasteable_command_and_starts_nothing(workdir, env, fake_swift: FakeSwift) -> None:
    local_recipe(workdir)
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    result = mhsft("train", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()
    assert 'SWANLAB_API_KEY="$SWANLAB_API_KEY"' in result.stdout and SECRET not in result.stdout + result.stderr
    assert "swift sft" in result.stdout and "model" in result.stderr  # plan summary on stderr
    # the printed line runs as is (with the fake swift) and gives swift the same argv
    pasted = subprocess.run(["bash", "-c", result.stdout], env=env | {"SWANLAB_API_KEY": SECRET}, cwd=workdir)
    assert pasted.returncode == 0
    (call,) = fake_swift.calls()
    assert call["env"]["SWANLAB_API_KEY"] == SECRET and call["argv"][0] == "sft"


def test_real_environment_wins_over_dotenv_and_env_file_option(workdir, env, fake_swift: FakeSwift) -> None:
    local_recipe(workdir)
    write(workdir / ".env", "SWANLAB_API_KEY=from-dotenv-aaaa\nDATASET_ID=d1\n")
    write(workdir / "other.env", "SWANLAB_API_KEY=from-other-bbbb\n")
    assert mhsft("train", "r.toml", env=env | {"SWANLAB_API_KEY": "from-shell-cccc"}, cwd=workdir).returncode == 0
    assert mhsft("train", "r.toml", "--env-file", "other.env", env=env, cwd=workdir).returncode == 0
    first, second = fake_swift.calls()
    assert first["env"]["SWANLAB_API_KEY"] == "from-shell-cccc" and first["env"]["DATASET_ID"] == "d1"
    assert second["env"]["SWANLAB_API_KEY"] == "from-other-bbbb" and "DATASET_ID" not in second["env"]


def test_dotenv_is_found_from_a_parent_directory(workdir, env, fake_swift: FakeSwift) -> None:
    sub = workdir / "sub"
    sub.mkdir()
    local_recipe(sub)
    write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
    assert mhsft("train", "r.toml", env=env, cwd=sub).returncode == 0
    assert fake_swift.calls()[0]["env"]["SWANLAB_API_KEY"] == SECRET


@pytest.mark.parametrize(
    ("signum", "expected"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
def test_signals_are_forwarded_to_swifts_process_group(workdir, env, fake_swift, signum, expected) -> None:
    local_recipe(workdir)
    sleeping = env | {"FAKE_SWIFT_MODE": "sleep"}
    proc, info = training_started(workdir, sleeping, fake_swift, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert records(workdir)[0]["status"] == "running"
    proc.send_signal(signum)
    proc.wait(timeout=15)
    assert proc.returncode == expected
    assert Path(f"{fake_swift.log}.signal").read_text() == signal.Signals(signum).name
    assert gone(info["pid"]) and gone(info["grandchild"])  # swift and its own child are both gone
    (rec,) = records(workdir)
    assert rec["status"] == "interrupted" and rec["exit_code"] == expected


def test_the_processes_the_tests_start_take_ctrl_c_however_the_suite_was_started() -> None:
    """Started as a background job of a script (SIGINT and SIGQUIT ignored), the suite's children would keep
    ignoring the Ctrl-C that the tests send (conftest's pytest_configure undoes it)."""
    code = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


BAD_INPUTS = {
    "missing file": ("nope.toml", "", "does not exist"),
    "syntax error": ("bad.toml", "[sft\n", "line 1, column 5"),
    "empty file": ("bad.toml", "", "is empty"),
    "unknown section": ("bad.toml", "[sftt]\n", "Did you mean `sft`"),
    "unknown key": ("bad.toml", 'extends = "qwen7b"\n[sft]\nlearnig_rate = 1\n', "Did you mean `learning_rate`"),
    "wrong type": ("bad.toml", 'extends = "qwen7b"\n[sft]\nnum_train_epochs = "2"\n', "expected a number"),
    "out of choice": ("bad.toml", 'extends = "qwen7b"\n[swanlab]\nmode = "web"\n', "not one of cloud, local, offline"),
    "extends cycle": ("bad.toml", 'extends = "bad.toml"\n', "cycle"),
    "missing extends": ("bad.toml", 'extends = "gone.toml"\n', "neither a file"),
    "unset variable": ("bad.toml", 'extends = "qwen7b"\n[sft]\nmodel = "${UNSET_VAR_X}"\n', "UNSET_VAR_X"),
    "literal secret": ("bad.toml", f'extends = "qwen7b"\n[sft]\nhub_token = "{SECRET}"\n', ".env"),
    "missing model": ("bad.toml", '[sft]\ndataset = ["x"]\n', "model is required"),
    "empty dataset": ("bad.toml", 'extends = "qwen7b"\n[sft]\ndataset = []\n', "nothing to train on"),
    "empty project": ("bad.toml", 'extends = "qwen7b"\n[swanlab]\nproject = ""\n', "must not be empty"),
    "--set without =": ("qwen7b", "--set=sft.lora_rank", "expected section.key=value"),
    "--set unknown key": ("qwen7b", "--set=sft.lora_rnk=4", "Did you mean `lora_rank`"),
    "missing input file": ("r.toml", "--set=sft.dataset=['data/none.jsonl']", "does not exist"),
    "date value": ("bad.toml", 'extends = "qwen7b"\n[sft]\nmodel = 2024-01-01\n', "got a date/time"),
    "unexpandable ~user": ("r.toml", "--set=sft.model=~nouser-xyz/m", "does not exist"),
    "name too long": ("r.toml", "--set=sft.model=./" + "a" * 300, "longer than 255 bytes"),
    "--set extends": ("r.toml", "--set=extends=qwen7b", "cannot be overridden"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_paragraph_exit_2_nothing_started(workdir, env, fake_swift, case) -> None:
    target, content, expected = BAD_INPUTS[case]
    extra = []
    if content.startswith("--set"):
        extra = [content]
        local_recipe(workdir)
    elif target != "nope.toml":
        (workdir / target).write_text(content)
    result = mhsft("train", target, *extra, env=env | {"SWANLAB_API_KEY": SECRET}, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1  # one paragraph
    assert fake_swift.calls() == [] and not (workdir / ".mhsft").exists()


def test_missing_swift_is_a_clear_error() -> None:
    with pytest.raises(MhsftError, match="pip install ms-swift"):
        executable("swift-that-is-not-installed")


def test_resume_continues_from_the_newest_checkpoint_under_the_same_swanlab_run(workdir, env, fake_swift) -> None:
    local_recipe(workdir, mode="cloud")
    first = mhsft("train", "r.toml", "--no-preflight", env=env | {"FAKE_SWIFT_MODE": "exit:1"}, cwd=workdir)
    assert first.returncode == 1  # the run died, but left checkpoint-10 and checkpoint-20
    second = mhsft("train", "r.toml", "--resume", "--no-preflight", env=env, cwd=workdir)
    assert second.returncode == 0, second.stderr
    before, after = fake_swift.calls()
    assert after["env"]["SWANLAB_RUN_ID"] == before["env"]["SWANLAB_RUN_ID"]
    assert after["env"]["SWANLAB_RUN_RESUME"] == "allow"
    argv = after["argv"]
    first_run = next(r for r in records(workdir) if r["pid"] == before["pid"])
    assert argv[argv.index("--resume_from_checkpoint") + 1] == str(Path(first_run["run_dir"]) / "checkpoint-20")
    third = mhsft("train", "r.toml", "--no-preflight", env=env, cwd=workdir)  # a fresh run gets a fresh id
    assert third.returncode == 0
    assert fake_swift.calls()[-1]["env"]["SWANLAB_RUN_ID"] != before["env"]["SWANLAB_RUN_ID"]


def test_resume_without_a_checkpoint_is_a_clear_error(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    result = mhsft("train", "r.toml", "--resume", env=env, cwd=workdir)
    assert result.returncode == 2 and "--resume: no checkpoint-STEP folder" in result.stderr
    assert fake_swift.calls() == []


def test_a_swift_that_cannot_start_is_an_error_and_the_record_is_finished(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    (fake_swift.bin_dir / "swift").write_text("not a program\n")  # exec fails: no shebang, not a binary
    result = mhsft("train", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 2 and "could not start" in result.stderr and "Traceback" not in result.stderr
    (rec,) = records(workdir)
    assert rec["status"] == "failed" and rec["ended_at"]


@pytest.mark.parametrize("name", ["", ".", "..", "a-file/x"])
def test_recipes_new_refuses_odd_destinations(workdir, env, name) -> None:
    write(workdir / "a-file", "")
    result = mhsft("recipes", "new", name, env=env, cwd=workdir)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_an_exported_swanlab_project_fills_the_recipes_variable_and_reaches_no_child(
    workdir, env, fake_swift: FakeSwift
) -> None:
    """The team convention `export SWANLAB_PROJECT=...` with `project = "${SWANLAB_PROJECT:-mh-sft}"`: swanlab
    fails on that variable as a plain string, so mhsft renders the project itself and leaves it out of children."""
    path = local_recipe(workdir, mode="local")
    path.write_text(path.read_text().replace('project = "unit-proj"', 'project = "${SWANLAB_PROJECT:-mh-sft}"'))
    result = mhsft("train", "r.toml", env=env | {"SWANLAB_PROJECT": "team-proj"}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (call,) = fake_swift.calls()
    assert call["argv"][call["argv"].index("--swanlab_project") + 1] == "team-proj"
    assert "SWANLAB_PROJECT" not in call["env"]
    write(workdir / ".env", "SWANLAB_PROJECT=team-proj\n")  # swanlab reads ./.env itself: still refused
    refused = mhsft("train", "r.toml", env=env, cwd=workdir)
    assert refused.returncode == 3 and "SWANLAB_PROJECT is set in" in refused.stderr
