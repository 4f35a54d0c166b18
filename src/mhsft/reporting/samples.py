"""Base vs fine-tuned: N held-out prompts answered twice by `swift infer` in batch mode (with and without the
adapter, same generation settings), read back from swift's result jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError
from mhsft.paths import absolute
from mhsft.runs.records import RunRecord
from mhsft.trained.target import Target
from mhsft.view.links import flags

WRITTEN = ("prompts.jsonl", "infer-base.jsonl", "infer-base.log", "infer-finetuned.jsonl", "infer-finetuned.log")


@dataclass(frozen=True)
class Sample:
    prompt: str
    reference: str
    base: str
    tuned: str


def _local_files(value: Any, cwd: Path) -> list[Path]:
    items = value if isinstance(value, list) else [value] if value else []
    return [p for p in (Path(absolute(str(v), cwd)) for v in items) if p.is_file()]


def prompt_files(record: RunRecord, run_dir: Path | None, prompts: Path | None) -> tuple[list[Path], str]:
    """Where the held-out prompts come from, and how to say so: --prompts, the recipe's val_dataset, the rows
    split off for validation (the dataset gate's copy, or swift's own in the run folder)."""
    cwd = Path(record.cwd)
    if prompts is not None:
        if not prompts.is_file():
            raise MhsftError(f"--prompts {prompts}: no such file. Give a jsonl file in a format swift reads.")
        return [prompts], f"--prompts {prompts}"
    args = flags(record.argv)
    recipe_val = record.extra.get("datasets", {}).get("val_dataset") or args.get("val_dataset", "").split()
    if found := _local_files(recipe_val, cwd):
        return found, "the recipe's val_dataset"
    split = [Path(p).parent / "val_dataset.jsonl" for p in args.get("cached_dataset", "").split()]
    split += [run_dir / "val_dataset.jsonl"] if run_dir else []
    if found := [p for p in split if p.is_file()][:1]:
        return found, f"the rows split off for validation ({found[0]})"
    raise MhsftError(
        f"run {record.id} has no held-out prompts for the side-by-side: its recipe has no local val_dataset and "
        "no rows were split off (split_dataset_ratio). Pass --prompts FILE (a jsonl file in a format swift reads, "
        'e.g. one {"messages": [...]} per line), or --samples 0 for a report without answers.'
    )


def take(files: list[Path], n: int, dest: Path) -> int:
    """The first `n` rows of `files` written to `dest` (the file both runs answer); how many there were."""
    rows: list[str] = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and len(rows) < n:
                rows.append(line)
    if not rows:
        raise MhsftError(f"{files[0]} holds no rows to use as prompts. Pass --prompts FILE with at least one.")
    dest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(rows)


def results(path: Path) -> list[dict[str, Any]]:
    """swift's result jsonl rows; an error naming the file when swift wrote none."""
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise MhsftError(f"swift infer wrote no readable results to {path} ({exc}); see the log beside it.") from None


def _prompt(row: dict[str, Any]) -> str:
    """The last user turn of a result row (swift appends its answer as the last message)."""
    users = [m.get("content", "") for m in row.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def generation(target: Target, options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The generation settings every answer in a report gets (the options, else the recipe's [infer], else
    max_new_tokens 256), and how to say them."""
    configured = target.defaults("infer")
    max_new = options["max_new_tokens"] or configured.get("max_new_tokens") or 256
    backend = options["backend"] or configured.get("infer_backend") or "transformers"
    said = f"`swift infer` (backend {backend}, max_new_tokens {max_new}, temperature {options['temperature']:g})"
    return {"backend": backend, "max_new_tokens": max_new, "temperature": options["temperature"]}, said


def _prompts(files: list[Path], out: Path, written: list[str], n: int) -> tuple[Path, int]:
    """out/prompts.jsonl with the first `n` rows of `files`, and how many. A prompts file among the report's
    own outputs (`written`) would be cut to the rows used: refused."""
    own = {(out / name).resolve() for name in written}
    if clash := next((f for f in files if f.resolve() in own), None):
        raise MhsftError(
            f"the prompts file {clash} is one the report writes in {out}: it would be replaced by the "
            f"{n} row(s) used. Give another --out, or move the file."
        )
    prompts = out / "prompts.jsonl"
    return prompts, take(files, n, prompts)


def answer_all(
    target: Target, prompts: Path, count: int, out: Path, name: str, adapter: bool, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """One `swift infer` of `prompts` into out/infer-NAME.jsonl (its output in infer-NAME.log); its rows."""
    from mhsft.trained.infer import batch

    result = out / f"infer-{name}.jsonl"
    result.unlink(missing_ok=True)
    with open(out / f"infer-{name}.log", "w", encoding="utf-8") as log:
        code = batch(target, prompts, result, log, adapter=adapter, **settings)
    if code != 0:
        raise MhsftError(f"swift infer ({name}) failed with exit {code}; its output is in {out / f'infer-{name}.log'}.")
    rows = results(result)
    if len(rows) != count:
        raise MhsftError(f"swift infer ({name}) answered {len(rows)} of {count} prompts; see {result}.")
    return rows


def side_by_side(target: Target, out: Path, files: list[Path], n: int, settings: dict[str, Any]) -> list[Sample]:
    """Run `swift infer` on the prompts without the adapter and with it (same `settings`: backend,
    max_new_tokens, temperature); pair the answers row by row."""
    prompts, count = _prompts(files, out, list(WRITTEN), n)
    base = answer_all(target, prompts, count, out, "base", False, settings)  # base first: it checks args.json
    tuned = answer_all(target, prompts, count, out, "finetuned", True, settings)
    return [
        Sample(_prompt(t), str(t.get("labels") or ""), str(b.get("response", "")), str(t.get("response", "")))
        for t, b in zip(tuned, base, strict=True)
    ]


@dataclass(frozen=True)
class Answers:
    """The same prompts answered by several runs: prompts, references, and one list of answers per run."""

    prompts: list[str]
    references: list[str]
    answers: list[list[str]]


def each_run(
    targets: list[tuple[str, Target]], out: Path, files: list[Path], n: int, settings: dict[str, Any]
) -> Answers:
    """One `swift infer` per (name, target) with its adapter, all on the same prompts and `settings`."""
    written = ["prompts.jsonl", *(f"infer-{name}.{x}" for name, _ in targets for x in ("jsonl", "log"))]
    prompts, count = _prompts(files, out, written, n)
    answered = [answer_all(target, prompts, count, out, name, True, settings) for name, target in targets]
    first = answered[0]
    return Answers(
        [_prompt(r) for r in first],
        [str(r.get("labels") or "") for r in first],
        [[str(r.get("response", "")) for r in rows] for rows in answered],
    )
