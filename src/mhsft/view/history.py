"""What swift logged for a training run: `logging.jsonl` (train and eval rows, the final line) and checkpoints."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.runs import checkpoints

_PROGRESS_KEYS = ("global_step/max_steps", "elapsed_time", "remaining_time", "train_speed(s/it)", "epoch")


@dataclass
class History:
    """Loss series `[(step, value)]`, the final metrics, progress, and the best/last checkpoints swift named."""

    train: list[tuple[int, float]] = field(default_factory=list)
    eval: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    best: str | None = None
    last: str | None = None

    def loss_at(self, series: str, step: int) -> float | None:
        """The value logged at `step` in `train` or `eval` (the newest at or before it), or None."""
        found = [v for s, v in getattr(self, series) if s <= step]
        return found[-1] if found else None


def rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a jsonl file; a line being written (or garbled) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _step(row: dict[str, Any]) -> tuple[int, int] | None:
    """(step, max_steps) from swift's `global_step/max_steps` ("12/20")."""
    try:
        done, total = str(row["global_step/max_steps"]).split("/")
        return int(done), int(total)
    except (KeyError, ValueError):
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read(run_dir: Path) -> History:
    """Parse `run_dir/logging.jsonl` (a run still going has only some of it)."""
    history = History()
    for row in rows(run_dir / "logging.jsonl"):
        step = _step(row)
        if step is not None:
            history.progress = {"step": step[0], "max_steps": step[1]} | {
                k: row[k] for k in ("elapsed_time", "remaining_time") if k in row
            }
        if step is not None and (loss := _number(row.get("loss"))) is not None:
            history.train.append((step[0], loss))
        elif step is not None and (loss := _number(row.get("eval_loss"))) is not None:
            history.eval.append((step[0], loss))
            history.metrics |= {k: v for k, v in row.items() if k.startswith("eval_")}
        elif "train_runtime" in row or "train_loss" in row:
            history.metrics |= {k: v for k, v in row.items() if k not in _PROGRESS_KEYS}
        if "last_model_checkpoint" in row or "best_model_checkpoint" in row:
            history.last = row.get("last_model_checkpoint") or history.last
            history.best = row.get("best_model_checkpoint") or history.best
            history.metrics |= {k: row[k] for k in ("best_metric", "global_step") if k in row}
    if history.train:
        history.metrics["last_loss"] = history.train[-1][1]
    return history


def checkpoint_rows(run_dir: Path, history: History) -> list[dict[str, Any]]:
    """Each complete checkpoint with its step, the train/eval loss logged at that step, and best/last marks."""
    best = checkpoints.best(run_dir)
    last = checkpoints.latest(run_dir)
    rows = []
    for path in checkpoints.checkpoints(run_dir):
        step = int(path.name.split("-")[1])
        rows.append(
            {
                "path": str(path),
                "step": step,
                "train_loss": history.loss_at("train", step),
                "eval_loss": history.loss_at("eval", step) if any(s == step for s, _ in history.eval) else None,
                "best": best is not None and path.resolve() == best.resolve(),
                "last": last is not None and path.resolve() == last.resolve(),
            }
        )
    return rows
