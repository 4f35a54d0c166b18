"""In `isolated`'s child: upload a run's local SwanLab log folders with the SDK's own sync, under one run id.

The server probe and the login go first with retries off, so that a rejected key or an unreachable host is an
answer in seconds. The experiment is created (or resumed) before the SDK's sync runs: the SDK marks an
experiment it creates itself from a log without an end as crashed, which a run still training is not. Then
`swanlab.sdk.sync` replays each `run-*` folder into the experiment with the run's id (a folder written after a
requeue adds to it); it first asks the server which steps it holds and sends only newer ones, so a repeated or
interrupted sync never sends a step twice. Last, the server's own summary says how far the upload is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mhsft.checks import OK, Check
from mhsft.preflight.swanlab import reached_and_logged_in
from mhsft.process import isolated


def local_step(run_dir: Path) -> int:
    """The highest step of a user scalar (not SwanLab's own system metrics) in a run folder's record log."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader
    from swanlab.sdk.internal.pkg.helper import is_system_key

    step = -1
    for path in run_dir.glob("run-*.swanlab"):
        reader = DataStoreReader()
        reader.open(path)
        try:
            for raw in reader:
                record = Record()
                record.ParseFromString(raw)
                if record.HasField("scalar") and not is_system_key(record.scalar.key):
                    step = max(step, record.scalar.step)
        finally:
            reader.close()
    return step


def ensure_experiment(workspace: str, project: str, name: str, run_id: str) -> None:
    """Create the experiment with the run's id (or resume it), as the SDK's own start does."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from swanlab.sdk.internal.core_python.api.experiment import create_or_resume_experiment
    from swanlab.sdk.internal.core_python.api.project import get_or_create_project

    data = get_or_create_project(username=workspace, name=project, public=False)
    create_or_resume_experiment(
        data["group"]["username"],
        data["name"],
        name=name,
        resume="allow",
        run_id=run_id,
        color="",
        description=None,
        job_type=None,
        group=None,
        tags=None,
        created_at=Timestamp(),
    )


def uploaded_step(workspace: str, project: str, run_id: str) -> int:
    """The highest user-scalar step the server holds for the experiment (its summary, as a resume reads it)."""
    from swanlab.sdk.internal.core_python import client
    from swanlab.sdk.internal.core_python.api.experiment import get_experiment_summary
    from swanlab.sdk.internal.pkg.helper import is_system_key

    project_id = client.get(f"/project/{workspace}/{project}").data["cuid"]
    created = client.get(f"/project/{workspace}/{project}/runs/{run_id}").data["createdAt"]
    summary = get_experiment_summary(project_id, run_id, created_at=created)
    steps = [s["step"] for s in summary.get("scalar") or [] if not is_system_key(s["key"])]
    return max(steps, default=-1)


def upload(args: dict[str, Any], emit: isolated.Emit) -> None:
    """Probe, log in, sync every folder of `args["run_dirs"]` in order, then report the local and uploaded steps."""
    key, host, run_id, project = args["key"], args["host"], args["run_id"], args["project"]
    if not reached_and_logged_in(args, emit):
        return
    from swanlab.sdk import Settings, sync
    from swanlab.sdk.internal.core_python import client

    workspace = args["workspace"] or client.username()
    emit("facts", {"workspace": workspace})
    target = {"workspace": workspace, "name": project}
    settings = Settings.model_validate(
        {"api_key": key, "api_host": host, "web_host": args["web_host"], "project": target, "run": {"id": run_id}}
    )
    emit("step", "the experiment's creation")
    ensure_experiment(workspace, project, args["experiment"], run_id)
    local = -1
    for run_dir in args["run_dirs"]:
        local = max(local, local_step(Path(run_dir)))  # counted before its sync: at least this much is sent
        emit("step", f"the upload of {run_dir}")
        sync(run_dir, settings=settings)
    emit("step", "reading the server's summary back")
    emit("facts", {"local_step": local, "uploaded_step": uploaded_step(workspace, project, run_id)})
    emit("check", Check("swanlab upload", OK, f"{len(args['run_dirs'])} log folder(s) synced").as_dict())
