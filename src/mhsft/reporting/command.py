"""`mhsft report`: gather a training run's facts, answer held-out prompts twice, write report.md and report.html."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from mhsft import ui
from mhsft.environment import Environment
from mhsft.errors import MhsftError
from mhsft.launch import environment_for
from mhsft.reporting import document, images, samples, sections
from mhsft.runs import checkpoints, store
from mhsft.runs import status as run_status
from mhsft.runs.records import RunRecord
from mhsft.trained.target import Target, run_recipe
from mhsft.view import history, show

MARKER = ".mhsft-report"  # in a folder the report made: a later report may write there again


def training_record(cwd: Path, run_id: str | None) -> RunRecord:
    """The training run `run_id` (id or unique prefix), or the newest one whatever its state."""
    return store.which_run(
        cwd,
        run_id,
        fits=lambda r: r.command == "sft",
        refusal=lambda r: (
            f"run {r.id} is a `swift {r.command}` run; a report is written for a training run. `mhsft runs` lists "
            "the runs."
        ),
        none="no training run is recorded in {folder}. Train first (mhsft train RECIPE).",
    )


def machine() -> list[tuple[str, str]]:
    """CUDA and the GPUs of the machine writing the report (torch's view)."""
    from mhsft.selfcheck.doctor import torch_and_gpus

    return [(f"{c.name} (this machine)", c.detail) for c in torch_and_gpus() if c.name != "torch"]


def compare_models(
    record: RunRecord,
    environment: Environment,
    info: dict,
    out: Path,
    options: dict,
) -> list[document.Block]:
    """Section 3: the side-by-side table, or why there is none."""
    if not info["checkpoints"]:
        status = info["status"]
        active = status in run_status.ACTIVE
        why = f"is still {status}: no checkpoint yet" if active else f"ended {status} before any checkpoint"
        return sections.comparison(None, f"No side-by-side: the run {why}.", "", "")
    if options["samples"] == 0:
        return sections.comparison(None, "No side-by-side: --samples 0.", "", "")
    files, source = samples.prompt_files(record, checkpoints.run_dir_of(record), options["prompts"])
    checkpoint = checkpoints.resolve(options["checkpoint"], Path.cwd(), record)
    target = Target(environment, run_recipe(record, environment), checkpoint, record)
    settings, said = samples.generation(target, options)
    found = samples.side_by_side(target, out, files, options["samples"], settings)
    return sections.comparison(
        found, "", source, f"checkpoint {checkpoint.name} vs the base model, both through {said}"
    )


def own_folder(dest: Path, given: bool, overwrite: bool) -> None:
    """Create the report's folder. A folder given with --out must be new, empty or an earlier report's (it
    holds MARKER), unless `overwrite`: the report's files are written there under fixed names."""
    entries = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    if given and entries and MARKER not in entries and not overwrite:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise MhsftError(
            f"--out {dest} is not empty ({shown}) and holds no earlier mhsft report. The report writes its own "
            f"files there ({', '.join(samples.WRITTEN)}, report.md, report.html, the curves): give a new or empty "
            "folder, or add --overwrite to write them beside what is there."
        )
    document.make_folder(dest)
    try:
        (dest / MARKER).write_text("mhsft report\n", encoding="utf-8")
    except OSError as exc:
        raise MhsftError(f"--out {dest}: cannot write there ({exc.strerror or exc}). Give a writable folder.") from None


def report(run_id: str | None, out: Path | None, env_file: Path | None, options: dict) -> int:
    """Write `report.md` (with its images) and `report.html` for a training run; print where."""
    started = time.monotonic()
    cwd = Path.cwd()
    environment = environment_for(env_file)
    record = training_record(cwd, run_id)
    info = show.details(record)
    folder = checkpoints.run_dir_of(record)
    dest = out or (folder / "report" if folder else Path(record.output_dir or cwd) / f"report-{record.id}")
    own_folder(dest, out is not None, options["overwrite"])
    logged = history.History(train=info["loss"]["train"], eval=info["loss"]["eval"])
    pictures = images.curves(folder, logged)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    blocks = [
        document.Heading(f"Experiment report: {record.recipe_name or record.id}", 1),
        document.Para(f"Written by mhsft report at {stamp} from run {record.id}."),
        *sections.overview(record, info, machine()),
        *sections.training(info, pictures),
        *sections.benchmarks(record),
        *compare_models(record, environment, info, dest, options),
        *sections.artifacts(record, store.load_all(cwd), folder),
        *sections.appendix(record, info),
    ]
    markdown = document.write(dest, blocks, f"mhsft report {record.id}", environment.redact)
    ui.info(f"report: {dest / 'report.md'} and {dest / 'report.html'} ({time.monotonic() - started:.1f} s)")
    if options["swanlab"]:
        from mhsft.reporting.to_swanlab import log_report

        log_report(record, environment, markdown)
    return 0
