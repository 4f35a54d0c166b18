"""`mhsft submit|logs|cancel` and the [slurm] section: bad input, dry runs, and checks that must stop a
submission before anything is queued (those on the real Slurm skip where no Slurm is reachable)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mhsft.recipe.model import SlurmSettings
from mhsft.runs import slurm_state, status
from mhsft.slurm import jobs, node, script

from support.environment import SECRET
from support.running import local_recipe, mhsft, write
from support.slurmtest import job_ids, needs_slurm
from support.swanlab_server import SwanLabCloud

SLURM = """
[slurm]
partition = "gpu"
nodes = 2
gpus_per_node = 8
cpus_per_task = 12
mem = "0"
time = "24:00:00"
account = "ml team"
requeue = true
sbatch_args = ["--exclusive", "--gres-flags=enforce-binding"]
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[slurm]\nnode = 2", "[slurm] node: unknown [slurm] key. Did you mean `nodes`?"),
        ("[slurm]\nnodes = 0", "[slurm] nodes: must be >= 1, got 0."),
        ('[slurm]\nnodes = "two"', '[slurm] nodes: expected an integer, got a string "two".'),
        ('[slurm]\nrequeue = "yes"', "[slurm] requeue: expected true or false"),
        ('[slurm]\nsbatch_args = "--exclusive"', "[slurm] sbatch_args: expected an array of sbatch options"),
        ('[slurm]\nsbatch_args = ["exclusive"]', "[slurm] sbatch_args: expected an array of sbatch options"),
        ('[slurm]\npartition = "a\\nb"', "[slurm] partition: a line break or NUL character"),
        ('[slurm]\noutput = "logs/%N.out"', "[slurm] output: 'logs/%N.out': mhsft finds the log with %j"),
        ("[slurm]\nmem = [1]", '[slurm] mem: expected a string such as "64G"'),
        (
            "[launch]\nnproc_per_node = 4\n[slurm]\ngpus_per_node = 8",
            "8 GPUs per node, but [launch] nproc_per_node = 4",
        ),
        ('[launch]\ngpus = "0,1"\n[slurm]\ngpus_per_node = 8', "8 GPUs per node, but [launch] gpus lists 2"),
        ("[slurm]\nfoo = 1", "The keys are partition, nodes, gpus_per_node"),
    ],
)
def test_bad_slurm_section_is_exit_2_naming_the_key(workdir, env, extra, expected) -> None:
    local_recipe(workdir, extra)
    for command in ("validate", "submit"):
        result = mhsft(command, "r.toml", env=env, cwd=workdir)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / ".mhsft").exists()


