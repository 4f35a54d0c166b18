"""`mhsft sync [RUN] [--all]`: upload a locally tracked run's SwanLab log to the cloud under its own run id.

The upload is the SwanLab SDK's own sync, in a child process stopped at the timeout (see `sync.upload`); the
key comes from `.env` (or `swanlab login`) on this machine and travels to the child on its stdin, never on a
command line. What the server then holds is written to `.mhsft/uploads/<run>.json` (see `runs.uploads`).
"""

from __future__ import annotations

from pathlib import Path

from mhsft import ui
from mhsft.checks import FAIL
from mhsft.environment import Environment
from mhsft.errors import PREFLIGHT, USAGE, MhsftError
from mhsft.preflight.swanlab import child_env, find_key, settings_pitfalls
from mhsft.process import isolated
from mhsft.recipe.model import SwanlabSettings
from mhsft.runs import status, uploads
from mhsft.runs.records import RunRecord, now
from mhsft.runs.store import load_all
from mhsft.view.links import run_url, swanlab_of, web_host
from mhsft.view.show import record_for

TIMEOUT_S = 300.0
INCOMPLETE = 1
HEADER_BYTES = 7  # a record log starts with a 7-byte header (swanlab's LEVELDBLOG_HEADER_LEN)


def has_records(folder: Path) -> bool:
    """Whether the folder's record log has begun. An attempt killed before its SDK first wrote to it (a requeue
    soon after the start: the SDK buffers) leaves an empty one, which the SDK's sync cannot read: it is skipped."""
    return any(p.stat().st_size >= HEADER_BYTES for p in folder.glob("run-*.swanlab"))


def log_folders(record: RunRecord) -> list[Path]:
    """The run's `run-<time>-<id>` folders (several after a requeue), oldest first; an error when there is none."""
    info = swanlab_of(record)
    if info is None or not record.swanlab_run_id:
        raise MhsftError(f"run {record.id} is a `swift {record.command}` run; only training runs have a SwanLab log.")
    if info["mode"] == "cloud":
        raise MhsftError(
            f"run {record.id} was tracked in SwanLab cloud mode: it is in SwanLab already and has no local log to "
            'sync. `mhsft sync` uploads runs tracked with [swanlab] mode = "offline" or "local".'
        )
    root = Path(info["log_dir"])
    folders = sorted(root.glob(f"run-*-{record.swanlab_run_id}"))  # run-YYYYmmdd_HHMMSS-ID: by name is by time
    found = [folder for folder in folders if has_records(folder)]
    if not found:
        raise MhsftError(
            f"run {record.id} has no local SwanLab log: no folder run-*-{record.swanlab_run_id} in {root}. A run "
            "that never reached its first training step logged nothing; if the folder was moved, move it back."
        )
    return found


def target(record: RunRecord, environment: Environment) -> tuple[SwanlabSettings, str, str]:
    """The SwanLab settings the run was recorded with, the key (from .env or `swanlab login`) and the API host."""
    info = swanlab_of(record) or {}
    settings = SwanlabSettings(
        info["project"],
        "cloud",
        info["experiment"] or record.recipe_name or "mhsft",
        workspace=info["workspace"],
        api_host=record.env.get("SWANLAB_API_HOST"),
        web_host=record.env.get("SWANLAB_WEB_HOST") or environment.get("SWANLAB_WEB_HOST"),
    )
    key, _, host = find_key(settings, environment, Path(record.cwd))
    if not key:
        raise MhsftError(
            "no SwanLab API key for the upload (SWANLAB_API_KEY is not in .env or the environment, and there is no "
            "`swanlab login`). Put SWANLAB_API_KEY=... in .env on this machine (chmod 600), then sync again.",
            PREFLIGHT,
        )
    return settings, key, host


def sync_run(record: RunRecord, environment: Environment, timeout: float = TIMEOUT_S) -> uploads.Upload:
    """Upload what is new in the run's local log; the state written to `.mhsft/uploads/`, or an MhsftError."""
    folders = log_folders(record)
    settings, key, host = target(record, environment)
    pitfalls = [c for c in settings_pitfalls(environment, Path(record.cwd)) if c.status == FAIL]
    if pitfalls:
        raise MhsftError(f"sync of run {record.id}: {pitfalls[0].detail}. Fix: {pitfalls[0].fix}.", PREFLIGHT)
    ended = record.shown_status not in status.ACTIVE  # before the upload reads the log: nothing comes after it
    web = web_host(host, settings.web_host)
    args = {
        "key": key,
        "host": host,
        "web_host": web,
        "workspace": settings.workspace,
        "project": settings.project,
        "experiment": settings.exp_name,
        "run_id": record.swanlab_run_id,
        "run_dirs": [str(f) for f in folders],
    }
    outcome = isolated.run("mhsft.sync.upload:upload", args, timeout, child_env(environment))
    failed = [c for c in outcome.checks if c.status == FAIL]
    if failed and failed[0].name in ("swanlab server", "swanlab key"):  # before anything was sent
        raise MhsftError(
            f"sync of run {record.id} failed ({failed[0].name}): {failed[0].detail}. Fix: {failed[0].fix}. Nothing "
            "was uploaded.",
            PREFLIGHT,
        )
    if "uploaded_step" not in outcome.facts:
        stopped = isolated.failure("swanlab upload", outcome, timeout, host, "")
        detail = next((c.detail for c in [*failed, stopped] if c), outcome.stderr_tail or "no answer")
        raise MhsftError(
            f"sync of run {record.id} did not finish ({detail}). What reached SwanLab stays there: `mhsft sync "
            f"{record.id}` again sends only the rest (raise --timeout for a long log or a slow link).",
            INCOMPLETE,
        )
    url = run_url(web, outcome.facts["workspace"], settings.project, record.swanlab_run_id)  # type: ignore[arg-type]
    local, uploaded = int(outcome.facts["local_step"]), int(outcome.facts["uploaded_step"])
    upload = uploads.Upload(local, uploaded, now(), url=url, run_ended=ended)
    uploads.write(record, upload)
    if not upload.complete:
        raise MhsftError(
            f"sync of run {record.id}: SwanLab holds steps up to {uploaded}, the local log up to {local}. Run "
            f"`mhsft sync {record.id}` again; it sends only what is missing.",
            INCOMPLETE,
        )
    return upload


def pending(cwd: Path) -> list[RunRecord]:
    """Offline runs whose upload is not known to be whole: never synced, or synced before the run ended."""
    found = []
    for record in load_all(cwd):
        if record.command == "sft" and record.extra.get("swanlab_offline"):
            upload = uploads.read(record)
            if upload is None or not (upload.complete and upload.run_ended):
                found.append(record)
    return found


def sync(cwd: Path, run_id: str | None, every: bool, environment: Environment, timeout: float) -> int:
    """`mhsft sync`: one run (default: the newest), or with `every` each offline run not yet wholly uploaded."""
    if every and run_id:
        raise MhsftError("give a RUN or --all, not both.", USAGE)
    records = pending(cwd) if every else [record_for(cwd, run_id)]
    if every and not records:
        ui.info("every offline run is uploaded (nothing to sync).")
    code = 0
    for record in records:
        try:
            upload = sync_run(record, environment, timeout)
        except MhsftError as exc:
            if not every:
                raise
            ui.error(exc.message)
            code = max(code, exc.exit_code)
            continue
        ui.info(f"run {record.id}: {upload.describe()}: {upload.url}")
    return code
