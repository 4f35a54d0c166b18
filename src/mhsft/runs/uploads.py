"""How far a locally tracked run's upload to SwanLab is: one small JSON file per run in `.mhsft/uploads/`.

It is kept beside the record, not in it, because the follower writes it every minute while the Slurm job's
node runner writes the record: neither can overwrite what the other wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from mhsft.runs.records import RunRecord

UPLOADS_DIR = Path(".mhsft") / "uploads"


@dataclass
class Upload:
    """The last sync of a run: steps the local log held and the server holds, when, and the run's page."""

    local_step: int
    uploaded_step: int
    at: str
    url: str | None = None
    run_ended: bool = False  # the sync started after the run had ended: nothing more will come

    @property
    def complete(self) -> bool:
        return self.uploaded_step >= self.local_step

    def describe(self, now: datetime | None = None) -> str:
        """`uploaded to step 1200, 40 s ago` (and whether that is everything)."""
        ago = (now or datetime.now(timezone.utc)) - datetime.fromisoformat(self.at)
        seconds = max(0, int(ago.total_seconds()))
        when = f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"
        step = f"step {self.uploaded_step}" if self.uploaded_step >= 0 else "no step yet"
        done = ", all of it" if self.complete and self.run_ended else f" of {self.local_step} logged"
        return f"uploaded to {step}{done}, {when}"


def path_of(record: RunRecord) -> Path:
    return Path(record.cwd) / UPLOADS_DIR / f"{record.id}.json"


def read(record: RunRecord) -> Upload | None:
    """The run's last sync, or None when it was never synced (or the file is not one of ours)."""
    try:
        data = json.loads(path_of(record).read_text(encoding="utf-8"))
        return Upload(**data)
    except (OSError, ValueError, TypeError):
        return None


def write(record: RunRecord, upload: Upload) -> None:
    """Write atomically (a temp file renamed over the old one)."""
    target = path_of(record)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(upload), f, indent=2)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
