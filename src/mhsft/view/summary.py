"""The short summary `mhsft train` prints when swift has finished."""

from __future__ import annotations

from mhsft import ui
from mhsft.runs.records import RunRecord
from mhsft.view import curve, history, show


def after_train(record: RunRecord) -> None:
    """Final loss, a small curve, the newest checkpoint, the SwanLab link and the next commands (on stderr)."""
    info = show.details(record)
    train, evals = info["loss"]["train"], info["loss"]["eval"]
    lines = []
    if train:
        first, last = train[0], train[-1]
        line = f"loss {first[1]:.4f} (step {first[0]}) -> {last[1]:.4f} (step {last[0]})"
        if evals:
            line += f", eval loss {evals[-1][1]:.4f} (step {evals[-1][0]})"
        lines.append(line)
        lines.append(curve.draw(history.History(train=train, eval=evals), width=60, height=11, color=False))
    lines += [f"warning: {w}" for w in info["warnings"]]
    if info["last_checkpoint"]:
        lines.append(f"newest checkpoint  {info['last_checkpoint']}")
    if info["best_checkpoint"] and info["best_checkpoint"] != info["last_checkpoint"]:
        lines.append(f"best checkpoint    {info['best_checkpoint']}")
    if (swanlab := show.swanlab_line(info["swanlab"])) is not None:
        lines.append(f"SwanLab            {swanlab}")
    if commands := show.next_commands(record):
        lines.append("next: " + "  |  ".join([*commands[:2], f"mhsft runs show {record.id}"]))
    if lines:
        ui.info("\n" + "\n".join(lines))
