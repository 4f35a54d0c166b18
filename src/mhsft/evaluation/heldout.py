"""The run's held-out rows as an EvalScope custom QA set: each row's conversation up to its last answer is the
prompt (as the model saw it in training, system prompt included), that answer the reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mhsft.errors import DATA_CHECK, MhsftError

NAME = "general_qa"  # EvalScope's custom QA benchmark
SUBSET = "heldout"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """A row in any format swift reads (messages, ShareGPT conversations, query/response, alpaca) as messages."""
    if isinstance(row.get("messages"), list):
        turns = [(m.get("role"), m.get("content")) for m in row["messages"] if isinstance(m, dict)]
    elif isinstance(row.get("conversations"), list):
        turns = [(m.get("from"), m.get("value")) for m in row["conversations"] if isinstance(m, dict)]
    elif "query" in row or "instruction" in row:
        query = row.get("query") or "\n".join(str(row[k]) for k in ("instruction", "input") if row.get(k))
        turns = []
        for pair in row.get("history") or []:
            if isinstance(pair, list) and len(pair) == 2:
                turns += [("user", pair[0]), ("assistant", pair[1])]
        turns += [("user", query), ("assistant", row.get("response", row.get("output")))]
        if row.get("system"):
            turns.insert(0, ("system", row["system"]))
    else:
        return []
    return [{"role": ROLES[str(r)], "content": str(c)} for r, c in turns if str(r) in ROLES and c is not None]


def qa_row(row: dict[str, Any], system: str | None) -> dict[str, Any] | None:
    """{"messages": prompt, "answer": reference} for a row that ends in an answer, else None."""
    turns = messages(row)
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[-2]["role"] != "user":
        return None
    prompt = turns[:-1]
    if system and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": system})
    return {"messages": prompt, "answer": turns[-1]["content"]}


def collect(files: list[Path], system: str | None) -> list[dict[str, Any]]:
    """The scorable rows of `files` (an error when there is none)."""
    rows = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = None
            found = qa_row(row, system) if isinstance(row, dict) else None
            if found:
                rows.append(found)
    if not rows:
        raise MhsftError(
            f"the held-out rows ({', '.join(map(str, files))}) hold no prompt with a reference answer (a row "
            "ending in an assistant turn), so they cannot be scored. Fix that file, or name benchmarks with --bench.",
            DATA_CHECK,
        )
    return rows


def write(rows: list[dict[str, Any]], dest: Path) -> None:
    """`dest/heldout.jsonl`, the file EvalScope reads."""
    dest.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (dest / f"{SUBSET}.jsonl").write_text(text, encoding="utf-8")


def dataset_args(dest: Path) -> dict[str, Any]:
    """The EvalScope arguments that read `dest` as the held-out set (messages as they are: no prompt template)."""
    return {NAME: {"local_path": str(dest), "subset_list": [SUBSET]}}
