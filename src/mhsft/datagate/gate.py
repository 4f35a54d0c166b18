"""The dataset gate: line scan, ms-swift's own preprocessing into a cached dataset, report, budget.

`check` returns the report (from `.mhsft/data-cache/<key>/` when the same data, tokenizer and settings were
checked before), with the folders `swift sft --cached_dataset/--cached_val_dataset` trains from. `enforce`
turns a report over the recipe's [data_check] budget into exit 4.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from mhsft import ui
from mhsft.datagate.cache import damage, discard, seal, sweep, workspace
from mhsft.datagate.folder import SPLIT_KEYS, read_files
from mhsft.datagate.report import analyse, biggest_cause, dataset_names, sequences, shares, steps_per_epoch
from mhsft.datagate.rows import FILE, load
from mhsft.datagate.scan import (
    MAX_LINE_BYTES,
    OTHER_SCHEMA,
    TOO_LONG_LINE,
    FileScan,
    joined,
    refuse_special,
    scan,
    scannable,
)
from mhsft.datagate.spec import CACHE_DIR, GateSpec, gate_spec, processes
from mhsft.environment import Environment
from mhsft.errors import DATA_CHECK, USAGE, MhsftError
from mhsft.paths import display
from mhsft.recipe.argv import localize
from mhsft.recipe.model import Recipe
from mhsft.recipe.plan import command_plan

LAST_DIR = Path(".mhsft") / "data-check"
LOG_TAIL = 12
_ERROR_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")
TOKENIZER_CORE = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "qwen.tiktoken")
EFFECTS = {
    OTHER_SCHEMA: "ms-swift would read the file as the union of both layouts and drop most rows. Fix or remove "
    "those lines, or split the file by layout",
    TOO_LONG_LINE: f"The data check reads lines of up to {MAX_LINE_BYTES >> 20} MiB (a row that long is millions of "
    "tokens, more than any max_length keeps) and stops at a longer one rather than hold it in memory. Shorten or "
    "split those rows",
}


def _local(entry: str) -> str:
    """A dataset entry without its `#N` sample count."""
    return entry.rsplit("#", 1)[0] if not os.path.exists(entry) else entry


def _refuse_broken(found: FileScan) -> None:
    """Refuse a file swift would fail on or misread as a whole."""
    for cause, detail in found.fatal:
        effect = EFFECTS.get(cause, "ms-swift would fail on the whole file. Fix or remove those lines")
        raise MhsftError(
            f"dataset {display(found.path)}: {detail.count} row(s) with {cause}"
            f"{', the first ' + str(len(detail.examples)) if detail.count > len(detail.examples) else ''}: "
            f"{'; '.join(detail.examples)}. {effect}.",
            DATA_CHECK,
        )


def _folder_scan(folder: str, key: str) -> FileScan | None:
    """The joined scan of the files swift reads from a dataset folder (None when they are not JSON): each file
    scanned, and all with the same columns, since swift reads them as one table."""
    scans = [scan(Path(name)) for name in read_files(folder, key) if scannable(name)]
    for found in scans:
        _refuse_broken(found)
    if not scans:
        return None
    first = scans[0]
    odd = next((found for found in scans if found.columns != first.columns), None)
    if odd is not None:
        raise MhsftError(
            f"[sft] {key} {display(folder)} is a folder whose files have different columns "
            f"({display(first.path)}: {', '.join(sorted(first.columns))}; {display(odd.path)}: "
            f"{', '.join(sorted(odd.columns))}): ms-swift reads a folder as one table and fails on that. List the "
            f"files in [sft] {key} one by one (each is read on its own), or give their rows the same keys.",
            DATA_CHECK,
        )
    return joined(Path(folder), scans)


def _scan_all(entries: list[tuple[str, str]]) -> dict[str, FileScan]:
    """Scan every local .jsonl/.json dataset, and each such file of a dataset folder; stop at the first file
    swift would fail on or misread."""
    scans = {}
    for entry, split in entries:
        path = _local(entry)
        refuse_special(path)
        found = _folder_scan(path, SPLIT_KEYS[split]) if os.path.isdir(path) else None
        if scannable(path):
            found = scan(Path(path))
            _refuse_broken(found)
        if found is not None:
            scans[path] = found
    return scans


def _diagnose(log: Path, entries: list[tuple[str, str]], recipe: Recipe) -> MhsftError:
    """A clear error for a failed export, from the end of swift's log."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    last = errors[-1] if errors else lines[-1] if lines else ""
    tail = "\n".join(lines[-LOG_TAIL:])
    if "train_dataset: None" in text or "filtered dataset length: 0" in text:
        return MhsftError(
            "every row of the dataset was dropped by ms-swift's preprocessing: nothing would be trained. Check "
            "that the rows are dialogues with a user turn and an answer, and that [sft] template matches the data "
            f"and the tokenizer. The first error swift logged: {errors[0] if errors else last}",
            DATA_CHECK,
        )
    if "tokenizer" in last.lower() or ("tokenizer" in tail.lower() and "OSError" in tail):
        return MhsftError(
            f"the tokenizer of [sft] model {recipe.args['sft']['model']} cannot be loaded, so the data cannot be "
            "tokenised: check that the model folder has its tokenizer files (tokenizer.json or vocab/merges, "
            f"tokenizer_config.json) or that the hub id is right. swift said: {last}",
            USAGE,
        )
    folders = [e for e, _ in entries if os.path.isdir(_local(e))]
    if folders and "Couldn't cast" in text:
        return MhsftError(
            f"the files of dataset folder {display(_local(folders[0]))} do not share one schema (their rows' values "
            "differ in type or in nested keys): ms-swift reads a folder as one table and fails on that. List the "
            f"files in [sft] dataset one by one (each is read on its own), or make their rows alike. swift's log: "
            f"{display(log)}",
            DATA_CHECK,
        )
    hubs = [e for e, _ in entries if not os.path.exists(e.rsplit("#", 1)[0])]
    if hubs and any(w in text for w in ("Connection", "connect", "resolve", "offline", "not found", "NotExist")):
        return MhsftError(
            f"dataset {', '.join(hubs)} could not be downloaded (no network, or no such dataset on the hub). "
            f"Check the id and your connection, or use a local file. swift said: {last}",
            DATA_CHECK,
        )
    return MhsftError(f"ms-swift could not preprocess the dataset. The end of its log ({log}):\n{tail}", DATA_CHECK)


