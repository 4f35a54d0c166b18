"""`mhsft report --sweep ID` and `mhsft report RUN RUN...`: one report comparing training runs (a sweep's trials
best first): the settings that differ, the metrics side by side, every run's loss curve overlaid in one image,
and each run's answers to the same held-out prompts; report.md and report.html."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import environment_for
from mhsft.reporting import document, samples
from mhsft.reporting.command import own_folder, training_record
from mhsft.reporting.sections import answer
from mhsft.runs import checkpoints
from mhsft.runs.records import RunRecord
from mhsft.sweep import store, trials
from mhsft.sweep.show import rows
from mhsft.trained.target import Target, run_recipe
from mhsft.view import compare


@dataclass(frozen=True)
class Compared:
    """What a comparison report is about: the runs (in their order), a column name each, its words."""

    records: list[RunRecord]
    names: list[str]
    title: str
    intro: str
    first_rows: list[list[str]]  # above the results (a sweep's metric)
    dest: Path
    given: bool  # dest came from --out


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
    return document.Image("curves.png", f"{what} of every run", buffer.getvalue())


def _curves(compared: Compared) -> list[document.Block]:
    """The eval-loss curves overlaid (the train-loss ones when no run logged an eval loss)."""
    logged = [trials.logged(r) for r in compared.records]
    kind = "eval loss" if any(h.eval for h in logged) else "train loss"
    series = [h.finite().eval if kind == "eval loss" else h.finite().train for h in logged]
    image = overlaid(list(zip(compared.names, series, strict=True)), kind)
    return [document.Heading("Loss curves"), image] if image else []


def _answers(compared: Compared, environment: Environment, options: dict[str, Any]) -> list[document.Block]:
    """The same held-out prompts answered by each run's checkpoint (one `swift infer` per run), a column each."""
    blocks: list[document.Block] = [document.Heading("Sample answers to the same prompts")]
    if options["samples"] == 0:
        return [*blocks, document.Para("No sample answers: --samples 0.")]
    answering: list[tuple[str, RunRecord, Target]] = []
    unanswered = []
    for name, record in zip(compared.names, compared.records, strict=True):
        try:
            checkpoint = checkpoints.resolve(options["checkpoint"], Path.cwd(), record)
        except MhsftError:
            unanswered.append(f"{name} ({record.shown_status})")
            continue
        answering.append((name, record, Target(environment, run_recipe(record, environment), checkpoint, record)))
    if not answering:
        return [*blocks, document.Para(f"No sample answers: no run has a {options['checkpoint']} checkpoint.")]
    _, first, target = answering[0]
    try:
        files, source = samples.prompt_files(first, checkpoints.run_dir_of(first), options["prompts"])
    except MhsftError as exc:
        if options["prompts"] is not None:
            raise
        ui.warn(exc.message)  # the comparison stands without answers (a sweep report did before they came)
        return [*blocks, document.Para(f"No sample answers: {exc.message}")]
    settings, said = samples.generation(target, options)
    found = samples.each_run([(r.id, t) for _, r, t in answering], compared.dest, files, options["samples"], settings)
    text = (
        f"{len(found.prompts)} held-out prompts from {source} (run {first.id}), answered by the "
        f"{options['checkpoint']} checkpoint of each run through {said}."
    )
    if unanswered:
        text += f" Without a checkpoint, so not asked: {', '.join(unanswered)}."
    table = [
        [str(i), prompt, reference or "-", *(answer(a[i - 1]) for a in found.answers)]
        for i, (prompt, reference) in enumerate(zip(found.prompts, found.references, strict=True), 1)
    ]
    columns = ["#", "prompt", "reference", *(name for name, _, _ in answering)]
    return [*blocks, document.Para(text), document.Table(columns, table, css="side-by-side")]


