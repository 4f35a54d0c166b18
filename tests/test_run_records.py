"""Run records and supervision under concurrency and faults: overlapping runs, a record that cannot be written,
mhsft itself killed, hostile record files, and telling swift's exit codes from mhsft's."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mhsft import launch
from mhsft.environment import load_environment
from mhsft.recipe.plan import Plan
from mhsft.runs import records as runs

from support.running import local_recipe, mhsft, training_started, write
from support.waiting import gone, wait_until

TRAIN = [sys.executable, "-m", "mhsft", "train", "r.toml"]


def records(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((workdir / ".mhsft" / "runs").glob("*.json"))]


_groups: list[int] = []


@pytest.fixture(autouse=True)
def no_leftovers():
    """A failing test must not leave a fake swift running: its process group is killed at teardown."""
    yield
    while _groups:
        with contextlib.suppress(OSError):
            os.killpg(_groups.pop(), signal.SIGKILL)


def started_swift(workdir: Path, fake_swift, env: dict) -> tuple[subprocess.Popen, dict]:
    """`mhsft train` in the background until the fake swift runs and the record holds its pid."""
    proc, info = training_started(workdir, env, fake_swift, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _groups.append(info["pid"])  # swift leads its own process group
    wait_until(
        lambda: records(workdir) and records(workdir)[0]["pid"] == info["pid"], 30, "the record to name swift's pid"
    )
    return proc, info


def temp_files(workdir: Path) -> list[Path]:
    return list((workdir / ".mhsft" / "runs").glob(".tmp-*"))


# --- item 3: overlapping runs on one output_dir


def test_overlapping_trainings_each_record_the_folder_their_own_swift_wrote(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    overlapping = env | {"FAKE_SWIFT_MODE": "train", "FAKE_SWIFT_HOLD": "2"}
    procs = []
    for delay in (0, 0, 0, 0.5, 1, 1):  # a burst, then runs started while the others' swift still runs
        time.sleep(delay)
        procs.append(subprocess.Popen(TRAIN, cwd=workdir, env=overlapping, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    recs = records(workdir)
    assert len(recs) == 6 and len({r["run_dir"] for r in recs}) == 6
    for rec in recs:  # the folder each record names is the one its own swift process wrote into
        owner = json.loads((Path(rec["run_dir"]) / "owner.json").read_text())
        assert owner["pid"] == rec["pid"]
    assert sorted(int(Path(r["run_dir"]).name.split("-")[0][1:]) for r in recs) == list(range(6))
    for rec in recs:  # and --run ID acts on that run's own checkpoint
        dry = mhsft("infer", "--run", rec["id"], "--dry-run", env=env, cwd=workdir)
        assert f"--adapters {rec['run_dir']}/checkpoint-20" in dry.stdout, dry.stderr


def test_a_multi_node_launch_leaves_the_folder_to_swift_and_records_it(workdir, env, fake_swift) -> None:
    local_recipe(workdir, extra='[launch]\nnnodes = 2\nnode_rank = 0\nmaster_addr = "127.0.0.1"\n')
    result = mhsft("train", "r.toml", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    (call,) = fake_swift.calls()
    assert "--add_version" not in call["argv"] and call["argv"][call["argv"].index("--output_dir") + 1].endswith("out")
    (rec,) = records(workdir)
    assert json.loads((Path(rec["run_dir"]) / "owner.json").read_text())["pid"] == call["pid"]


def test_with_add_version_false_the_run_folder_is_output_dir_itself(workdir, env, fake_swift) -> None:
    local_recipe(workdir, extra="add_version = false")
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    (call,) = fake_swift.calls()
    assert call["argv"][call["argv"].index("--output_dir") + 1] == str(workdir / "out")
    (rec,) = records(workdir)
    assert rec["run_dir"] == str(workdir / "out") and list((workdir / "out").glob("v*")) == []
    dry = mhsft("infer", "--dry-run", env=env, cwd=workdir)
    assert f"--adapters {workdir / 'out' / 'checkpoint-20'}" in dry.stdout, dry.stderr


def test_reserved_folders_are_numbered_after_any_vN_name_as_swift_does(tmp_path: Path) -> None:
    (tmp_path / "v4-anything").mkdir()
    first, second = runs.reserve_version_dir(tmp_path), runs.reserve_version_dir(tmp_path)
    assert first.name.startswith("v5-") and second.name.startswith("v6-") and first.is_dir()


# --- item 4: faults during a run


def limit_file_size(pid: int, size: int) -> None:
    """From now on, process `pid` cannot write a file past `size` bytes (EFBIG), as on a full disk."""
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))


def test_a_first_record_that_cannot_be_written_starts_nothing_and_leaves_no_temp_file(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    full = subprocess.run(
        TRAIN,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY)),
    )
    assert full.returncode == 2 and full.stderr.splitlines()[-1].startswith("error: cannot write the run record")
    assert "Traceback" not in full.stderr and fake_swift.calls() == [] and temp_files(workdir) == []


def test_a_final_record_that_cannot_be_written_keeps_swifts_exit_code(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    proc, _ = started_swift(workdir, fake_swift, env | {"FAKE_SWIFT_MODE": "wait:0"})
    limit_file_size(proc.pid, 64)
    Path(f"{fake_swift.log}.go").touch()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "warning: cannot write the run record" in stderr and "Traceback" not in stderr
    assert temp_files(workdir) == []
    # the record stays `running`, but its mhsft is gone: `runs` says so
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, cwd=workdir)
    assert "abandoned" in listing.stdout and "running" not in listing.stdout


def test_ctrl_c_still_reaches_swift_when_the_record_cannot_be_written(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    proc, info = started_swift(workdir, fake_swift, env | {"FAKE_SWIFT_MODE": "sleep"})
    limit_file_size(proc.pid, 64)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert Path(f"{fake_swift.log}.signal").read_text() == "SIGINT"
    assert gone(info["pid"]) and gone(info["grandchild"])
    assert "cannot write the run record" in stderr and temp_files(workdir) == []


def test_a_record_write_failing_while_swift_runs_does_not_end_supervision(
    workdir, env, fake_swift, monkeypatch, capsys
) -> None:
    """The write after swift started (its pid) hits a full disk: mhsft warns, keeps forwarding Ctrl-C, and
    returns swift's code."""
    for key in ("PATH", "FAKE_SWIFT_LOG"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("FAKE_SWIFT_MODE", "sleep")
    real_dump, calls = json.dump, []

    def full_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the first record (before swift starts) is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_dump(*args, **kwargs)

    monkeypatch.setattr(runs.json, "dump", full_disk)
    started = Path(f"{fake_swift.log}.started")

    def ctrl_c() -> None:
        wait_until(started.exists, 30, "the fake swift to start")
        _groups.append(json.loads(started.read_text())["pid"])
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    plan = Plan(command="infer", argv=["swift", "infer"], env={}, secrets=())
    code = launch.execute(plan, load_environment(base=dict(os.environ), cwd=workdir))
    assert code == 130 and Path(f"{fake_swift.log}.signal").read_text() == "SIGINT"
    assert gone(json.loads(started.read_text())["grandchild"])
    err = capsys.readouterr().err
    assert err.count("warning: cannot write the run record") == 2 and "No space left on device" in err
    assert temp_files(workdir) == [] and records(workdir)[0]["status"] == "running"


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGUSR1, signal.SIGALRM])
def test_swift_does_not_run_on_when_mhsft_dies(workdir, env, fake_swift, signum) -> None:
    local_recipe(workdir)
    proc, info = started_swift(workdir, fake_swift, env | {"FAKE_SWIFT_MODE": "sleep"})
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == -signum
    assert gone(info["pid"]) and gone(info["grandchild"])  # swift and the child it started
    assert Path(f"{fake_swift.log}.signal").read_text() == "SIGTERM"  # asked to stop, not killed outright
    (rec,) = records(workdir)
    assert rec["status"] == "running"  # nobody was left to finish it ...
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, cwd=workdir)
    assert listing.returncode == 0 and "abandoned" in listing.stdout  # ... and `runs` does not call it running


