"""Loss curves drawn in the terminal with plotext (imported here only, when a curve is drawn)."""

from __future__ import annotations

import os
import sys
from typing import Any

from mhsft.view.history import History

POINTS_PER_COLUMN = 2  # plotext draws a line with half-character blocks: two points a column are all it shows
Points = list[tuple[int, float]]


def color_wanted() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def downsample(series: Points, buckets: int) -> Points:
    """At most 2 x `buckets` points of a series in step order: the lowest and highest of each run of points, so
    a spike or a drop still shows (drawing 100k points costs seconds and shows no more)."""
    if len(series) <= 2 * buckets:
        return series
    size = len(series) / buckets
    out: Points = []
    for b in range(buckets):
        part = series[round(b * size) : round((b + 1) * size)]
        low = min(part, key=lambda point: point[1])
        high = max(part, key=lambda point: point[1])
        out += sorted({low, high})
    return out


def _figure(width: int, height: int) -> Any:
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.plot_size(width, height)
    return figure


def _text(figure: Any, title: str, color: bool | None) -> str:
    figure.title(title)  # a legend box would sit on the curve's falling start
    figure.label("step")
    text = figure.build().string(colorless=not (color_wanted() if color is None else color))
    figure.clear()
    return text.rstrip()


def draw(history: History, width: int = 72, height: int = 14, color: bool | None = None) -> str:
    """Train loss (and eval loss where logged) against the step, as text; empty when nothing was logged.
    nan/inf points are left out (`History.divergence` says where they are)."""
    history = history.finite()
    if not history.train and not history.eval:
        return ""
    figure = _figure(width, height)
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
    return _text(figure, ", ".join(names), color)


def draw_many(
    series: dict[str, Points], title: str, width: int = 72, height: int = 16, color: bool | None = None
) -> str:
    """Several runs' curves in one plot, each drawn with its key (one character) as marker; empty when none
    logged anything."""
    drawn = {marker: points for marker, points in series.items() if points}
    if not drawn:
        return ""
    figure = _figure(width, height)
    for marker, points in drawn.items():
        steps, values = zip(*downsample(points, width * POINTS_PER_COLUMN), strict=True)
        figure.draw(figure.signal(list(steps), list(values), marker=marker))
    return _text(figure, title, color)
