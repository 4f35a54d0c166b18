"""The fast line scan of local .jsonl/.json datasets, before swift starts: broken lines and mixed schemas.

One streamed pass with the standard json module; each row's layout is named the way ms-swift's preprocessors
tell them apart (messages, ShareGPT conversations, alpaca, query/response, text). A file whose rows do not
share one layout is read by swift as the union of their columns and quietly loses most rows, so a row of
another layout is a problem worth stopping for, named as `file:line`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.errors import DATA_CHECK, MhsftError
from mhsft.paths import display

try:  # orjson parses JSON lines about 4x faster; the standard json module gives the same answers
    from orjson import loads
except ImportError:  # pragma: no cover
    from json import loads

SCANNED_SUFFIXES = (".jsonl", ".json")
EXAMPLES = 5
USER_ROLES = ("user", "human")
NOT_ANSWERS = (*USER_ROLES, "system")  # a dialogue that ends on one of these has no answer to learn
QUERY_KEYS = ("query", "prompt", "input", "instruction", "question", "problem")
RESPONSE_KEYS = ("response", "answer", "output", "targets", "target", "completion")
# causes: a short key -> what it means to a user
UNPARSEABLE = "unparseable JSON"
OTHER_SCHEMA = "another schema than the rest of the file"
NOT_OBJECT = "not a JSON object"
NO_USER = "no user turn"
EMPTY_ANSWER = "empty answer"
FATAL = (UNPARSEABLE, OTHER_SCHEMA, NOT_OBJECT)


@dataclass
class Cause:
    """How many rows share one problem, with up to EXAMPLES of their `file:line` places."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, place: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(place)


@dataclass
class FileScan:
    """What the scan found in one file: rows, its layout, and the problems by cause."""

    path: Path
    rows: int = 0
    layout: str = ""
    causes: dict[str, Cause] = field(default_factory=dict)
    lines: dict[int, str] = field(default_factory=dict)  # the cause of each row with a problem

    def add(self, cause: str, line: int, detail: str = "") -> None:
        self.lines[line] = cause
        place = f"{display(self.path)}:{line}" + (f" ({detail})" if detail else "")
        self.causes.setdefault(cause, Cause()).add(place)

    @property
    def fatal(self) -> list[tuple[str, Cause]]:
        """The problems that make swift fail or misread the whole file."""
        return [(c, self.causes[c]) for c in FATAL if c in self.causes]


def layout(row: dict[str, Any]) -> str:
    """The layout ms-swift would read a row as."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "conversations"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if any(k in row for k in QUERY_KEYS) and any(k in row for k in RESPONSE_KEYS):
        return "query/response"
    if "text" in row:
        return "text"
    return "keys " + ",".join(sorted(row))


def _turn_problem(turns: Any) -> str | None:
    if not isinstance(turns, list) or not turns:
        return NO_USER
    user = False
    for turn in turns:
        if not isinstance(turn, dict):
            return NO_USER
        if turn.get("role", turn.get("from")) in USER_ROLES:
            user = True
    if not user:
        return NO_USER
    last = turns[-1]
    answer = last.get("content", last.get("value"))
    if last.get("role", last.get("from")) in (*USER_ROLES, "system") or not (
        isinstance(answer, str) and answer.strip()
    ):
        return EMPTY_ANSWER
    return None


def _row_problem(row: dict[str, Any], kind: str) -> str | None:
    """A per-row problem swift's encoding would drop the row for (layouts it reads as dialogues)."""
    if kind in ("messages", "conversations"):
        return _turn_problem(row[kind])
    if kind in ("alpaca", "query/response"):
        query = next((row[k] for k in QUERY_KEYS if row.get(k)), None)
        answer = next((row[k] for k in RESPONSE_KEYS if k in row), None)
        if not query:
            return NO_USER
        if not (isinstance(answer, str) and answer.strip()):
            return EMPTY_ANSWER
    return None


