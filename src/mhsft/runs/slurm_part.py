"""A run record's Slurm part (`extra["slurm"]` in the file): the job, what its node runners need, its attempts.

`mhsft submit` writes it; the node runner, squeue (runs/slurm_state) and `mhsft cancel` change `state`, Slurm's
word for the job, and the record's status follows from it (`RunRecord.set_slurm_state`). Keys a newer mhsft
wrote are kept in `unknown` and written back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mhsft.runs import fields


@dataclass
class SlurmPart:
    """What a record knows of its Slurm job."""

    job_id: str | None = None
    job_name: str | None = None
    output: str | None = None  # the [slurm] output pattern (%j, %x, %u, %A, %%)
    state: str | None = None  # Slurm's word (squeue %T), or mhsft's SUBMITTING / FORGOTTEN (runs/status)
    nodes: str | None = None  # the node list, once the job runs
    nodes_requested: int | None = None
    gpus_per_node: int | None = None
    requeue: bool = False
    script: str | None = None
    recipe: str | None = None  # the recipe frozen at submission, which the nodes run
    env_file: str | None = None
    preexisting: list[str] = field(default_factory=list)  # vN folders of output_dir at submission
    cached: dict[str, Any] | None = None  # the dataset gate's cached_dataset arguments
    restarts: int = 0
    started_at: str | None = None
    interrupted_by: str | None = None
    attempts: dict[str, dict[str, str | None]] = field(default_factory=dict)  # by number: run_dir, resume_from
    unknown: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlurmPart:
        """The part as a record file holds it; ValueError naming a key of the wrong type."""
        known, unknown = fields.split(cls, data, "extra.slurm.")
        return cls(**known, unknown=unknown)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data.pop("unknown"), **data}
