"""The follower `mhsft submit` starts beside a Slurm job whose nodes track SwanLab locally: it uploads what is new
every minute while the job runs and once more when it has ended, then exits.

`python -m mhsft.sync.follower RUN_ID [ENV_FILE]` runs detached (its own session, output in
`.mhsft/slurm/<run>.follower.log`), with no secret in its environment: it reads the key from `.env` itself, like
`mhsft sync`. If it dies, or the machine reboots, `mhsft sync RUN` catches up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from mhsft import ui
from mhsft.environment import without_secrets
from mhsft.errors import USAGE, MhsftError
from mhsft.launch import environment_for
from mhsft.runs import status
from mhsft.runs.records import RunRecord
from mhsft.runs.store import load_all
from mhsft.sync.command import sync_run

INTERVAL_S = float(os.environ.get("MHSFT_SYNC_INTERVAL") or 60)  # between uploads while the job runs
POLL_S = 2.0  # how often the job's end is looked for
FINAL_TRIES = 3  # uploads tried after the job has ended before giving up (then `mhsft sync` is the way)


def start(record: RunRecord, env_file: Path | None) -> dict[str, object]:
    """Start the follower of `record` detached; what the record keeps of it (pid, host, log)."""
    log = Path(record.cwd) / ".mhsft" / "slurm" / f"{record.id}.follower.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "mhsft.sync.follower",
        record.id,
        *([str(Path(env_file).absolute())] if env_file else []),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=record.cwd,
            env=without_secrets(dict(os.environ)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return {"pid": proc.pid, "host": socket.gethostname(), "log": str(log), "interval_s": INTERVAL_S}


def current(cwd: Path, run_id: str) -> RunRecord:
    """The record as it is now, its Slurm state refreshed from Slurm."""
    return next(r for r in load_all(cwd) if r.id == run_id)


def follow(cwd: Path, run_id: str, env_file: Path | None) -> int:
    """Upload every INTERVAL_S while the run is active, then once more after it ended; the exit code."""
    environment = environment_for(env_file)
    last, tries = float("-inf"), 0
    while True:
        record = current(cwd, run_id)
        ended = record.shown_status not in status.ACTIVE
        if ended or time.monotonic() - last >= INTERVAL_S:
            last = time.monotonic()
            try:
                upload = sync_run(record, environment)
                ui.info(f"run {run_id}: {upload.describe()}")
                if ended:
                    return 0
            except MhsftError as exc:
                if exc.exit_code == USAGE and not ended:  # no log folder yet: swift has not reached its first step
                    continue
                ui.warn(exc.message)
                tries += ended
                if tries >= FINAL_TRIES:
                    ui.error(
                        f"run {run_id}: the upload after the job's end failed {tries} times; `mhsft sync {run_id}` "
                        "tries again."
                    )
                    return exc.exit_code
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        ui.error("usage: python -m mhsft.sync.follower RUN_ID [ENV_FILE] (`mhsft submit` starts it)")
        return 2
    return follow(Path.cwd(), argv[0], Path(argv[1]) if len(argv) == 2 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
