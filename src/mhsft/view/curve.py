"""The loss curve drawn in the terminal with plotext (imported here only, when a curve is drawn)."""

from __future__ import annotations

import os
import sys

from mhsft.view.history import History


def color_wanted() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def draw(history: History, width: int = 72, height: int = 14, color: bool | None = None) -> str:
    """Train loss (and eval loss where logged) against the step, as text; empty when nothing was logged."""
    if not history.train and not history.eval:
        return ""
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.plot_size(width, height)
    names = []
    if history.train:
        steps, values = zip(*history.train, strict=True)
        figure.draw(figure.signal(list(steps), list(values)).lines())
        names.append("train loss: line")
    if history.eval:
        steps, values = zip(*history.eval, strict=True)
        figure.draw(figure.signal(list(steps), list(values), marker="x"))
        names.append("eval loss: x")
    figure.title(", ".join(names))  # a legend box would sit on the curve's falling start
    figure.label("step")
    text = figure.build().string(colorless=not (color_wanted() if color is None else color))
    figure.clear()
    return text.rstrip()