def _kind(path: Path) -> str:
    """Refuse what is not a readable file; return 'array' for a .json holding one JSON array, else 'lines'."""
    where = display(path)
    if not path.exists():
        raise MhsftError(
            f"dataset {where} does not exist. Fix the path in [sft] dataset (relative paths are "
            "taken from the current directory)."
        )
    if path.is_dir():
        raise MhsftError(f"dataset {where} is a folder. Give the .jsonl file inside it, one row a line.")
    if not path.is_file():
        raise MhsftError(f"dataset {where} is not a regular file. Give a .jsonl file, one row a line.")
    with path.open("rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        raise MhsftError(
            f"dataset {where} is not a text file (it holds NUL bytes). A dataset is UTF-8 JSON lines.", DATA_CHECK
        )
    return "array" if path.suffix == ".json" and head.lstrip()[:1] == b"[" else "lines"


def _rows(path: Path, kind: str) -> Iterator[tuple[int, bytes | Any]]:
    """(line number, raw line) for a jsonl file, or (item number, parsed item) for a .json array."""
    if kind == "array":
        try:
            items = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise MhsftError(
                f"dataset {display(path)} is not valid JSON ({exc}). Fix the file, or write it as "
                "JSON lines (.jsonl), one row a line, so a broken row can be named by its line.",
                DATA_CHECK,
            ) from None
        yield from enumerate(items if isinstance(items, list) else [items], 1)
        return
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


def scan(path: Path) -> FileScan:
    """Scan one local dataset file (streamed): rows, layout, and problems by cause with examples."""
    kind = _kind(path)
    result = FileScan(path)
    kinds: dict[str, int] = {}
    firsts: dict[str, list[int]] = {}  # the first lines of each layout, to name the odd ones
    for number, raw in _rows(path, kind):
        result.rows += 1
        if kind == "lines":
            try:
                row = loads(raw)
            except ValueError as exc:  # also not UTF-8 (orjson and json both raise a ValueError subclass)
                result.add(UNPARSEABLE, number, str(exc).split("\n")[0])
                continue
        else:
            row = raw
        if not isinstance(row, dict):
            result.add(NOT_OBJECT, number, type(row).__name__)
            continue
        name = layout(row)
        seen = kinds.get(name, 0)
        kinds[name] = seen + 1
        if seen < EXAMPLES:
            firsts.setdefault(name, []).append(number)
        problem = _row_problem(row, name)
        if problem:
            result.add(problem, number)
    if not result.rows:
        raise MhsftError(
            f"dataset {display(path)} is empty: it holds no rows. Put one JSON object a line in it, e.g. "
            '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}.',
            DATA_CHECK,
        )
    if kinds:
        result.layout = max(kinds, key=kinds.__getitem__)
        for name, count in kinds.items():
            if name != result.layout:
                cause = result.causes.setdefault(OTHER_SCHEMA, Cause())
                cause.count += count
                for number in firsts[name][: EXAMPLES - len(cause.examples)]:
                    cause.examples.append(f"{display(path)}:{number} ({name}; the file is {result.layout})")
    return result


def signature(row: Any) -> str | None:
    """A short fingerprint of a row's dialogue (its non-system texts in order), as ms-swift standardises it.

    Used to tell which source rows are in the cached dataset swift wrote; None for rows it cannot be made for.
    """
    if not isinstance(row, dict):
        return None
    kind = layout(row)
    if kind in ("messages", "conversations"):
        turns = row[kind] if isinstance(row[kind], list) else []
        texts = [
            t.get("content", t.get("value"))
            for t in turns
            if isinstance(t, dict) and t.get("role", t.get("from")) != "system"
        ]
    elif kind == "alpaca":
        instruction, input_ = row.get("instruction"), row.get("input")
        texts = [f"{instruction}\n{input_}" if instruction and input_ else instruction or input_, row.get("output")]
    else:
        return None
    return fingerprint(texts)


def fingerprint(texts: list[Any]) -> str:
    """The fingerprint of a list of turn texts (shared with the worker that reads swift's output)."""
    blob = json.dumps(texts, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def signatures(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line, fingerprint) for every row of a scanned file, streamed (a second pass, only when needed)."""
    kind = _kind(path)
    for number, raw in _rows(path, kind):
        try:
            row = loads(raw) if kind == "lines" else raw
        except ValueError:
            row = None
        yield number, signature(row)


def scannable(path: str) -> bool:
    """Whether the line scan reads this dataset entry (a local .jsonl/.json file, not a folder or hub id)."""
    return path.endswith(SCANNED_SUFFIXES) and not os.path.isdir(path)