def test_a_running_record_whose_mhsft_is_alive_stays_running(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    proc, _ = started_swift(workdir, fake_swift, env | {"FAKE_SWIFT_MODE": "sleep"})
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, cwd=workdir)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert "running" in listing.stdout and "abandoned" not in listing.stdout


def test_a_slurm_run_is_never_shown_abandoned_when_the_submitting_mhsft_has_exited(tmp_path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    fields = dict(
        id="x-sft-1",
        command="sft",
        recipe=None,
        recipe_name=None,
        recipe_sha256=None,
        argv=[],
        env={},
        secrets=[],
        cwd=str(tmp_path),
        versions={},
        started_at="2026",
        status="running",
        supervisor_pid=dead.pid,
        supervisor_host=socket.gethostname(),
    )
    assert runs.RunRecord(**fields).shown_status == "abandoned"
    assert runs.RunRecord(**fields, extra={"slurm": {"job_id": "7"}}).shown_status == "running"


# --- item 6: records read defensively

HOSTILE = {
    "started_at null": lambda r: r | {"started_at": None},
    "started_at int": lambda r: r | {"started_at": 1700000000},
    "argv a string": lambda r: r | {"argv": "swift sft"},
    "exit_code a bool": lambda r: r | {"exit_code": True},
    "id missing": lambda r: {k: v for k, v in r.items() if k != "id"},
    "a list": lambda r: [r],
    "deep nesting": lambda r: "[" * 100_000 + "]" * 100_000,
    "huge integer": lambda r: '{"id": ' + "9" * 5000 + "}",
    "not JSON": lambda r: "{not json",
    "binary": lambda r: b"\xff\xfe\x00",
    "too large": lambda r: r | {"extra": {"pad": "x" * (runs.MAX_RECORD_BYTES + 1)}},
}


def write_record(folder: Path, name: str, content) -> Path:
    path = folder / f"{name}.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def trained_once(workdir, env, fake_swift) -> dict:
    local_recipe(workdir)
    assert mhsft("train", "r.toml", env=env, cwd=workdir).returncode == 0
    (rec,) = records(workdir)
    return rec


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_record_is_reported_once_and_never_replaced_by_an_older_run(
    workdir, env, fake_swift, trained_once, case
) -> None:
    folder = workdir / ".mhsft" / "runs"
    newer_id = "29990101-000000-sft-beef"  # newer than the good run, so infer would otherwise fall back
    bad = write_record(folder, newer_id, HOSTILE[case](dict(trained_once, id=newer_id)))
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, cwd=workdir)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert trained_once["id"] in listing.stdout  # the readable run is still listed
    assert listing.stderr.count(str(bad)) == 1 and "cannot be read" in listing.stderr
    fallback = mhsft("infer", "--dry-run", env=env, cwd=workdir)
    assert fallback.returncode == 2 and "Traceback" not in fallback.stderr
    assert "does not fall back to an older one" in fallback.stderr and fallback.stderr.count(str(bad)) == 2
    by_id = mhsft("infer", "--run", newer_id, "--dry-run", env=env, cwd=workdir)
    assert by_id.returncode == 2 and f"its record {bad} cannot be read" in by_id.stderr
    resume = mhsft("train", "r.toml", "--resume", "--dry-run", env=env, cwd=workdir)  # finds its run's SwanLab id
    assert resume.returncode == 0 and resume.stderr.count(str(bad)) == 1 and "Traceback" not in resume.stderr
    assert trained_once["swanlab_run_id"] in resume.stdout


