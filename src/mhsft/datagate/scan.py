"""The fast line scan of local .jsonl/.json datasets, before swift starts: broken lines and mixed schemas.

One streamed pass; each row's layout is named the way ms-swift's preprocessors tell them apart (messages,
ShareGPT conversations, alpaca, query/response, text). A file whose rows do not share one layout is read by
swift as the union of their columns and quietly loses most rows, so a row of another layout is a problem worth
stopping for, named as `file:line`.

A line is judged as ms-swift's reader judges it (`datasets`' json builder: pyarrow for JSON lines, ujson for a
.json array; verified on datasets 4.8 / pyarrow 26): a UTF-8 byte order mark opening a JSON-lines file and the
NaN/Infinity literals are accepted; a key given twice in one object (at any depth) fails the whole file in
pyarrow; a value nested deeper than Arrow's 64 levels fails it too. A line over MAX_LINE_BYTES is not read
into memory at all: it is refused by its number. The same pass fingerprints each row's dialogue, which the
report matches against the rows swift kept.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orjson import dumps, loads  # about 4x faster than the json module, with the same answers
from xxhash import xxh3_64_intdigest

from mhsft.errors import DATA_CHECK, MhsftError
from mhsft.paths import display

SCANNED_SUFFIXES = (".jsonl", ".json")
MAX_LINE_BYTES = 8 << 20  # a longer line (about 2M tokens) is refused, never read whole: see README
MAX_DEPTH = 63  # nested arrays/objects in a row, the row itself included: Arrow refuses a 64th level
BOM = b"\xef\xbb\xbf"
_POSITION = re.compile(r"line \d+ column \d+ \(char (\d+)\)")
BLOCK = 1 << 20  # bytes read at a time
EXAMPLES = 5
USER_ROLES = ("user", "human")
NOT_ANSWERS = (*USER_ROLES, "system")  # a dialogue that ends on one of these has no answer to learn
QUERY_KEYS = ("query", "prompt", "input", "instruction", "question", "problem")
RESPONSE_KEYS = ("response", "answer", "output", "targets", "target", "completion")
# causes: a short key -> what it means to a user
UNPARSEABLE = "unparseable JSON"
DUPLICATE_KEY = "a key given twice in one object"
TOO_DEEP = f"values nested deeper than {MAX_DEPTH} levels"
TOO_LONG_LINE = f"a line over {MAX_LINE_BYTES >> 20} MiB"
OTHER_SCHEMA = "another schema than the rest of the file"
NOT_OBJECT = "not a JSON object"
NO_USER = "no user turn"
EMPTY_ANSWER = "empty answer"
ENDS_WITH_USER = "ends with a user turn"  # the last turn is a question: there is no answer to learn from
FILE_BITS = 40  # a folder's scan numbers line n of its i-th file i << FILE_BITS | n
FATAL = (TOO_LONG_LINE, UNPARSEABLE, DUPLICATE_KEY, TOO_DEEP, OTHER_SCHEMA, NOT_OBJECT)


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
    numbers: array = field(default_factory=lambda: array("Q"))  # each row's line (item) number, in file order
    sigs: array = field(default_factory=lambda: array("Q"))  # each row's dialogue fingerprint (0: none)
    columns: set[str] = field(default_factory=set)  # every row's keys: the columns swift's reader makes
    parts: tuple[Path, ...] = ()  # a folder's files, when this scan joins theirs (see `joined`)

    def add(self, cause: str, line: int, detail: str = "") -> None:
        self.lines[line] = cause
        self.causes.setdefault(cause, Cause()).add(self.place(line) + (f" ({detail})" if detail else ""))

    def place(self, number: int) -> str:
        """`file:line` of a row number (a folder's: the file it is in)."""
        if not self.parts:
            return f"{display(self.path)}:{number}"
        return f"{display(self.parts[number >> FILE_BITS])}:{number & ((1 << FILE_BITS) - 1)}"

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
    if last.get("role", last.get("from")) in USER_ROLES:
        return ENDS_WITH_USER
    if last.get("role", last.get("from")) == "system" or not (isinstance(answer, str) and answer.strip()):
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


class Refused(ValueError):
    """A row ms-swift's reader would fail the whole file on: the cause and a detail."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause, self.detail = cause, detail


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed value (1 for a flat one)."""
    inner = [_depth(v) for v in (value.values() if type(value) is dict else value) if type(v) in (dict, list)]
    return 1 + max(inner, default=0)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) < len(pairs):
        names = [k for k, _ in pairs]
        raise Refused(DUPLICATE_KEY, f"key {next(k for k in names if names.count(k) > 1)!r} twice")
    return row