def _require_tokenizer(model: str, cwd: Path) -> None:
    """A local model folder must hold a tokenizer: without one swift fails on every row, one by one."""
    folder = Path(localize("model", model, cwd))
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_CORE):
        raise MhsftError(
            f"the model folder {display(folder)} ([sft] model) has no tokenizer files "
            f"({', '.join(TOKENIZER_CORE[:4])}, ...), so the data cannot be tokenised. Copy the tokenizer files of "
            "the base model into that folder, or point [sft] model at the folder that has them."
        )


def _export(
    spec: GateSpec, recipe: Recipe, environment: Environment, cwd: Path, folder: Path, processes: int
) -> dict[str, Any]:
    """Run the worker (swift's export, on `processes` processes) into a fresh folder; return its kept rows."""
    from mhsft.process import runner

    out = folder / "export"
    args = spec.args | {"to_cached_dataset": True, "output_dir": str(out), "dataset_num_proc": processes}
    worker = (sys.executable, "-m", "mhsft.datagate.worker", str(folder / "spec.json"))
    plan = command_plan(
        "export", args, environment, cwd, recipe=recipe, summary=[], program=worker, env={"CUDA_VISIBLE_DEVICES": ""}
    )
    (folder / "spec.json").write_text(json.dumps({"out": str(out), "packing": spec.packing}), encoding="utf-8")
    ui.info("data check: " + plan.shell_line().replace(" ".join(worker), "swift export", 1).replace("\\\n  ", ""))
    log = folder / "export.log"
    with log.open("w", encoding="utf-8") as f:
        outcome = runner.run(list(plan.argv), plan.child_env(environment), cwd=cwd, log=f)
    if outcome.signal is not None:
        raise MhsftError("data check interrupted; nothing was trained.", outcome.exit_code)
    if outcome.exit_code != 0:
        kept = cwd / CACHE_DIR / "last-failure.log"
        shutil.copyfile(log, kept)
        raise _diagnose(kept, dataset_names(recipe.args["sft"], lambda k, v: localize(k, v, cwd)), recipe)
    return load(out / FILE)