def test_special_files_and_odd_paths_in_records_do_not_hang_or_crash(workdir, env, fake_swift, trained_once) -> None:
    folder = workdir / ".mhsft" / "runs"
    os.mkfifo(folder / "20000101-000000-infer-fifo.json")  # older than the good run: reported, not used
    (folder / "20000101-000000-infer-adir.json").mkdir()
    old = dict(trained_once, started_at="2000-01-01T00:00:00.000+00:00")
    write_record(folder, "20000101-000000-sft-null", dict(old, id="20000101-000000-sft-null", run_dir="a\0b"))
    long_id = "20000101-000000-sft-long"
    write_record(folder, long_id, dict(old, id=long_id, run_dir="/" + "x" * 300, output_dir="/" + "y" * 300))
    listing = mhsft("runs", env=env | {"COLUMNS": "250"}, timeout=30, cwd=workdir)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    assert "not a regular file" in listing.stderr and long_id in listing.stdout
    dry = mhsft("infer", "--dry-run", env=env, timeout=30, cwd=workdir)  # the good (newest) run is used
    assert dry.returncode == 0 and f"{trained_once['run_dir']}/checkpoint-20" in dry.stdout
    gone_run = mhsft("infer", "--run", long_id, "--dry-run", env=env, timeout=30, cwd=workdir)
    assert gone_run.returncode == 2 and "is gone (moved or deleted)" in gone_run.stderr


