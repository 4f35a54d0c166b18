"""`mhsft board`: SwanLab's local dashboard (`swanlab watch`) on a run's or recipe's log folder, or the cloud URL."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.launch import environment_for, load_recipe
from mhsft.paths import absolute
from mhsft.process import runner
from mhsft.process.ports import free_port, held_by
from mhsft.recipe.load import resolve
from mhsft.runs import store
from mhsft.runs.records import RUNS_DIR, RunRecord
from mhsft.view import links

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5092
READY_TIMEOUT_S = 60.0
ADDRESS_IN_USE = 7  # swanboard's exit code when its server cannot bind the port
PORT_TRIES = 5
_URL = re.compile(r"https?://\S+?:(\d+)")  # swanlab watch's "Local: http://127.0.0.1:5092" line


@dataclass(frozen=True)
class Source:
    """What to show: a local log folder (and the SwanLab run id to point at), or a cloud URL."""

    what: str
    log_dir: Path | None = None
    run_id: str | None = None
    cloud_url: str | None = None


def _from_record(record: RunRecord) -> Source:
    info = links.swanlab_of(record)
    if info is None:
        raise MhsftError(f"run {record.id} is a `swift {record.command}` run; only training runs have a board.")
    if info["mode"] in ("local", "offline"):
        return Source(f"run {record.id}", Path(info["log_dir"]), record.swanlab_run_id)
    url = info.get("url") or (
        f"(workspace unknown) project {info['project']}, run {info['run_id']}: open it from your SwanLab workspace"
    )
    return Source(f"run {record.id}", cloud_url=url)


def _from_recipe(ref: str, cwd: Path) -> Source:
    environment = environment_for(None)
    recipe = load_recipe(ref, [], environment)
    s = recipe.swanlab
    if s.mode == "local":
        log_dir = s.log_dir or environment.get("SWANLAB_LOG_DIR") or "swanlog"
        return Source(f"recipe {recipe.name}", Path(absolute(log_dir, cwd)))
    web = links.web_host(s.api_host or environment.get("SWANLAB_API_HOST"), s.web_host)
    where = f"{web}/@{s.workspace}/{s.project}" if s.workspace else f"{web} (your workspace), project {s.project}"
    return Source(f"recipe {recipe.name}", cloud_url=where)


def source_for(ref: str | None, cwd: Path) -> Source:
    """A run (id or unique prefix; default the newest training run) or a recipe (file or built-in name)."""
    if ref is None or store.matches(cwd, ref):
        none = (
            "no training run is recorded in {folder}. Give a RECIPE (its [swanlab] log_dir is used) or a run id, "
            "or train first."
        )
        return _from_record(store.which_run(cwd, ref, fits=lambda r: r.command == "sft", none=none))
    if resolve(ref) is not None:
        return _from_recipe(ref, cwd)
    close = difflib.get_close_matches(ref, store.ids(cwd), n=3, cutoff=0.4)
    hint = f" Closest runs: {', '.join(close)}." if close else ""
    raise MhsftError(
        f"{ref!r} is neither a recorded run in {cwd / RUNS_DIR} nor a recipe file or built-in name.{hint} "
        "`mhsft runs` lists the runs, `mhsft recipes list` the built-in recipes."
    )


def pick_port(host: str, port: int | None) -> int:
    """`port` if it is free (else an error), or the first free one from 5092."""
    if port is None:
        return free_port(DEFAULT_PORT)
    if free_port(port) != port:
        raise MhsftError(
            f"--port {port}: the port is in use on {host}. Pick another port, or leave out --port to take "
            f"the next free one from {DEFAULT_PORT}."
        )
    return port


def answers(base: str) -> bool:
    """Whether the board serves its page yet."""
    try:
        with urllib.request.urlopen(f"{base}/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def experiments(base: str) -> list[dict]:
    """The board's experiments (from its API); none when the folder holds no SwanLab data."""
    try:
        with urllib.request.urlopen(f"{base}/api/v1/project", timeout=5) as response:
            return list(json.load(response)["data"]["experiments"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def seen_port(text: str, state: dict) -> str:
    """Note the port `swanlab watch` says it serves on (it moves on by itself from a taken one); pass `text` on."""
    if "port" not in state and (found := _URL.search(text)):
        state["port"] = int(found.group(1))
    return text


def wait_ready(pid: int, host: str, source: Source, state: dict) -> None:
    """Poll until the board answers on the port it announced and is the process listening there (not another
    board that holds the port), then print its URL (and the run's page); stop it if it never answers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        port = state.get("port")
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
        if port is not None and answers(base) and held_by(pid, port) is not False:
            state["ready"] = True
            ui.info(f"\nboard ready: {base} ({source.what}, {source.log_dir})")
            found = experiments(base)
            page = next((e for e in found if source.run_id and str(e.get("run_id", "")).endswith(source.run_id)), None)
            if page is not None:
                ui.info(f"run page: {base}/experiment/{page['id']} (experiment {page.get('name')})")
            ui.info("Ctrl-C stops the board.")
            return
        time.sleep(0.3)
    state["timed_out"] = True
    ui.error(f"the SwanLab board did not answer within {READY_TIMEOUT_S:g} s; stopping it.")
    os.killpg(pid, signal.SIGTERM)


def dashboard_program() -> str:
    """The `swanlab` command, with the swanboard package its `watch` needs."""
    try:
        found = runner.executable("swanlab") if importlib.util.find_spec("swanboard") else None
    except MhsftError:
        found = None
    if found is None:
        raise MhsftError(
            "SwanLab's local dashboard is not installed (the `swanlab` command and the swanboard package). "
            "Install it in this environment: pip install 'swanlab[dashboard]'."
        )
    return found


def serve(source: Source, host: str, port: int) -> tuple[runner.Outcome, dict]:
    """One `swanlab watch` of the log folder until it ends; what its readiness wait saw (port, ready, timed_out)."""
    argv = [dashboard_program(), "watch", str(source.log_dir), "--host", host, "--port", str(port)]
    state: dict = {}

    def on_start(pid: int) -> None:
        threading.Thread(target=wait_ready, args=(pid, host, source, state), daemon=True).start()

    outcome = runner.run(argv, dict(os.environ), on_start=on_start, filter_output=lambda text: seen_port(text, state))
    return outcome, state


def board(ref: str | None, host: str | None, port: int | None) -> int:
    """Start `swanlab watch` on the log folder and wait for Ctrl-C, or print the cloud URL; returns the exit code."""
    cwd = Path.cwd()
    source = source_for(ref, cwd)
    if source.cloud_url is not None:
        ui.echo(f"{source.what} is tracked in SwanLab cloud: {source.cloud_url}")
        return 0
    assert source.log_dir is not None
    if not source.log_dir.is_dir():
        raise MhsftError(
            f"the SwanLab log folder {source.log_dir} ({source.what}) does not exist. Train first, or set "
            "[swanlab] log_dir in the recipe to where the run wrote its logs."
        )
    if not any(source.log_dir.glob("run-*")):
        ui.warn(f"{source.log_dir} holds no SwanLab run yet; the board will be empty until a run logs there.")
    host = host or DEFAULT_HOST
    chosen = pick_port(host, port)
    for _ in range(PORT_TRIES):
        outcome, state = serve(source, host, chosen)
        if state.get("ready") or outcome.exit_code != ADDRESS_IN_USE or port is not None:
            break
        ui.warn(f"another program took port {state.get('port', chosen)} as the board started; trying the next one.")
        chosen = free_port(state.get("port", chosen) + 1)
    return 1 if state.get("timed_out") and outcome.exit_code == 0 else outcome.exit_code
