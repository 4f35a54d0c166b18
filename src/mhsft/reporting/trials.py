"""`mhsft report --sweep ID`: one report comparing a sweep's trials, best first: the settings that differ, the
metrics side by side, and every trial's loss curve overlaid in one image; report.md and report.html."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.errors import MhsftError
from mhsft.launch import environment_for
from mhsft.reporting import document
from mhsft.sweep import store, trials
from mhsft.sweep.show import rows
from mhsft.view import compare


def overlaid(named: list[tuple[str, list[tuple[int, float]]]], what: str) -> document.Image | None:
    """The curves of several runs in one PNG (matplotlib, Agg), one line each with its name in the legend."""
    drawn = [(name, points) for name, points in named if points]
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7.2, 4.0), dpi=100)
    for name, points in drawn:
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, "o-", label=name)
    axes.set_xlabel("step")
    axes.set_ylabel(what)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return document.Image("curves.png", f"{what} of every trial", buffer.getvalue())


def _blocks(sweep: store.Sweep, found: list[dict[str, Any]], cwd: Path) -> list[document.Block]:
    by_trial = trials.records(cwd, sweep.id)
    ran = [row for row in found if row["run"]]
    records = [by_trial[row["trial"]] for row in ran]
    names = [f"{row['trial']} {row['name']}{' (best)' if row['best'] else ''}" for row in ran]
    metric = [sweep.metric, *(f"{row['metric']:.6g}" if row["metric"] is not None else "-" for row in ran)]
    kind = "eval loss" if any(row["eval_curve"] for row in ran) else "train loss"
    image = overlaid(
        [(n, r["eval_curve"] if kind == "eval loss" else r["train_curve"]) for n, r in zip(names, ran, strict=True)],
        kind,
    )
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    blocks: list[document.Block] = [
        document.Heading(f"Sweep report: {sweep.id}", 1),
        document.Para(
            f"Written by mhsft report at {stamp}. {sweep.method} sweep, {len(ran)} of {sweep.planned} trial(s) run, "
            f"sorted by {sweep.metric} ({sweep.direction}); the recipe: {sweep.recipe}."
        ),
        document.Heading("Settings that differ"),
        document.Table(["setting", *names], compare.differences(records) if len(records) > 1 else []),
        document.Heading("Results side by side"),
        document.Table(["", *names], [metric, *compare.results(records)]),
    ]
    if image:
        blocks += [document.Heading("Loss curves"), image]
    return blocks


def sweep_report(sweep_id: str, out: Path | None, env_file: Path | None) -> int:
    """Write the sweep's report.md (with curves.png) and report.html; print where."""
    cwd = Path.cwd()
    environment = environment_for(env_file)
    sweep = store.load(cwd, sweep_id)
    found = rows(sweep, cwd)
    if not any(row["run"] for row in found):
        raise MhsftError(f"sweep {sweep.id} has no trial that has run yet; nothing to compare. `mhsft sweep show`")
    dest = out or sweep.folder(cwd) / "report"
    document.make_folder(dest)
    blocks = _blocks(sweep, found, cwd)
    for block in blocks:
        if isinstance(block, document.Image):
            (dest / block.name).write_bytes(block.png)
    (dest / "report.md").write_text(environment.redact(ui.clean(document.markdown(blocks))), encoding="utf-8")
    page = document.to_html(blocks, f"mhsft sweep report {sweep.id}")
    (dest / "report.html").write_text(environment.redact(ui.clean(page)), encoding="utf-8")
    ui.info(f"report: {dest / 'report.md'} and {dest / 'report.html'}")
    return 0
