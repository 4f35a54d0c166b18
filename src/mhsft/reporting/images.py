"""The loss curves as PNG: swift's own (TensorBoard logging writes `images/`), else drawn from logging.jsonl."""

from __future__ import annotations

import io
from pathlib import Path

from mhsft.reporting.document import Image
from mhsft.view.history import History

SWIFT_IMAGES = (("train_loss.png", "train loss"), ("eval_loss.png", "eval loss"))


def swift_images(run_dir: Path) -> list[Image]:
    """swift's `images/train_loss.png` and `images/eval_loss.png`, those that exist."""
    found = []
    for name, alt in SWIFT_IMAGES:
        path = run_dir / "images" / name
        if path.is_file():
            found.append(Image(name, f"{alt} (swift's plot)", path.read_bytes()))
    return found


def drawn(history: History) -> list[Image]:
    """Train and eval loss against the step, drawn with matplotlib (Agg, no display); none when nothing was logged.
    nan/inf points are left out (the report says where they are)."""
    history = history.finite()
    if not history.train and not history.eval:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6.4, 3.6), dpi=100)
    for series, label, style in ((history.train, "train loss", "-"), (history.eval, "eval loss", "o--")):
        if series:
            steps, values = zip(*series, strict=True)
            axes.plot(steps, values, style, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return [Image("loss.png", "train and eval loss (drawn from logging.jsonl)", buffer.getvalue())]


def curves(run_dir: Path | None, history: History) -> list[Image]:
    """swift's plots when it made them, else ours."""
    return (swift_images(run_dir) if run_dir else []) or drawn(history)
