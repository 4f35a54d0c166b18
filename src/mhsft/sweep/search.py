"""Random and TPE search with Optuna's ask-and-tell interface, its study kept in a journal file beside
sweep.json (a plain append-only file: it works on the shared disk of a Slurm cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mhsft.sweep.space import Space
from mhsft.sweep.store import Sweep

SIGNIFICANT = 3  # digits kept of a sampled float (lr 3.16e-4, not 3.1622776e-4)


def study(sweep: Sweep, cwd: Path) -> Any:
    """The sweep's Optuna study, created on first use, loaded from its journal afterwards."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    sweep.folder(cwd).mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=sweep.id,
        storage=JournalStorage(JournalFileBackend(str(sweep.journal(cwd)))),
        sampler=samplers[sweep.method](seed=sweep.seed),
        direction=sweep.direction,
        load_if_exists=True,
    )


def _distributions(space: Space) -> dict[str, Any]:
    """A list is a choice of its items (by position: items may be lists), a range an int or float interval."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {k: CategoricalDistribution(list(range(len(v)))) for k, v in space.grid.items()}
    for key, r in space.ranges.items():
        kind = IntDistribution if r.integer else FloatDistribution
        found[key] = kind(r.low, r.high, log=r.log)
    return found


def ask(study: Any, space: Space) -> tuple[int, dict[str, Any]]:
    """The next trial's Optuna number and values, in the space's key order."""
    trial = study.ask(_distributions(space))
    values = {}
    for key in space.keys:
        value = trial.params[key]
        if key in space.grid:
            value = space.grid[key][value]
        elif isinstance(value, float):
            value = float(f"{value:.{SIGNIFICANT}g}")
        values[key] = value
    return trial.number, values


def again(study: Any, space: Space, values: dict[str, Any]) -> int:
    """A new Optuna trial with the given values (a trial that did not finish, run again on resume)."""
    params = {k: space.grid[k].index(v) if k in space.grid else v for k, v in values.items()}
    study.enqueue_trial(params)
    return study.ask(_distributions(space)).number


def tell(study: Any, number: int, value: float | None) -> None:
    """The trial's result; None: it failed or logged no metric."""
    from optuna.trial import TrialState

    if value is None:
        study.tell(number, state=TrialState.FAIL)
    else:
        study.tell(number, value)
