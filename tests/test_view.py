"""Seeing runs with a fake `swift`: `runs show`, the end-of-train summary, `runs compare`, `board` and the cloud URL."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from support.environment import SECRET
from support.running import local_recipe, mhsft, training_started, watch_stderr, write
from support.swanlab_server import SwanLabCloud
from support.waiting import wait_until

GOOD = "good-key-0123456789"


def records(workdir: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*.json")]
    return sorted(found, key=lambda r: r["started_at"])


def train(workdir: Path, env: dict, *sets: str) -> dict:
    result = mhsft("train", "r.toml", *sets, env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return records(workdir)[-1] | {"stderr": result.stderr}


def test_runs_show_lists_checkpoints_best_last_and_the_same_as_json(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    run_dir = Path(run["run_dir"])
    shown = mhsft("runs", "show", env=env, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"run       {run['id']}" in out and "status    succeeded (exit 0)" in out
    assert re.search(rf"^\s+10 .*{run_dir}/checkpoint-10  \(best\)$", out, re.M)  # the fake's best is the first
    assert re.search(rf"^\s+20 .*{run_dir}/checkpoint-20  \(last\)$", out, re.M)
    assert f"SwanLab   local, {workdir / 'swanlog'}: mhsft board {run['id']}" in out
    assert f"next: mhsft infer --run {run['id']}" in out
    doc = json.loads(mhsft("runs", "show", run["id"][:-2], "--json", env=env, cwd=workdir).stdout)
    assert doc["schema_version"] == 1 and doc["id"] == run["id"]
    assert doc["best_checkpoint"] == str(run_dir / "checkpoint-10")
    assert doc["last_checkpoint"] == str(run_dir / "checkpoint-20")
    assert [c["step"] for c in doc["checkpoints"]] == [10, 20]
    assert doc["loss"]["train"] == [[1, 1.0]]  # the fake's one logged row
    # `mhsft runs` is still the table
    table = mhsft("runs", "--limit", "5", env=env | {"COLUMNS": "250"}, cwd=workdir)
    assert table.returncode == 0 and run["id"] in table.stdout


def test_runs_show_reads_a_long_log_once_and_draws_the_curve_at_terminal_width(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    lines = [
        json.dumps({"loss": 2.0 - step / 20_000, "global_step/max_steps": f"{step}/20000"}) for step in range(1, 15)
    ]
    lines.append(json.dumps({"loss": 9.0, "global_step/max_steps": "15/20000"}))  # a spike
    lines.append('{"loss": NaN, "global_step/max_steps": "16/20000", "grad_norm": Infinity}')  # swift writes these
    lines.append('{"loss": 1.9, "global_')  # a line being written
    lines += [json.dumps({"loss": 3.0 + step, "global_step/max_steps": f"{step}/20000"}) for step in range(17, 30)]
    lines += [
        json.dumps({"loss": 1.0, "global_step/max_steps": f"{step}/20000"}) for step in range(5, 20_001)
    ]  # resumed
    lines.append(json.dumps({"eval_loss": 0.5, "global_step/max_steps": "10/20000"}))
    write(Path(run["run_dir"]) / "logging.jsonl", "\n".join(lines) + "\n")
    doc = json.loads(mhsft("runs", "show", "--json", env=env, cwd=workdir).stdout)
    train_loss = doc["loss"]["train"]
    assert train_loss[:4] == [
        [1, 2.0 - 1 / 20_000],
        [2, 2.0 - 2 / 20_000],
        [3, 2.0 - 3 / 20_000],
        [4, 2.0 - 4 / 20_000],
    ]
    assert train_loss[4] == [5, 1.0] and len(train_loss) == 20_000  # the resumed run's steps replace the old ones
    assert [(c["step"], c["train_loss"], c["eval_loss"]) for c in doc["checkpoints"]] == [
        (10, 1.0, 0.5),
        (20, 1.0, None),
    ]
    assert doc["progress"] == {"step": 10, "max_steps": 20000}
    shown = mhsft("runs", "show", env=env, cwd=workdir)
    assert shown.returncode == 0 and "train loss: line, eval loss: x" in shown.stdout, shown.stderr


def test_the_curve_keeps_each_stretch_lowest_and_highest_point() -> None:
    from mhsft.view.curve import downsample

    series = [(step, 1.0) for step in range(1, 100_001)]
    series[54_321] = (54_322, 7.0)
    series[77_000] = (77_001, -1.0)
    drawn = downsample(series, 144)
    assert len(drawn) <= 2 * 144 and drawn[0][0] == 1 and drawn == sorted(drawn)
    assert (54_322, 7.0) in drawn and (77_001, -1.0) in drawn
    assert downsample(series[:200], 144) == series[:200]


def test_train_ends_with_a_short_summary(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    stderr = run["stderr"]
    assert "loss 1.0000 (step 1) -> 1.0000 (step 1)" in stderr
    assert f"newest checkpoint  {run['run_dir']}/checkpoint-20" in stderr
    assert f"mhsft board {run['id']}" in stderr
    assert f"next: mhsft infer --run {run['id']}  |  mhsft export --merge-lora --run {run['id']}" in stderr


def test_runs_compare_shows_only_what_differs_and_the_results(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    first = train(workdir, env, "--set", "sft.lora_rank=8")
    second = train(workdir, env, "--set", "sft.lora_rank=16")
    result = mhsft("runs", "compare", first["id"], second["id"], env=env | {"COLUMNS": "200"}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    differing = result.stdout.split("results")[0]
    assert re.search(r"sft\.lora_rank\s+│ 8\s+│ 16", differing)
    assert "sft.model" not in differing and "SWANLAB_RUN_ID" not in differing
    assert re.search(r"last_loss\s+│ 1\s+│ 1\s", result.stdout)
    assert re.search(r"global_step\s+│ 20\s+│ 20\s", result.stdout)
    one = mhsft("runs", "compare", first["id"], env=env, cwd=workdir)
    assert one.returncode == 2 and "two or more run ids" in one.stderr


def test_unknown_run_lists_the_closest_ones(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    typo = run["id"][:-4] + "zzzz"
    for args in (("runs", "show", typo), ("board", typo), ("runs", "compare", run["id"], typo)):
        result = mhsft(*args, env=env, cwd=workdir)
        assert result.returncode == 2, args
        assert run["id"] in result.stderr and "Traceback" not in result.stderr
    empty = mhsft("runs", "show", env=env, cwd=workdir / "data")
    assert empty.returncode == 2 and "no runs are recorded" in empty.stderr


def test_run_without_its_output_folder_is_explained_not_mixed_up(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    later = train(workdir, env)  # the same output_dir: its v1 folder must not stand in for the deleted v0
    shutil.rmtree(run["run_dir"])
    result = mhsft("runs", "show", run["id"], env=env, cwd=workdir)
    assert result.returncode == 0
    assert f"its output folder {run['run_dir']} does not exist" in result.stderr
    assert "status    succeeded" in result.stdout and "Traceback" not in result.stderr
    assert "checkpoints: none found (no output folder)" in result.stdout and later["run_dir"] not in result.stdout


def test_cloud_url_points_to_what_the_swanlab_stand_in_received(workdir, env, fake_swift) -> None:
    cloud = SwanLabCloud().start()
    try:
        for workspace in ("", "team"):
            extra = f'workspace = "{workspace}"' if workspace else ""
            write(workdir / "data" / "train.jsonl", "{}\n")
            write(
                workdir / "r.toml",
                f'[swanlab]\nproject = "mh-sft"\napi_host = "{cloud.url}"\n{extra}\n'
                '[sft]\nmodel = "Qwen/Qwen2.5-7B-Instruct"\ndataset = ["data/train.jsonl"]\noutput_dir = "out"\n',
            )
            cloud.requests.clear()
            run = train(workdir, env | {"SWANLAB_API_KEY": GOOD, "HF_TOKEN": SECRET})
            owner = workspace or "alice"  # the key's user when the recipe names no workspace
            asked = {path for method, path, _ in cloud.requests if method == "GET"}
            assert {f"/api/group/{owner}", f"/api/project/{owner}/mh-sft"} <= asked
            swanlab_run = fake_swift.calls()[-1]["env"]["SWANLAB_RUN_ID"]
            assert swanlab_run == run["swanlab_run_id"]
            url = f"{cloud.url}/@{owner}/mh-sft/runs/{swanlab_run}"  # web host = a private api host
            assert run["extra"]["swanlab_url"] == url
            assert f"SwanLab            {url}" in run["stderr"]
            shown = mhsft("runs", "show", env=env, cwd=workdir)
            assert f"SwanLab   {url}" in shown.stdout
            board = mhsft("board", run["id"], env=env, cwd=workdir, timeout=30)
            assert board.returncode == 0 and url in board.stdout  # nothing started for a cloud run
            as_json = mhsft("runs", "show", "--json", env=env, cwd=workdir).stdout
            assert json.loads(as_json)["swanlab"]["url"] == url
            for text in (run["stderr"], shown.stdout, as_json, board.stdout):
                assert SECRET not in text and GOOD not in text
    finally:
        cloud.stop()


def test_web_host_rules() -> None:
    from mhsft.view.links import run_url, web_host

    assert web_host(None, None) == "https://swanlab.cn"
    assert web_host("https://api.swanlab.cn/", None) == "https://swanlab.cn"
    assert web_host("http://10.0.0.5:8000/api", None) == "http://10.0.0.5:8000"
    assert web_host("https://api.example.com", "swanlab.example.com/x") == "https://swanlab.example.com"
    assert run_url("https://swanlab.cn", "alice", "mh sft", "abc") == "https://swanlab.cn/@alice/mh%20sft/runs/abc"


def start_board(workdir: Path, env: dict, *args: str) -> tuple[subprocess.Popen, list[str], threading.Event]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "board", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, ready = watch_stderr(proc, "Ctrl-C stops")
    return proc, lines, ready


def port_in(lines: list[str]) -> int:
    return int(re.search(r"board ready: http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1))


def test_board_answers_and_ctrl_c_frees_the_port_default_port_moves_on(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    assert (workdir / "swanlog").is_dir()  # the preflight made it; an empty log folder is fine
    blocker = socket.socket()
    with contextlib.suppress(OSError):  # the default port taken (if nobody else holds it already)
        blocker.bind(("", 5092))
    try:
        proc, lines, ready = start_board(workdir, env, run["id"])
        try:
            assert ready.wait(60), "".join(lines)
            port = port_in(lines)
            assert port != 5092
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
    finally:
        blocker.close()
    assert code == 130
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_board_bad_input(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    shutil.rmtree(workdir / "swanlog")
    missing = mhsft("board", run["id"], env=env, cwd=workdir)
    assert missing.returncode == 2
    assert f"the SwanLab log folder {workdir / 'swanlog'}" in missing.stderr and "does not exist" in missing.stderr
    by_recipe = mhsft("board", "r.toml", env=env, cwd=workdir)
    assert by_recipe.returncode == 2 and f"{workdir / 'swanlog'} (recipe unit) does not exist" in by_recipe.stderr
    (workdir / "swanlog").mkdir()
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = mhsft("board", "--port", str(port), env=env, cwd=workdir)
    assert busy.returncode == 2 and f"--port {port}: the port is in use" in busy.stderr
    neither = mhsft("board", "no-such-recipe", env=env, cwd=workdir)
    assert neither.returncode == 2 and "neither a recorded run" in neither.stderr
    for result in (missing, busy, neither):
        assert "Traceback" not in result.stderr


def test_follow_refreshes_until_the_run_ends(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    sleeping = env | {"FAKE_SWIFT_MODE": "sleep"}
    training, _ = training_started(workdir, sleeping, fake_swift, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (record,) = [json.loads(p.read_text()) for p in (workdir / ".mhsft" / "runs").glob("*.json")]
    log = Path(record["run_dir"]) / "logging.jsonl"  # the vN folder mhsft reserved for this run
    row = {"loss": 2.5, "global_step/max_steps": "2/20", "elapsed_time": "1s", "remaining_time": "9s"}
    write(log, json.dumps(row) + "\n")
    follow = subprocess.Popen(
        [sys.executable, "-m", "mhsft", "runs", "show", "--follow", "--interval", "0.3"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(follow.stdout), daemon=True).start()
    try:
        wait_until(lambda: "step 2/20, about 9s left" in "".join(out), 30, "the follow view at step 2")
        assert "status    running, step 2/20, about 9s left" in "".join(out)
        with log.open("a") as f:
            f.write(json.dumps(row | {"loss": 2.0, "global_step/max_steps": "4/20", "remaining_time": "8s"}) + "\n")
        wait_until(lambda: "step 4/20" in "".join(out), 30, "the follow view at step 4")
        assert "status    running, step 4/20, about 8s left" in "".join(out)
    finally:
        training.send_signal(signal.SIGINT)
        assert training.wait(timeout=30) == 130
    assert follow.wait(timeout=30) == 0  # it stops by itself once the run has ended
    assert "status    interrupted (exit 130)" in "".join(out)


def test_runs_subcommands_have_help_with_examples(workdir, env) -> None:
    for sub in ("show", "compare"):
        result = mhsft("runs", sub, "--help", env=env, cwd=workdir)
        assert result.returncode == 0 and "Example" in result.stdout and f"Usage: mhsft runs {sub}" in result.stdout
    assert "show" in mhsft("runs", "--help", env=env, cwd=workdir).stdout


def test_no_runs_here_says_which_folder_below_holds_them(workdir, env) -> None:
    """After `mhsft selftest`, `mhsft runs` in the same folder said only "no runs" (its records are in its folder)."""
    write(workdir / "mhsft-selftest" / ".mhsft" / "runs" / "20261201-101500-sft-ab12.json", "{}")
    result = mhsft("runs", env=env, cwd=workdir)
    assert result.returncode == 0 and "mhsft-selftest/ holds 1 (cd mhsft-selftest && mhsft runs)" in result.stderr


def test_runs_show_names_the_datasets_and_set_overrides_a_run_used(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    trained = mhsft(
        "train", "r.toml", "--set", "sft.num_train_epochs=2", "--set", "swanlab.exp_name=e2", env=env, cwd=workdir
    )
    assert trained.returncode == 0, trained.stderr
    shown = mhsft("runs", "show", env=env | {"COLUMNS": "200"}, cwd=workdir)
    assert "dataset   data/train.jsonl" in shown.stdout, shown.stdout
    assert "--set     sft.num_train_epochs=2 swanlab.exp_name=e2" in shown.stdout
    doc = json.loads(mhsft("runs", "show", "--json", env=env, cwd=workdir).stdout)
    assert doc["datasets"] == {"dataset": ["data/train.jsonl"]} and doc["overrides"][0] == "sft.num_train_epochs=2"
    (path,) = (workdir / ".mhsft" / "runs").glob("*-sft-*.json")  # the gate's counts, as a gated run records them
    record = json.loads(path.read_text())
    counts = {"rows_read": 54, "rows_kept": 52, "rows_dropped": 2, "rows_truncated": 0, "steps_per_epoch": 3}
    path.write_text(json.dumps(record | {"extra": record["extra"] | {"data_check": counts}}))
    shown = mhsft("runs", "show", env=env | {"COLUMNS": "200"}, cwd=workdir)
    assert "52 of 54 rows kept (2 dropped, 0 truncated), 3 steps per epoch" in shown.stdout


def test_a_diverged_run_shows_nan_losses_and_warns(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    rows = [(2, 2.0), (4, 1.5), (6, float("nan")), (8, float("inf")), (10, float("nan")), (20, float("nan"))]
    logged = [{"loss": v, "global_step/max_steps": f"{s}/20"} for s, v in rows]
    logged.append({"eval_loss": float("nan"), "global_step/max_steps": "10/20"})
    (Path(run["run_dir"]) / "logging.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logged))  # NaN, Infinity
    shown = mhsft("runs", "show", env=env, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert "warning: the train loss is nan at step 6: the run diverged" in shown.stdout
    ckpts = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+\S+/checkpoint-\d+", shown.stdout, re.M)
    assert ckpts == [("10", "nan", "nan"), ("20", "nan", "-")]  # not the 1.5 logged before the nan
    doc = json.loads(mhsft("runs", "show", "--json", env=env, cwd=workdir).stdout, parse_constant=_no_constants)
    assert doc["loss"]["train"][2:4] == [[6, "nan"], [8, "inf"]] and doc["warnings"][0].startswith("the train loss")
    assert [c["train_loss"] for c in doc["checkpoints"]] == ["nan", "nan"]
    report = mhsft("report", "--samples", "0", "--out", "rep", env=env, cwd=workdir)
    assert report.returncode == 0, report.stderr
    md = (workdir / "rep" / "report.md").read_text()
    assert "Warning: the train loss is nan at step 6: the run diverged" in md
    assert "| 10 | nan | nan |" in md and "| last_loss | nan |" in md


def _no_constants(name: str):
    raise AssertionError(f"{name} in JSON output: not valid JSON")


TERMINAL_TRICKS = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b2J\u202e"


def test_control_characters_in_names_are_shown_escaped(workdir, env, fake_swift) -> None:
    local_recipe(workdir)
    data = write(workdir / "data" / f"x{TERMINAL_TRICKS}.jsonl", (workdir / "data" / "train.jsonl").read_text())
    recipe = (workdir / "r.toml").read_text().replace('name = "unit"', f"name = {json.dumps('ev' + TERMINAL_TRICKS)}")
    write(workdir / "r.toml", recipe.replace('"data/train.jsonl"', json.dumps(f"data/{data.name}")))
    escaped = "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31m\\x9b2J\\u202e"
    wide = env | {"COLUMNS": "400"}
    trained = mhsft("train", "r.toml", env=wide, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    listed = mhsft("runs", env=wide, cwd=workdir)
    shown = mhsft("runs", "show", env=wide, cwd=workdir)
    for name, text in (("plan", trained.stderr), ("runs", listed.stdout), ("runs show", shown.stdout)):
        assert not any(c in text for c in "\x1b\x07\x9b\u202e"), name
        assert f"ev{escaped}" in text and (name == "runs" or f"x{escaped}.jsonl" in text), name


def test_a_board_never_announces_a_port_another_board_holds(workdir, env, fake_swift, tmp_path) -> None:
    local_recipe(workdir)
    run = train(workdir, env)
    held = tmp_path / "held"  # board B's `swanlab` waits (after mhsft picked its port) until board A holds it
    write(
        held / "swanlab",
        f"#!{sys.executable}\nimport os, sys, time\nfrom pathlib import Path\n"
        f"Path({str(tmp_path / 'argv')!r}).write_text(' '.join(sys.argv))\n"
        f"while not Path({str(tmp_path / 'go')!r}).exists():\n    time.sleep(0.05)\n"
        f"os.execv({shutil.which('swanlab', path=str(Path(sys.executable).parent))!r}, sys.argv)\n",
    ).chmod(0o755)
    b, b_lines, b_ready = start_board(workdir, env | {"PATH": f"{held}:{env['PATH']}"}, run["id"])
    a = None
    try:
        wait_until((tmp_path / "argv").exists, 30, "board B to pick its port")
        picked = int((tmp_path / "argv").read_text().split("--port ")[1].split()[0])
        a, a_lines, a_ready = start_board(workdir, env, "--port", str(picked))  # free until B's server binds it
        assert a_ready.wait(60) and port_in(a_lines) == picked, "".join(a_lines)
        (tmp_path / "go").write_text("")
        assert b_ready.wait(60), "".join(b_lines)
        announced = port_in(b_lines)
        assert announced != picked  # B moved on to a port of its own, and that one is B's
        a.send_signal(signal.SIGINT)
        assert a.wait(timeout=30) == 130
        with socket.create_connection(("127.0.0.1", announced), timeout=5):
            pass
    finally:
        for proc in (b, a):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
