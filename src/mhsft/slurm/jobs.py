"""Slurm runs as records: their log, and cancelling them.

A Slurm run's record holds its Slurm part (runs/slurm_part): the job id, the log path pattern, the node list,
Slurm's own state word, and what the node runner needs. The job writes `running` and its outcome itself; while a
record says queued/running, every read asks squeue (runs/slurm_state).
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import IO

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.process import slurm as client
from mhsft.runs import status, store
from mhsft.runs.records import RunRecord, now
from mhsft.runs.slurm_part import SlurmPart

FOLLOW_POLL_S = 0.5
STATE_POLL_S = 3.0


def slurm_run(cwd: Path, run_id: str, what: str) -> tuple[RunRecord, SlurmPart]:
    """The record of Slurm run `run_id` and its Slurm part, or an error saying it is not one."""
    record = store.which_run(
        cwd,
        run_id,
        fits=lambda r: r.slurm is not None and bool(r.slurm.job_id),
        refusal=lambda r: (
            f"run {r.id} is not a Slurm run (it was started here with `mhsft {r.command}`), so it has no Slurm job "
            f"to {what}. `mhsft runs` lists the runs; Slurm runs come from `mhsft submit`."
        ),
    )
    return record, record.slurm  # type: ignore[return-value]


def log_path(record: RunRecord, slurm: SlurmPart) -> Path:
    """The job's output file: the [slurm] output pattern with %j, %A, %x, %u and %% filled in."""
    values = {"j": str(slurm.job_id), "A": str(slurm.job_id), "x": slurm.job_name or "", "u": getpass.getuser()}
    parts = (slurm.output or "").split("%%")
    for key, value in values.items():
        parts = [p.replace(f"%{key}", value) for p in parts]
    return Path(record.cwd) / "%".join(parts)


def _copy(stream: IO[bytes], out: IO[str]) -> bool:
    """Copy what is new in `stream` to `out`, redacted, whole lines only; True when something was copied."""
    data = stream.read()
    if not data:
        return False
    cut = data.rfind(b"\n") + 1
    if 0 < cut < len(data):
        stream.seek(cut - len(data), 1)
        data = data[:cut]
    out.write(ui.clean(data.decode("utf-8", errors="replace")))
    out.flush()
    return True


def logs(cwd: Path, run_id: str, follow: bool) -> int:
    """Print (or, with `follow`, keep printing until the job ends) a Slurm run's output."""
    record, slurm = slurm_run(cwd, run_id, "show the log of")
    path = log_path(record, slurm)
    if not follow:
        if not path.is_file():
            return _no_log(record, path)
        sys.stdout.write(ui.clean(path.read_bytes().decode("utf-8", errors="replace")))
        return 0
    ui.info(f"following {path} (job {slurm.job_id}, {record.status}); Ctrl-C stops following, not the job")
    stream, checked = None, 0.0
    try:
        while True:
            if stream is None and path.is_file():
                stream = path.open("rb")
            copied = stream is not None and _copy(stream, sys.stdout)
            if not copied and time.monotonic() - checked > STATE_POLL_S:
                checked = time.monotonic()
                record = store.find(cwd, record.id)
                if record.status not in status.ACTIVE:
                    if stream is not None:
                        _copy(stream, sys.stdout)
                    ui.info(f"run {record.id}: {record.status} (job {slurm.job_id})")
                    return 0
            if not copied:
                time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return 130
    finally:
        if stream is not None:
            stream.close()


def _no_log(record: RunRecord, path: Path) -> int:
    if record.status == status.QUEUED:
        ui.info(f"run {record.id} is still queued: no output yet ({path} appears when the job starts).")
        return 0
    raise MhsftError(f"the log of run {record.id} ({path}) does not exist (status {record.status}).", exit_code=1)


def cancel(cwd: Path, run_id: str) -> None:
    """`scancel` a queued or running Slurm run and record it as cancelled."""
    record, slurm = slurm_run(cwd, run_id, "cancel")
    if record.status not in status.ACTIVE:
        raise MhsftError(
            f"run {record.id} (job {slurm.job_id}) has already ended ({record.status}): there is nothing to cancel."
        )
    before = (slurm.state, record.status, record.ended_at)

    def cancelled(found: RunRecord) -> bool:
        found.set_slurm_state("CANCELLED")
        found.ended_at = now()
        return True

    store.update(record.path, cancelled)  # before scancel, so the job's own last write cannot make it `running`
    try:
        client.cancel(str(slurm.job_id))
    except MhsftError:

        def restored(found: RunRecord) -> bool:
            found.slurm.state, found.status, found.ended_at = before  # type: ignore[union-attr]
            return True

        store.update(record.path, restored)
        raise
    ui.info(f"run {record.id}: cancelled (scancel {slurm.job_id})")