def _write(compared: Compared, environment: Environment, options: dict[str, Any]) -> int:
    """Write the comparison's report.md (with curves.png) and report.html; print where."""
    records = compared.records
    own_folder(compared.dest, compared.given, options["overwrite"])
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    blocks: list[document.Block] = [
        document.Heading(compared.title, 1),
        document.Para(f"Written by mhsft report at {stamp}. {compared.intro}"),
        document.Heading("Settings that differ"),
        document.Table(["setting", *compared.names], compare.differences(records) if len(records) > 1 else []),
        document.Heading("Results side by side"),
        document.Table(["", *compared.names], [*compared.first_rows, *compare.results(records)]),
        *_curves(compared),
        *_answers(compared, environment, options),
    ]
    document.write(compared.dest, blocks, compared.title, environment.redact)
    ui.info(f"report: {compared.dest / 'report.md'} and {compared.dest / 'report.html'}")
    return 0


def _of_sweep(sweep_id: str, out: Path | None, cwd: Path) -> Compared:
    """A sweep's trials that have run, best first, named `N NAME` (and `(best)`)."""
    sweep = store.load(cwd, sweep_id)
    ran = [row for row in rows(sweep, cwd) if row["run"]]
    if not ran:
        raise MhsftError(f"sweep {sweep.id} has no trial that has run yet; nothing to compare. `mhsft sweep show`")
    by_trial = trials.records(cwd, sweep.id)
    return Compared(
        records=[by_trial[row["trial"]] for row in ran],
        names=[f"{row['trial']} {row['name']}{' (best)' if row['best'] else ''}" for row in ran],
        title=f"Sweep report: {sweep.id}",
        intro=(
            f"{sweep.method} sweep, {len(ran)} of {sweep.planned} trial(s) run, sorted by {sweep.metric} "
            f"({sweep.direction}); the recipe: {sweep.recipe}."
        ),
        first_rows=[[sweep.metric, *(f"{r['metric']:.6g}" if r["metric"] is not None else "-" for r in ran)]],
        dest=out or sweep.folder(cwd) / "report",
        given=out is not None,
    )


def _of_runs(run_ids: list[str], out: Path | None, cwd: Path) -> Compared:
    """The named training runs, in the order given; the same run twice is refused."""
    records = [training_record(cwd, run_id) for run_id in run_ids]
    ids = [r.id for r in records]
    if twice := next((i for n, i in enumerate(ids) if i in ids[:n]), None):
        raise MhsftError(
            f"run {twice} is named twice ({', '.join(run_ids)}); a comparison report needs two or more different "
            f"runs. For one run's report: mhsft report {twice}"
        )
    digest = hashlib.sha1(" ".join(sorted(ids)).encode()).hexdigest()[:8]
    recipes = ", ".join(dict.fromkeys(r.recipe_name or "-" for r in records))
    return Compared(
        records=records,
        names=ids,
        title=f"Comparison report: {len(records)} runs",
        intro=f"Runs {', '.join(ids)} (recipe {recipes}), in the order given.",
        first_rows=[],
        dest=out or cwd / ".mhsft" / "reports" / f"compare-{digest}",
        given=out is not None,
    )


def comparison_report(
    run_ids: list[str], sweep_id: str | None, out: Path | None, env_file: Path | None, options: dict[str, Any]
) -> int:
    """`mhsft report --sweep ID` or `mhsft report RUN RUN...`: check the request, then write the report."""
    if sweep_id is not None and run_ids:
        raise MhsftError(
            f"--sweep {sweep_id} and run(s) {' '.join(run_ids)} given together: a report compares either a sweep's "
            "trials (mhsft report --sweep ID) or the runs named (mhsft report RUN RUN...), not both."
        )
    if options["checkpoint"] not in checkpoints.SELECTORS:
        raise MhsftError(
            f"--checkpoint {options['checkpoint']}: a comparison report asks each run's own checkpoint; give "
            "--checkpoint latest or best (a folder names one run's checkpoint: mhsft report RUN --checkpoint PATH)."
        )
    if options["swanlab"]:
        raise MhsftError(
            "--swanlab logs a report to one run's SwanLab experiment; a comparison report is not logged. Drop "
            "--swanlab (each run's own report can be: mhsft report RUN --swanlab)."
        )
    cwd = Path.cwd()
    environment = environment_for(env_file)
    compared = _of_sweep(sweep_id, out, cwd) if sweep_id is not None else _of_runs(run_ids, out, cwd)
    return _write(compared, environment, options)