def test_unknown_fields_are_kept_and_ignored(workdir, env, fake_swift, trained_once) -> None:
    path = workdir / ".mhsft" / "runs" / f"{trained_once['id']}.json"
    path.write_text(json.dumps(trained_once | {"slurm_job_id": "4242", "queue": {"deep": [1, 2]}}))
    dry = mhsft("infer", "--run", trained_once["id"], "--dry-run", env=env, cwd=workdir)
    assert dry.returncode == 0 and "warning" not in dry.stderr
    record = runs.read_record(path)
    assert record.unknown == {"slurm_job_id": "4242", "queue": {"deep": [1, 2]}}
    record.status = "succeeded"
    record.save()  # written back as they were
    assert json.loads(path.read_text())["slurm_job_id"] == "4242" and "unknown" not in json.loads(path.read_text())


# --- item 8: swift's exit codes 2 and 3 told apart from mhsft's own


@pytest.mark.parametrize("code", [2, 3])
def test_swifts_own_exit_code_is_named_as_swifts(workdir, env, fake_swift, code) -> None:
    local_recipe(workdir)
    result = mhsft("train", "r.toml", env=env | {"FAKE_SWIFT_MODE": f"exit:{code}"}, cwd=workdir)
    assert result.returncode == code
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("run ") and f"failed (swift exit {code})" in last and "record .mhsft/runs/" in last
    (rec,) = records(workdir)
    assert rec["status"] == "failed" and rec["exit_code"] == code and rec["id"] in last


def test_mhsfts_own_exit_codes_2_and_3_end_with_an_error_line_and_start_nothing(workdir, env, fake_swift) -> None:
    local_recipe(workdir, mode="cloud")
    usage = mhsft("train", "r.toml", "--set", "sft.lora_rnk=4", env=env, cwd=workdir)
    preflight = mhsft("train", "r.toml", env=env | {"SWANLAB_API_HOST": "http://127.0.0.1:9"}, cwd=workdir)
    for result, code in ((usage, 2), (preflight, 3)):
        assert result.returncode == code, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert fake_swift.calls() == [] and not (workdir / ".mhsft" / "runs").exists()


def test_runs_with_an_empty_or_missing_records_folder(workdir, env) -> None:
    write(workdir / ".mhsft" / "runs" / "readme.txt", "not a record")
    result = mhsft("runs", env=env, cwd=workdir)
    assert result.returncode == 0 and "no runs recorded" in result.stderr
