"""The loss curve drawn in the terminal with plotext (imported here only, when a curve is drawn)."""

from __future__ import annotations

import os
import sys

from mhsft.view.history import History

POINTS_PER_COLUMN = 2  # plotext draws a line with half-character blocks: two points a column are all it shows


def color_wanted() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def downsample(series: list[tuple[int, float]], buckets: int) -> list[tuple[int, float]]:
    """At most 2 x `buckets` points of a series in step order: the lowest and highest of each run of points, so
    a spike or a drop still shows (drawing 100k points costs seconds and shows no more)."""
    if len(series) <= 2 * buckets:
        return series
    size = len(series) / buckets
    out: list[tuple[int, float]] = []
    for b in range(buckets):
        part = series[round(b * size) : round((b + 1) * size)]
        low = min(part, key=lambda point: point[1])
        high = max(part, key=lambda point: point[1])
        out += sorted({low, high})
    return out


def draw(history: History, width: int = 72, height: int = 14, color: bool | None = None) -> str:
    """Train loss (and eval loss where logged) against the step, as text; empty when nothing was logged."""
    if not history.train and not history.eval:
        return ""
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.plot_size(width, height)
    names = []
    buckets = width * POINTS_PER_COLUMN
    if history.train:
        steps, values = zip(*downsample(history.train, buckets), strict=True)
        figure.draw(figure.signal(list(steps), list(values)).lines())
        names.append("train loss: line")
    if history.eval:
        steps, values = zip(*downsample(history.eval, buckets), strict=True)
        figure.draw(figure.signal(list(steps), list(values), marker="x"))
        names.append("eval loss: x")
    figure.title(", ".join(names))  # a legend box would sit on the curve's falling start
    figure.label("step")
    text = figure.build().string(colorless=not (color_wanted() if color is None else color))
    figure.clear()
    return text.rstrip()