def _shallow(value: Any) -> Any:
    """`value` when Arrow takes how deep it nests; `Refused` when it nests deeper than MAX_DEPTH."""
    if isinstance(value, (dict, list)):
        try:
            depth = _depth(value)
        except RecursionError:
            raise Refused(TOO_DEEP, "hundreds of levels") from None
        if depth > MAX_DEPTH:
            raise Refused(TOO_DEEP, f"{depth} levels")
    return value


def _arrow_row(raw: bytes, message: str) -> Any:
    """A line orjson refused, as pyarrow (swift's reader) reads it: NaN/Infinity literals are fine there."""
    import pyarrow
    from pyarrow import json as arrow_json

    if raw.startswith(BOM):  # pyarrow skips one opening its input, but swift reads the file, not this line
        raise Refused(UNPARSEABLE, "a byte order mark inside the file")
    try:
        table = arrow_json.read_json(io.BytesIO(raw))
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as exc:
        text = str(exc).removeprefix("JSON parse error: ").removesuffix(" in row 0")
        if "specified twice" in text:
            raise Refused(DUPLICATE_KEY, text) from None
        raise Refused(UNPARSEABLE, message) from None
    if table.num_rows != 1:
        raise Refused(UNPARSEABLE, message)
    return table.to_pylist()[0]


def in_line(message: str, raw: bytes) -> str:
    """A JSON error's position as a place in this one line (`file:LINE` names the line; the parser counts the
    line's own newline as a second line)."""
    found = _POSITION.search(message)
    if not found:
        return message
    char = int(found.group(1))
    where = "at the end of the line" if char >= len(raw.rstrip()) else f"at character {char + 1} of the line"
    return message[: found.start()] + where + message[found.end() :]


def parse_line(raw: bytes) -> Any:
    """One JSON line as swift's reader takes it; `Refused` when it would fail the file on it.

    A key given twice: every key has one colon, so it is a colon of `raw` that the parsed value, dumped again,
    no longer has (a string's colons are in both); exact unless a colon is escaped (\\u003a), where the slower
    parse that sees every key decides.
    """
    try:
        value = loads(raw)
    except ValueError as exc:  # also not UTF-8 (orjson and json both raise a ValueError subclass)
        if str(exc).startswith("depth limit exceeded"):  # over 1000 levels (and pyarrow takes minutes on it)
            raise Refused(TOO_DEEP, "over 1000 levels") from None
        return _shallow(_arrow_row(raw, in_line(str(exc).split("\n")[0], raw)))
    if type(value) is dict or type(value) is list:
        if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # else it cannot nest that deep
            _shallow(value)
        if raw.count(b":") != dumps(value).count(b":") or b"\\u003" in raw:
            json.loads(raw, object_pairs_hook=_pairs)  # refuses the key given twice, by name
    return value


def refuse_special(path: str) -> None:
    """A local dataset path (file or folder) must hold regular files only: a device or FIFO never ends."""
    inside = [path]
    if os.path.isdir(path):
        inside = [os.path.join(top, name) for top, _, names in os.walk(path) for name in sorted(names)]
    for name in inside:
        try:
            mode = os.stat(name).st_mode
        except OSError:
            continue  # missing: the existence check names it
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise MhsftError(
                f"dataset {display(name)} is not a regular file (a device, FIFO or socket): ms-swift would wait on "
                "it or read without end. Give a .jsonl file, one row a line, or a folder of such files."
            )


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
    if head.startswith(BOM) and head[3:].lstrip()[:1] == b"[":
        raise MhsftError(
            f"dataset {where} is a JSON array that starts with a UTF-8 byte order mark, which ms-swift's reader "
            "refuses. Save it without the mark (UTF-8, not UTF-8-BOM), or as JSON lines.",
            DATA_CHECK,
        )
    return "array" if head.lstrip()[:1] == b"[" else "lines"  # datasets reads any file opening with [ as one