def _fresh(
    spec: GateSpec,
    recipe: Recipe,
    environment: Environment,
    cwd: Path,
    entries: list[tuple[str, str]],
    inputs: tuple[dict[str, tuple[int, int]], dict[str, str]],
    folder: Path,
) -> dict[str, Any]:
    """Scan, export and analyse data not checked before; the entry is kept in `folder` (`inputs`: the local
    files' stats and digests the key was made of)."""
    scans = _scan_all(entries)
    _require_tokenizer(str(recipe.args["sft"]["model"]), cwd)
    counted = [scans.get(_local(entry)) for entry, _ in entries]
    count, why = processes(recipe, None if None in counted else sum(s.rows for s in counted if s))
    ui.info(f"data check: tokenising with {count} process{'es' if count > 1 else ''} ({why})")
    work = workspace(folder.parent)
    try:
        rows = _export(spec, recipe, environment, cwd, work, count)
        _unchanged(*inputs, recipe, cwd)
        report = analyse(spec, entries, scans, rows, recipe.args["sft"], recipe.launch_env)
        report["export_processes"] = count
        (work / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        seal(work)
        if not folder.exists():
            os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def check(
    recipe: Recipe, environment: Environment, cwd: Path, launch_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The gate's report for a recipe, computed or from the cache, with the cached dataset folders.

    The key hashes the data and the tokenizer (what was checked); a hit costs that hash and the entry's check: no
    scan, no export. Steps per epoch are counted for `launch_env` (default: the recipe's [launch]; `mhsft submit`
    gives the Slurm job's nodes and processes).
    """
    started = time.monotonic()
    sft = recipe.args["sft"]
    entries = dataset_names(sft, lambda key, value: localize(key, value, cwd))
    spec = gate_spec(recipe, cwd)
    inputs = spec.stats(), spec.digests()  # the stat first: a write during the hashing moves it
    key = spec.key_of(inputs[1])
    store = cwd / CACHE_DIR
    if store.is_dir():
        sweep(store)
    folder = store / key
    report = _cached(folder)
    hit = report is not None
    if report is None:
        report = _fresh(spec, recipe, environment, cwd, entries, inputs, folder)
    export = folder / "export"
    report |= {
        "key": key,
        "cache_hit": hit,
        "cache_dir": str(folder),
        "cached_dataset": str(export / "train") if (export / "train").is_dir() else None,
        "cached_val_dataset": str(export / "val") if (export / "val").is_dir() else None,
        "steps": steps_per_epoch(sequences(report), sft, launch_env or recipe.launch_env),
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    _remember(recipe, report, cwd)
    return report


def _cached(folder: Path) -> dict[str, Any] | None:
    """The report of a sound cache entry; None when there is none, or when it was damaged (then removed)."""
    if not folder.exists():
        return None
    problem = damage(folder)
    if problem is None:
        try:
            return json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            problem = "report.json is not readable"
    ui.warn(f"data check: the cached result {display(folder)} is damaged ({problem}); building it again.")
    discard(folder)
    return None


def _unchanged(stats: dict[str, tuple[int, int]], before: dict[str, str], recipe: Recipe, cwd: Path) -> None:
    """Refuse a result when a local input changed while swift read it: it would be cached under the old content.

    The same files with the same sizes and mtimes have not changed; otherwise the hashes decide (a file only
    touched is fine)."""
    now = gate_spec(recipe, cwd)
    if now.stats() == stats:
        return
    after = now.digests()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise MhsftError(
            f"{display(changed[0])}{more} changed while the data check read it: ms-swift may have read part old, "
            "part new content, so the result was not kept and nothing was trained. Run the check again once "
            "nothing is writing to the data.",
            DATA_CHECK,
        )


def _remember(recipe: Recipe, report: dict[str, Any], cwd: Path) -> None:
    """Keep the last result per recipe for `mhsft doctor RECIPE` (no tokenisation there)."""
    from mhsft.datagate.report import summary

    try:
        (cwd / LAST_DIR).mkdir(parents=True, exist_ok=True)
        record = {"recipe": str(recipe.path), "key": report["key"], "checked_at": time.time()} | summary(report)
        (cwd / LAST_DIR / f"{recipe.name}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    except OSError as exc:
        ui.warn(f"could not keep the data check result under {LAST_DIR} ({exc.strerror or exc}).")


def last(recipe: Recipe, cwd: Path) -> dict[str, Any] | None:
    """The last data check result of a recipe in this folder, if any."""
    try:
        return json.loads((cwd / LAST_DIR / f"{recipe.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def enforce(report: dict[str, Any], recipe: Recipe) -> None:
    """Raise exit 4 when nothing is kept or more rows are dropped/truncated than [data_check] allows."""
    dropped, truncated = shares(report)
    budget = recipe.data_check
    biggest = biggest_cause(report)
    cause = f" The biggest cause: {biggest[0]} ({biggest[1]['count']} rows)" if biggest else ""
    examples = f", e.g. {'; '.join(biggest[1]['examples'][:3])}." if biggest and biggest[1]["examples"] else "."
    if report["train_rows"] == 0:
        raise MhsftError(f"dataset check failed: no training row is left.{cause}{examples} Fix the data.", DATA_CHECK)
    if dropped > budget.max_dropped:
        raise MhsftError(
            f"dataset check failed: {report['total']['dropped']} of {report['total']['read']} rows "
            f"({dropped:.1%}) would be dropped, more than [data_check] max_dropped = {budget.max_dropped:g} allows."
            f'{cause}{examples} Fix those rows, raise [sft] max_length (or set truncation_strategy = "right") '
            "for rows that are too long, or raise max_dropped if losing them is fine.",
            DATA_CHECK,
        )
    if truncated > budget.max_truncated:
        raise MhsftError(
            f"dataset check failed: {report['total']['truncated']} of {report['total']['kept']} kept rows "
            f"({truncated:.1%}) would be truncated to max_length {report['max_length']}, more than [data_check] "
            f"max_truncated = {budget.max_truncated:g} allows. Raise [sft] max_length or max_truncated.",
            DATA_CHECK,
        )


def training_args(report: dict[str, Any]) -> dict[str, Any]:
    """The [sft] values that make swift train from the gate's cache (see plan.train_plan's `cached`)."""
    args: dict[str, Any] = {"cached_dataset": [report["cached_dataset"]]}
    if report["cached_val_dataset"]:
        args["cached_val_dataset"] = [report["cached_val_dataset"]]
    return args
