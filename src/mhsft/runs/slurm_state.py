"""A Slurm run's live state: the Slurm part of its record, refreshed from squeue whenever it is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.process import slurm as client
from mhsft.runs.records import RunRecord, now


def info(record: RunRecord) -> dict[str, Any] | None:
    """The Slurm part of a record, or None for a local run."""
    found = record.extra.get("slurm")
    return found if isinstance(found, dict) else None


def refresh(records: list[RunRecord]) -> list[RunRecord]:
    """Update queued/running Slurm records from squeue (one call for all), saving those that changed."""
    live = [r for r in records if r.status in client.ACTIVE and (info(r) or {}).get("job_id")]
    known = client.jobs(str(info(r)["job_id"]) for r in live) if live else None  # type: ignore[index]
    if known is None:  # nothing to ask, or Slurm cannot be asked: keep what the records say
        return records
    for record in live:
        slurm = info(record)
        job = known.get(str(slurm["job_id"]))  # type: ignore[index]
        status = job.status if job else "unknown"
        state = job.state if job else "not known to Slurm any more"
        nodes = (job.nodes if job and job.nodes and job.nodes != "(null)" else None) or slurm.get("nodes")
        if (status, nodes) == (record.status, slurm.get("nodes")):
            continue
        if _written_outcome(record.path):  # the job wrote its outcome since we read the record: it wins
            continue
        record.status = status
        slurm |= {"state": state, "nodes": nodes}
        if status not in client.ACTIVE and not record.ended_at:
            record.ended_at = now()
        try:
            record.save()
        except MhsftError as exc:  # reading must not fail because the folder is read-only
            ui.warn(exc.message)
    return records


def _written_outcome(path: Path) -> bool:
    """Whether the record file on disk already holds a final status."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") not in client.ACTIVE
    except (OSError, ValueError, AttributeError):
        return False
