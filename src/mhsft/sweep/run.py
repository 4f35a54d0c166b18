"""The trial loop: start trials (up to one per GPU slot), read each one's metric when it ends, and for
random/tpe tell Optuna and ask for the next. A signal stops it: running trials end as interrupted runs and no
new one starts; finished trials stay usable and `mhsft sweep resume ID` runs only what is missing."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import INTERRUPTED
from mhsft.sweep import prepare, search, trials
from mhsft.sweep.pool import Pool
from mhsft.sweep.space import label
from mhsft.sweep.store import Sweep, Trial


class _Next:
    """Which trial starts next: the given ones first (resume), then for random/tpe new ones from Optuna."""

    def __init__(self, sweep: Sweep, cwd: Path, environment: Environment, data_check: bool, again: list[int]):
        self.sweep, self.cwd, self.environment, self.data_check = sweep, cwd, environment, data_check
        self.queue = list(again)
        self.study = search.study(sweep, cwd) if sweep.method != "grid" else None
        self.space = self._space() if self.study is not None else None
        if self.study is not None:
            self._retire(again)

    def _space(self) -> Any:
        from mhsft.sweep.store import space_from

        return space_from(self.sweep.space)

    def _retire(self, numbers: list[int]) -> None:
        """Optuna trials of `numbers` still open (mhsft was killed) fail; each gets a new one with its values."""
        from optuna.trial import TrialState

        for number in numbers:
            trial = self.sweep.trials[number]
            if trial.optuna is not None and self.study.trials[trial.optuna].state == TrialState.RUNNING:
                search.tell(self.study, trial.optuna, None)
            trial.optuna = search.again(self.study, self.space, trial.values)

    def __call__(self) -> Trial | None:
        if self.queue:
            return self.sweep.trials[self.queue.pop(0)]
        if self.study is None or len(self.sweep.trials) >= self.sweep.planned:
            return None
        optuna_number, values = search.ask(self.study, self.space)
        recipe = prepare.trial_recipe(self.sweep.recipe, [], values, self.environment)
        signature = prepare.gate_signature(recipe, self.cwd) if self.data_check else ""
        if self.data_check and signature not in self.sweep.gates:  # not expected: data-affecting keys are lists
            self.sweep.gates[signature] = prepare.gate_once(recipe, label(values), self.environment, self.cwd)
        trial = Trial(len(self.sweep.trials), values, label(values), signature, optuna_number)
        self.sweep.trials.append(trial)
        self.sweep.save(self.cwd)
        return trial


def run(
    sweep: Sweep,
    cwd: Path,
    slots: list[str | None],
    environment: Environment,
    data_check: bool,
    again: list[int] | None = None,
) -> int:
    """Run the sweep's trials to the end (or a signal); returns 0, the first failed trial's exit code, or the
    signal's code."""
    pick = _Next(sweep, cwd, environment, data_check, list(range(len(sweep.trials))) if again is None else again)
    pool, free, placed = Pool(), list(slots), {}
    failed = 0
    with pool.forwarding():
        while True:
            while free and pool.stopped is None and (trial := pick()) is not None:
                slot = free.pop(0)
                placed[trial.number] = slot
                argv = [sweep.id, str(trial.number), *(["--gpus", slot] if slot else [])]
                log = sweep.folder(cwd) / f"trial-{trial.number}.log" if len(slots) > 1 else None
                where = f" on GPU {slot}" if slot else ""
                ui.info(f"sweep {sweep.id}: trial {trial.number} {trial.name} starting{where}")
                if log:
                    ui.info(f"  its output: {log.relative_to(cwd)}")
                pool.start(trial.number, argv, cwd, log)
            if not pool.running:
                break
            number, code = pool.next_end()
            free.append(placed.pop(number))
            failed = failed or code
            _ended(sweep, cwd, pick.study, sweep.trials[number], code)
    sweep.status = "interrupted" if pool.stopped else ("failed" if failed else "finished")
    sweep.save(cwd)
    from mhsft.sweep.show import show

    show(cwd, sweep.id)
    if pool.stopped is not None:
        ui.info(f"sweep {sweep.id} stopped; finished trials are kept. Run the rest: mhsft sweep resume {sweep.id}")
        return INTERRUPTED if pool.stopped == signal.SIGINT else 128 + pool.stopped
    return failed


def _ended(sweep: Sweep, cwd: Path, study: Any, trial: Trial, code: int) -> None:
    """Report a trial's end, and tell Optuna its metric (none: a failure)."""
    record = trials.records(cwd, sweep.id).get(trial.number)
    value = trials.metric(record, sweep.metric)
    if study is not None and trial.optuna is not None:
        search.tell(study, trial.optuna, value)
    outcome = f"{sweep.metric} {value:.4g}" if value is not None else f"exit {code}, no {sweep.metric}"
    ui.info(
        f"sweep {sweep.id}: trial {trial.number} {trial.name} {record.status if record else 'not started'} ({outcome})"
    )
