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
        'e.g. one {"messages": [...]} per line).'
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


def side_by_side(
    target: Target,
    out: Path,
    files: list[Path],
    n: int,
    backend: str | None,
    max_new_tokens: int | None,
    temperature: float,
) -> list[Sample]:
    """Run `swift infer` on the prompts with the adapter and without it; pair the answers row by row."""
    from mhsft.trained.infer import batch

    written = {(out / name).resolve() for name in WRITTEN}
    if clash := next((f for f in files if f.resolve() in written), None):
        raise MhsftError(
            f"the prompts file {clash} is one the report writes in {out}: it would be replaced by the "
            f"{n} row(s) used. Give another --out, or move the file."
        )
    prompts = out / "prompts.jsonl"
    count = take(files, n, prompts)
    answered = {}
    for name, adapter in (("base", False), ("finetuned", True)):  # base first: it checks args.json
        result = out / f"infer-{name}.jsonl"
        result.unlink(missing_ok=True)
        with open(out / f"infer-{name}.log", "w", encoding="utf-8") as log:
            code = batch(
                target,
                prompts,
                result,
                log,
                backend=backend,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                adapter=adapter,
            )
        if code != 0:
            raise MhsftError(
                f"swift infer ({name}) failed with exit {code}; its output is in {out / f'infer-{name}.log'}."
            )
        answered[name] = results(result)
        if len(answered[name]) != count:
            raise MhsftError(f"swift infer ({name}) answered {len(answered[name])} of {count} prompts; see {result}.")
    return [
        Sample(_prompt(t), str(t.get("labels") or ""), str(b.get("response", "")), str(t.get("response", "")))
        for t, b in zip(answered["finetuned"], answered["base"], strict=True)
    ]
