"""A run's status words, and how Slurm's job states and a child's ending map to them.

A run is `queued` (Slurm only) or `running` until it ends `succeeded`, `failed`, `interrupted` (a signal) or
`cancelled` (`mhsft cancel`); `unknown` is a Slurm job that Slurm forgot without writing its outcome, and
`abandoned` (shown, never written) a `running` record whose mhsft process is gone. Older records call a good
Slurm run `completed`: it reads as `succeeded`.
"""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
UNKNOWN = "unknown"
ABANDONED = "abandoned"
ACTIVE = (QUEUED, RUNNING)  # a run that is not over yet
OLD_SPELLINGS = {"completed": SUCCEEDED}

# Slurm's job states (squeue %T); anything else is a failure
SLURM_QUEUED = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED")
SLURM_RUNNING = ("CONFIGURING", "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED")
SUBMITTING = "SUBMITTING"  # mhsft's own: the record is written, sbatch has not answered yet
FORGOTTEN = "not known to Slurm any more"  # mhsft's own: squeue no longer lists the job
_FROM_SLURM = {"COMPLETED": SUCCEEDED, "CANCELLED": CANCELLED, SUBMITTING: QUEUED, FORGOTTEN: UNKNOWN}
_FROM_SLURM |= dict.fromkeys(SLURM_QUEUED, QUEUED) | dict.fromkeys(SLURM_RUNNING, RUNNING)


def read(word: str) -> str:
    """A status as written in a record, in today's words."""
    return OLD_SPELLINGS.get(word, word)


def of_slurm(state: str) -> str:
    """The status for a Slurm state (`CANCELLED by 0` and `RUNNING+` style suffixes allowed)."""
    if state in _FROM_SLURM:
        return _FROM_SLURM[state]
    word = state.split()[0].rstrip("+") if state.strip() else ""
    return _FROM_SLURM.get(word, FAILED)


def of_exit(exit_code: int, signal: int | None) -> str:
    """The status of a child that exited with `exit_code`, or was interrupted by `signal`."""
    if signal is not None:
        return INTERRUPTED
    return SUCCEEDED if exit_code == 0 else FAILED