def test_node_variables_in_launch_conflict_with_slurm(workdir, env) -> None:
    local_recipe(workdir, '[launch]\nnnodes = 2\nmaster_addr = "10.0.0.1"')
    result = mhsft("submit", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 2 and "NNODES, MASTER_ADDR are set" in result.stderr


def test_dry_run_prints_the_batch_script_and_the_sbatch_command_without_secrets(workdir, env, fake_swift) -> None:
    local_recipe(workdir, SLURM)
    write(workdir / ".env", f"HF_TOKEN={SECRET}\n")
    result = mhsft("submit", "r.toml", "--dry-run", "--nodes", "4", env=env | {"MY_API_KEY": SECRET}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in [
        "#SBATCH --job-name=unit",
        "#SBATCH --nodes=4",  # --nodes wins over the recipe
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=12",
        "#SBATCH --partition=gpu",
        "#SBATCH --mem=0",
        "#SBATCH --time=24:00:00",
        "#SBATCH --account='ml team'",
        "#SBATCH --output=.mhsft/slurm/%x-%j.out",
        f"#SBATCH --chdir={workdir}",
        "#SBATCH --requeue",
        "#SBATCH --exclusive",
        "#SBATCH --gres-flags=enforce-binding",
    ]:
        assert line in out, line
    assert "HF_TOKEN" not in out  # a local run gets no hub token, not even by reference
    assert f"--label {sys.executable} -m mhsft.slurm.node 2" in out
    assert "sbatch --parsable .mhsft/slurm/" in out and "4 node(s) x 8 process(es)" in result.stderr
    assert SECRET not in out + result.stderr
    assert not (workdir / ".mhsft").exists() and fake_swift.calls() == []


def test_no_sbatch_on_path_is_a_clear_error_and_nothing_is_recorded(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    result = mhsft("submit", "r.toml", env=env | {"PATH": str(fake_swift.bin_dir)}, cwd=workdir)
    assert result.returncode == 2
    assert "`sbatch` was not found on PATH" in result.stderr and "module load slurm" in result.stderr
    assert not (workdir / ".mhsft").exists()


def fake_sbatch(folder: Path) -> Path:
    """An `sbatch` that only leaves a mark: proof that a submission reached it."""
    mark = folder / "sbatch-called"
    write(folder / "bin" / "sbatch", f"#!/bin/sh\ntouch {mark}\necho 1\n").chmod(0o755)
    return mark


def test_a_cloud_key_only_in_the_shell_would_not_reach_the_nodes(workdir, env) -> None:
    local_recipe(workdir, mode="cloud")
    mark = fake_sbatch(workdir.parent)
    e = env | {"SWANLAB_API_KEY": SECRET, "PATH": f"{workdir.parent / 'bin'}{os.pathsep}{env['PATH']}"}
    result = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert result.returncode == 2 and "SWANLAB_API_KEY is set in your shell, not in .env" in result.stderr
    assert not mark.exists() and not (workdir / ".mhsft" / "runs").exists()


def test_logs_and_cancel_of_a_local_run_say_it_is_not_a_slurm_run(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    run_id = next((workdir / ".mhsft" / "runs").glob("*.json")).stem
    for command in ("logs", "cancel"):
        result = mhsft(command, run_id, env=env, cwd=workdir)
        assert result.returncode == 2 and f"run {run_id} is not a Slurm run" in result.stderr


def test_script_directives_status_words_and_ports() -> None:
    settings = SlurmSettings(job_name="my job", nodes=2, requeue=False, sbatch_args=("--exclusive",))
    lines = script.directives(settings, Path("/shared/work dir"))
    assert lines[:3] == ["--job-name='my job'", "--nodes=2", "--ntasks-per-node=1"]
    assert "--chdir='/shared/work dir'" in lines and lines[-2:] == ["--no-requeue", "--exclusive"]
    assert [status.of_slurm(s) for s in ("PENDING", "REQUEUED", "RUNNING", "COMPLETING", "COMPLETED")] == [
        "queued",
        "queued",
        "running",
        "running",
        "succeeded",
    ]
    assert [status.of_slurm(s) for s in ("CANCELLED by 0", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")] == [
        "cancelled",
        "failed",
        "failed",
        "failed",
    ]
    assert node.master_port("4", 0) == node.master_port("4", 0) != node.master_port("4", 1)
    assert 1024 < node.master_port("987654321", 3) < 65536


def test_log_path_fills_in_slurm_patterns(tmp_path) -> None:
    from mhsft.runs.records import RunRecord
    from mhsft.runs.slurm_part import SlurmPart

    record = RunRecord("r1", "sft", None, None, None, [], {}, [], str(tmp_path), {}, "2026-01-01")
    slurm = SlurmPart(job_id="42", job_name="big", output="logs/%x-%j-%A-100%%.out")
    assert jobs.log_path(record, slurm) == tmp_path / "logs" / "big-42-42-100%.out"


@needs_slurm
def test_a_dead_swanlab_key_queues_nothing(workdir, env) -> None:
    cloud = SwanLabCloud().start()
    try:
        local_recipe(workdir, "[slurm]\nnodes = 2", mode=f'cloud"\napi_host = "{cloud.url}')
        write(workdir / ".env", f"SWANLAB_API_KEY={SECRET}\n")
        before = job_ids()
        result = mhsft("submit", "r.toml", env=env, cwd=workdir)  # the preflight's default bound, scaled
    finally:
        cloud.stop()
    assert result.returncode == 3 and "the API key was rejected" in result.stderr, result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert job_ids() == before and not (workdir / ".mhsft" / "runs").exists()


@needs_slurm
def test_a_missing_dataset_queues_nothing(workdir, env) -> None:
    local_recipe(workdir, "[slurm]\nnodes = 2")
    (workdir / "data" / "train.jsonl").unlink()
    before = job_ids()
    result = mhsft("submit", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 2 and "train.jsonl does not exist" in result.stderr
    assert job_ids() == before and not (workdir / ".mhsft" / "runs").exists()


@needs_slurm
def test_a_broken_dataset_queues_nothing(workdir, env) -> None:
    local_recipe(workdir, "[slurm]\nnodes = 2")
    write(workdir / "data" / "train.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [\n')
    gate_on = {k: v for k, v in env.items() if k != "MHSFT_NO_DATA_CHECK"}
    before = job_ids()
    result = mhsft("submit", "r.toml", env=gate_on, cwd=workdir)
    assert result.returncode == 4 and "data/train.jsonl:2" in result.stderr, result.stderr
    assert job_ids() == before and not (workdir / ".mhsft" / "runs").exists()


@needs_slurm
def test_sbatch_refusing_the_job_shows_its_message_and_records_nothing(workdir, env) -> None:
    local_recipe(workdir, '[slurm]\npartition = "no-such-partition"')
    result = mhsft("submit", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 1
    assert "sbatch refused the job" in result.stderr and "invalid partition" in result.stderr.lower()
    assert list((workdir / ".mhsft" / "runs").glob("*.json")) == []
    assert list((workdir / ".mhsft" / "slurm").glob("*.sbatch")) == []


def test_the_frozen_recipe_loads_back_to_the_same_values(workdir) -> None:
    from mhsft.environment import Environment
    from mhsft.recipe.load import load
    from mhsft.recipe.validate import validate
    from mhsft.slurm.submit import frozen_recipe

    local_recipe(workdir, 'system = "costs $$5 ${WHO:-you}"\n[slurm]\nnodes = 2\nsbatch_args = ["--exclusive"]')
    environment = Environment(values={})
    recipe = validate(load("r.toml", environment))
    assert recipe.args["sft"]["system"] == "costs $5 you"
    write(workdir / "frozen.toml", frozen_recipe(recipe))
    again = validate(load("frozen.toml", environment))
    assert again.resolved == recipe.resolved and again.slurm == recipe.slurm


def test_the_readme_worked_example_renders_as_shown(workdir, env) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme[readme.index("Worked example: the built-in 32B recipe") :]
    recipe = example.split("```toml\n")[1].split("```")[0]
    shown = example.split("```sh\n")[1].split("```")[0].replace("/home/alice/mh-sft", str(workdir))
    write(workdir / "qwen32b-2x8.toml", recipe)
    result = mhsft("submit", "qwen32b-2x8.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    for prefix in ("#SBATCH", "#     --"):  # the directives and swift's flags (the run id and python path differ)
        assert [ln for ln in shown.splitlines() if ln.startswith(prefix)] == [
            ln for ln in result.stdout.splitlines() if ln.startswith(prefix)
        ]


def test_refresh_takes_live_states_from_squeue_and_never_overwrites_the_jobs_own_outcome(tmp_path, monkeypatch) -> None:
    from mhsft.runs.records import RunRecord
    from mhsft.runs.store import load_all

    answer = "11|PENDING||BeginTime\n13|CANCELLED|n[1-2]|None\n14|COMPLETING|n1|None\n"
    write(tmp_path / "bin" / "squeue", f"#!/bin/sh\nprintf '{answer}'\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    loaded = []
    for job, state in (("11", "running"), ("12", "running"), ("13", "queued"), ("14", "running")):
        slurm = {"job_id": job, "job_name": "t", "output": "%j.out", "nodes": "n[1-2]"}
        record = RunRecord(f"r{job}", "sft", None, None, None, [], {}, [], str(tmp_path), {}, f"2026-01-{job}")
        record.status, record.extra = state, {"slurm": slurm}
        record.save()
        loaded.append(record)
    # job 14 writes its outcome after the reader loaded its record: the reader's squeue answer must not undo it
    record.path.write_text(json.dumps(json.loads(record.path.read_text()) | {"status": "completed"}))
    refreshed = {r.id: r for r in slurm_state.refresh(loaded)}
    assert refreshed["r11"].status == "queued"  # requeued, waiting again
    assert refreshed["r12"].status == "unknown"  # Slurm forgot it, and it never wrote an outcome
    assert refreshed["r13"].status == "cancelled" and refreshed["r13"].ended_at
    assert refreshed["r11"].slurm.state == "PENDING"
    assert {r.id: r.status for r in load_all(tmp_path)} == {
        "r11": "queued",
        "r12": "unknown",
        "r13": "cancelled",
        "r14": "succeeded",  # the job's own outcome, written in the old spelling
    }


def test_offline_nodes_dry_run_says_what_happens_where(workdir, env) -> None:
    local_recipe(workdir, "[slurm]\nnodes = 2\noffline_nodes = true\n", mode="cloud")
    result = mhsft("submit", "r.toml", "--dry-run", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    checked = "node check  on each node before swift starts: shared folders writable, local inputs visible"
    assert checked in result.stderr
    assert "SwanLab host reachable" not in result.stderr  # the nodes track locally: they never call SwanLab
    assert "uploaded from here by a follower every 60 s and at the end" in result.stderr
    assert "--swanlab_mode local" in result.stdout and f"SWANLAB_LOG_DIR={workdir / 'swanlog'}/" in result.stdout
    assert "SWANLAB_API_KEY" not in result.stdout  # no key on the nodes: the upload happens here
    cloud = mhsft("submit", "r.toml", "--dry-run", "--set", "slurm.offline_nodes=false", env=env, cwd=workdir)
    assert "local inputs visible, SwanLab host reachable" in cloud.stderr and "follower" not in cloud.stderr


def test_offline_nodes_with_the_key_only_in_the_shell_is_refused(workdir, env) -> None:
    local_recipe(workdir, "[slurm]\noffline_nodes = true\n", mode="cloud")
    mark = fake_sbatch(workdir.parent)
    e = env | {"SWANLAB_API_KEY": SECRET, "PATH": f"{workdir.parent / 'bin'}{os.pathsep}{env['PATH']}"}
    result = mhsft("submit", "r.toml", env=e, cwd=workdir)
    assert result.returncode == 2 and "SWANLAB_API_KEY is set in your shell, not in .env" in result.stderr
    assert "the detached follower that uploads from here" in result.stderr and SECRET not in result.stderr
    assert not mark.exists() and not (workdir / ".mhsft" / "runs").exists()


def test_the_node_check_names_a_shared_folder_that_is_not_writable(workdir) -> None:
    from mhsft.environment import load_environment
    from mhsft.errors import MhsftError
    from mhsft.launch import load_recipe
    from mhsft.recipe.plan import train_plan
    from mhsft.slurm import node_check

    write(workdir / "blocker", "a file where the output folder should be")
    environment = load_environment(None)
    recipe = load_recipe(str(local_recipe(workdir, mode="offline")), ["sft.output_dir=blocker/out"], environment)
    plan = train_plan(recipe, environment, workdir, run_id="abc")
    with pytest.raises(MhsftError) as failed:
        node_check.check(plan, recipe, environment, workdir, "abc")
    assert failed.value.exit_code == 3
    message = failed.value.message
    assert message.startswith("node check failed (output folder)") and "is not writable on this node" in message
    assert "submit from a folder every node shares" in message and "swift was not started" in message


def test_the_node_check_names_an_input_the_node_cannot_see(workdir) -> None:
    from mhsft.environment import load_environment
    from mhsft.errors import MhsftError
    from mhsft.launch import load_recipe
    from mhsft.recipe.plan import train_plan
    from mhsft.slurm import node_check

    environment = load_environment(None)
    recipe = load_recipe(str(local_recipe(workdir, mode="offline")), [], environment)
    plan = train_plan(recipe, environment, workdir, run_id="abc")
    assert "2 local input(s) visible" in node_check.check(plan, recipe, environment, workdir, "abc")
    (workdir / "model").rmdir()  # as a node sees a model downloaded to a folder it does not share
    with pytest.raises(MhsftError) as failed:
        node_check.check(plan, recipe, environment, workdir, "abc")
    message = failed.value.message
    assert failed.value.exit_code == 3 and message.startswith("node check failed (inputs)")
    assert f"{workdir / 'model'} is not visible on this node" in message and "[slurm] download_dir" in message