def _parsed(line: bytes | int) -> Any:
    """A line as swift's reader takes it, or `Refused` (an int: the size of a line too long to read)."""
    if type(line) is int:
        return Refused(TOO_LONG_LINE, f"{line / (1 << 20):.0f} MiB")
    try:
        return parse_line(line)
    except Refused as refused:
        return refused


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, row or `Refused`) of the non-blank lines, read in blocks (a leading byte order mark
    dropped); a line over MAX_LINE_BYTES is refused by its size, never held whole."""
    size = min(BLOCK, MAX_LINE_BYTES)
    number, carry, skipped = 0, b"", -1  # skipped >= 0: inside an over-long line, that many bytes of it read
    with path.open("rb") as f:
        block = f.read(size).removeprefix(BOM)
        while block:
            if skipped >= 0:
                cut = block.find(b"\n")
                if cut < 0:
                    skipped += len(block)
                    block = f.read(size)
                    continue
                number += 1
                yield number, _parsed(skipped + cut)
                skipped, block = -1, block[cut + 1 :]
            lines = block.split(b"\n")
            lines[0] = carry + lines[0]
            carry = lines.pop()
            for line in lines:  # only the first can be too long: the others fit in a block
                number += 1
                if line and not line.isspace():
                    if len(line) > MAX_LINE_BYTES:
                        yield number, _parsed(len(line))
                        continue
                    try:
                        yield number, parse_line(line)
                    except Refused as refused:
                        yield number, refused
            if len(carry) > MAX_LINE_BYTES:
                skipped, carry = len(carry), b""
            block = f.read(size)
    if skipped >= 0 or carry.strip():
        yield number + 1, _parsed(skipped if skipped >= 0 else carry)


def _items(items: list[Any]) -> Iterator[tuple[int, Any]]:
    for number, item in enumerate(items, 1):
        try:
            yield number, _shallow(item)
        except Refused as refused:
            yield number, refused


def _rows(path: Path, kind: str) -> Iterator[tuple[int, Any]]:
    """(line or item number, row as swift reads it, or `Refused` when swift fails the file on it)."""
    if kind == "array":
        try:
            items = json.loads(path.read_bytes())
        except RecursionError:
            raise MhsftError(
                f"dataset {display(path)} holds values nested deeper than {MAX_DEPTH} levels, which ms-swift's reader "
                "refuses. Flatten those values (or store them as JSON strings).",
                DATA_CHECK,
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise MhsftError(
                f"dataset {display(path)} is not valid JSON ({exc}). Fix the file, or write it as "
                "JSON lines (.jsonl), one row a line, so a broken row can be named by its line.",
                DATA_CHECK,
            ) from None
        yield from _items(items if isinstance(items, list) else [items])
        return
    yield from _lines(path)


def scan(path: Path) -> FileScan:
    """Scan one local dataset file (streamed): rows, layout, and problems by cause with examples."""
    kind = _kind(path)
    result = FileScan(path)
    kinds: dict[str, int] = {}
    firsts: dict[str, list[int]] = {}  # the first lines of each layout, to name the odd ones
    for number, row in _rows(path, kind):
        result.rows += 1
        result.numbers.append(number)
        if isinstance(row, Refused):
            result.add(row.cause, number, row.detail)
            result.sigs.append(0)
            continue
        if not isinstance(row, dict):
            result.add(NOT_OBJECT, number, type(row).__name__)
            result.sigs.append(0)
            continue
        name = layout(row)
        result.columns.update(row)
        result.sigs.append(signature(row, name))
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


def joined(folder: Path, scans: list[FileScan]) -> FileScan:
    """One scan of a folder's files, which swift reads as one table: rows in file order, numbered by file and
    line (`FileScan.place` names them)."""
    import numpy as np

    out = FileScan(folder, layout=scans[0].layout, parts=tuple(s.path for s in scans))
    for i, found in enumerate(scans):
        high = np.uint64(i << FILE_BITS)
        out.rows += found.rows
        out.numbers.frombytes((np.frombuffer(found.numbers, dtype=np.uint64) | high).tobytes())
        out.sigs.extend(found.sigs)
        out.lines.update({number | i << FILE_BITS: cause for number, cause in found.lines.items()})
        out.columns |= found.columns
        for name, cause in found.causes.items():
            into = out.causes.setdefault(name, Cause())
            into.count += cause.count
            into.examples += cause.examples[: EXAMPLES - len(into.examples)]
    return out


def signature(row: dict[str, Any], kind: str) -> int:
    """A fingerprint of a row of layout `kind`: its dialogue (the non-system texts in order) as ms-swift
    standardises it, to tell which source rows are in the cached dataset swift wrote; 0 where none is made."""
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
        return 0
    return fingerprint(texts)


def fingerprint(texts: list[Any]) -> int:
    """The 64-bit fingerprint (never 0) of a list of turn texts (shared with the worker that reads swift's output)."""
    try:
        blob = dumps(texts)
    except TypeError:  # what orjson does not write (an int over 64 bits): the standard module
        blob = json.dumps(texts, default=str).encode()
    return xxh3_64_intdigest(blob) or 1


def scannable(path: str) -> bool:
    """Whether the line scan reads this dataset entry (a local .jsonl/.json file, not a folder or hub id)."""
    return path.endswith(SCANNED_SUFFIXES) and not os.path.isdir(path)
