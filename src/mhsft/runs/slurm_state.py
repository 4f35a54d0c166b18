"""A Slurm run's live state: the Slurm part of its record, refreshed from squeue whenever it is read."""

from __future__ import annotations

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.process import slurm as client
from mhsft.runs import status, store
from mhsft.runs.records import RunRecord, now

_warned: set[str] = set()


def refresh(records: list[RunRecord]) -> list[RunRecord]:
    """`records` with each queued/running Slurm run updated from squeue (one call for all) and saved when it
    changed; a state the job wrote itself meanwhile (its outcome) wins over squeue's."""
    live = [r for r in records if r.status in status.ACTIVE and r.slurm is not None and r.slurm.job_id]
    if not live:
        return records
    try:
        known = client.jobs(str(r.slurm.job_id) for r in live)  # type: ignore[union-attr]
    except MhsftError as exc:  # Slurm did not answer: say so, keep what the records say
        if exc.message not in _warned:
            _warned.add(exc.message)
            ui.warn(f"{exc.message} The state of {len(live)} Slurm run(s) is shown as last recorded.")
        return records
    if known is None:  # no squeue here: keep what the records say
        return records
    fresh = {}
    for record in live:
        job = known.get(str(record.slurm.job_id))  # type: ignore[union-attr]
        state = job.state if job else status.FORGOTTEN
        nodes = (job.nodes if job and job.nodes and job.nodes != "(null)" else None) or record.slurm.nodes  # type: ignore[union-attr]
        if (status.of_slurm(state), nodes) == (record.status, record.slurm.nodes):  # type: ignore[union-attr]
            continue

        def change(found: RunRecord, state: str = state, nodes: str | None = nodes) -> bool:
            if found.status not in status.ACTIVE or found.slurm is None:  # the job wrote its outcome: it wins
                return False
            found.set_slurm_state(state)
            found.slurm.nodes = nodes
            if found.status not in status.ACTIVE and not found.ended_at:
                found.ended_at = now()
            return True

        try:
            fresh[record.id] = store.update(record.path, change)
        except MhsftError as exc:  # reading must not fail because the folder is read-only
            ui.warn(exc.message)
            change(record)
    return [fresh.get(r.id, r) for r in records]
