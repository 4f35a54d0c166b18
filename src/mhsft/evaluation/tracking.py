"""The scores logged to the training run's own SwanLab experiment (resumed by id in a bounded child), so its
curves and its benchmark numbers sit on one page: `eval/<benchmark>/base|finetuned|delta`."""

from __future__ import annotations

from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.process import isolated
from mhsft.runs.records import RunRecord


def scalars(rows: list[dict[str, Any]]) -> dict[str, float]:
    """`eval/<benchmark>/<base|finetuned|delta>` -> value for every score there is."""
    return {
        f"eval/{r['benchmark']}/{column}": float(r[column])
        for r in rows
        for column in ("base", "finetuned", "delta")
        if r.get(column) is not None
    }


def log_scores(args: dict[str, Any], emit: isolated.Emit) -> None:
    """Child side: resume the run and log the scores once."""
    from mhsft.reporting.to_swanlab import resume

    swanlab = resume(args, emit)
    swanlab.log(args["scores"])
    swanlab.finish()
    emit("check", {"name": "swanlab eval", "status": "ok", "detail": f"{len(args['scores'])} scores"})


def log(record: RunRecord, environment: Environment, rows: list[dict[str, Any]]) -> None:
    """Log the scores to the run's SwanLab experiment; a warning (never a failure) when that cannot be done."""
    from mhsft.reporting.to_swanlab import send

    if not record.swanlab_run_id:
        return
    try:
        where = send(record, environment, "mhsft.evaluation.tracking:log_scores", {"scores": scalars(rows)}, "eval")
    except MhsftError as exc:
        ui.warn(f"{exc.message} The scores are in the run record.")
        return
    ui.info(f"SwanLab: the scores are logged as eval/<benchmark>/... of run {record.swanlab_run_id} ({where})")
