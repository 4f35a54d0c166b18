"""Reading recipes: TOML files, `extends` chains, `${VAR}` interpolation and `--set` overrides.

The result is a plain merged dict plus, for every value, where it came from, so that validation errors can
name the file, section and key.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.environment import Environment, is_secret_key, is_secret_name
from mhsft.errors import MhsftError
from mhsft.paths import display
from mhsft.recipe import builtin
from mhsft.recipe.swift_args import suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("launch", "swanlab", "env", "sft", "infer", "deploy", "export", "eval", "data_check", "slurm", "sweep")
TOP_KEYS = ("name", "description", "extends")
DEFAULTS: dict[str, dict[str, Any]] = {"swanlab": {"project": "mhsft", "mode": "cloud"}}
DEFAULT_ORIGIN = "mhsft's built-in defaults"
SET_ORIGIN = "--set"
MAX_FILE_BYTES = 1 << 20  # a recipe is a few KiB; this bounds what a mistaken path (/dev/zero) costs
MAX_DEPTH = 32  # arrays/tables nested deeper than this are a mistake (swift's own JSON options need ~4)
MAX_CHAIN = 32  # `extends` levels
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Expanded(str):
    """A value that was exactly one `${VAR}`: validation gives it the type its key expects (int, float, bool)."""

    variable: str

    def __new__(cls, text: str, variable: str) -> Expanded:
        value = super().__new__(cls, text)
        value.variable = variable
        return value


@dataclass
class RawRecipe:
    """A recipe after extends, interpolation and overrides, before validation."""

    path: Path
    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    chain: list[Path] = field(default_factory=list)
    stray: list[tuple[Path, str]] = field(default_factory=list)  # unknown top-level keys (file, key)

    def where(self, section: str, key: str | None = None) -> str:
        """'recipes/x.toml, [sft] model' for messages."""
        origin = self.origins.get(f"{section}.{key}" if key else section) or display(self.path)
        if key is None:
            return f"{origin}, [{section}]" if section in SECTIONS else f"{origin}, `{section}`"
        return f"{origin}, [{section}] {key}"


def _read_regular(path: Path, role: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES; devices, FIFOs and sockets are refused unopened."""
    shown = display(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise MhsftError(
            f"{role} file {shown} does not exist. Check the path, or run `mhsft recipes list` "
            "to see the built-in recipes."
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MhsftError(
            f"{role} file {shown} cannot be read ({reason}). Give the path of a .toml file you can read."
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket, not a regular file"
            raise MhsftError(f"{role} file {shown} cannot be read (it is {kind}). Give the path of a .toml file.")
        raw = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MhsftError(
            f"{role} file {shown} cannot be read ({exc.strerror or exc}). Give the path of a .toml file."
        ) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise MhsftError(
            f"{role} file {shown} is larger than {MAX_FILE_BYTES >> 20} MiB: that is not a recipe. Check the path."
        )
    return raw


def depth(value: Any) -> int:
    """How deeply arrays and tables nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def loads(text: str, where: str) -> dict[str, Any]:
    """`tomllib.loads`, with absurd nesting or integers as one-paragraph errors (syntax errors pass through)."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        data = None  # reported below with the other nesting errors
    except ValueError as exc:
        if isinstance(exc, tomllib.TOMLDecodeError):
            raise
        reason = str(exc).split(":")[0]  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise MhsftError(f"{where} holds a value that cannot be read ({reason}). Write a smaller number.") from None
    if data is None or depth(data) > MAX_DEPTH:
        raise MhsftError(
            f"{where} nests arrays or tables more than {MAX_DEPTH} levels deep. No swift option needs that; "
            "flatten the value."
        )
    return data


def read_toml(path: Path, role: str = "recipe") -> dict[str, Any]:
    """Parse one TOML file, turning every way it can be unreadable into a clear error."""
    shown = display(path)
    raw = _read_regular(path, role)
    try:
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MhsftError(
            f"{role} file {shown} is not a UTF-8 text file (it looks binary). A recipe is a TOML "
            "text file; start from `mhsft recipes new NAME --from qwen7b`."
        ) from None
    try:
        data = loads(text, f"{role} file {shown}")
    except tomllib.TOMLDecodeError as exc:
        raise MhsftError(
            f"{role} file {shown} has a TOML syntax error: {exc}. Fix that line; strings need "
            'quotes, e.g. model = "Qwen/Qwen2.5-7B-Instruct".'
        ) from None
    if not data:
        raise MhsftError(
            f"{role} file {shown} is empty: it holds no settings. A recipe needs at least "
            "[sft] model and dataset; start from `mhsft recipes new NAME --from qwen7b`."
        )
    return data


def _check_layout(data: dict[str, Any], path: Path) -> None:
    """Refuse a top-level key or section of the wrong type (unknown top-level keys go to `RawRecipe.stray`, which
    validation reports together with every other problem)."""
    for key, value in data.items():
        if key in TOP_KEYS:
            if not isinstance(value, str):
                raise MhsftError(
                    f'{display(path)}, `{key}`: expected a string, got {type_name(value)}. Write it as {key} = "...".'
                )
        elif key in SECTIONS and not isinstance(value, dict):
            raise MhsftError(
                f"{display(path)}, `{key}`: expected a table [{key}], got {type_name(value)}. "
                f"Write the section as [{key}] followed by key = value lines."
            )


def type_name(value: object) -> str:
    """TOML's word for the type of a parsed value."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return names.get(type(value), "a date/time" if hasattr(value, "isoformat") else type(value).__name__)


def resolve(ref: str, base_dir: Path | None = None) -> Path | None:
    """A recipe reference as a file: a path (relative to `base_dir`), else a built-in recipe name."""
    path = Path(os.path.expanduser(ref))
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if os.path.isfile(path):
        return Path(os.path.abspath(path))  # keeps symlinked names as typed, for messages
    found = builtin.path(ref)
    if found is None and os.path.exists(path):  # e.g. a folder: read_toml explains why it cannot be read
        return Path(os.path.abspath(path))
    return found


def _load_chain(path: Path, stack: tuple[Path, ...]) -> list[tuple[Path, dict[str, Any]]]:
    if len(stack) >= MAX_CHAIN:
        raise MhsftError(
            f"{display(path)}: `extends` goes more than {MAX_CHAIN} levels deep. Shorten the chain of recipes."
        )
    seen = [p.resolve() for p in stack]
    if path.resolve() in seen:
        cycle = " -> ".join(display(p) for p in (*stack[seen.index(path.resolve()) :], path))
        raise MhsftError(f"recipe `extends` makes a cycle: {cycle}. Remove `extends` from one of these files.")
    data = read_toml(path)
    _check_layout(data, path)
    parent_ref = data.get("extends")
    if parent_ref is None:
        return [(path, data)]
    parent = resolve(parent_ref, path.parent)
    if parent is None:
        raise MhsftError(
            f"{display(path)}, `extends`: {parent_ref!r} is neither a file (looked in "
            f"{display(path.parent)}) nor a built-in recipe ({', '.join(builtin.names())}). "
            "Fix the path; it is relative to the recipe that extends it."
        )
    return [*_load_chain(parent, (*stack, path)), (path, data)]


def _in_value(message: str) -> str:
    """A TOML error about `v = VALUE` with its position counted in VALUE."""
    found = re.search(r"\(at line 1, column (\d+)\)", message)
    if not found:
        return message.replace(" (at end of document)", " (at the end of the value)")
    return message[: found.start()] + f"(at character {int(found.group(1)) - 4} of the value)"


def parse_override(text: str) -> tuple[str, str | None, Any]:
    """`section.key=value` -> (section, key, value); value in TOML syntax, else taken as a plain string."""
    if "=" not in text:
        raise MhsftError(
            f"--set {text!r}: expected section.key=value, e.g. --set sft.learning_rate=1e-4 or "
            "--set swanlab.project=my-project."
        )
    target, raw = text.split("=", 1)
    section, _, key = target.strip().partition(".")
    if not key and section == "extends":
        raise MhsftError(f"--set {text!r}: `extends` cannot be overridden; write it in the recipe file.")
    if not key and section in TOP_KEYS:
        return section, None, raw
    if section not in SECTIONS or not key:
        raise MhsftError(
            f"--set {text!r}: `{target}` is not section.key.{suggest(section, SECTIONS)} "
            f"The sections are {', '.join(SECTIONS)}; e.g. --set sft.num_train_epochs=2."
        )
    try:
        value = loads(f"v = {raw}", f"--set {target.strip()}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.strip()[:1] in ("[", "{", '"', "'"):  # meant as TOML: a plain string would hide the mistake
            raise MhsftError(
                f"--set {text!r}: the value starts like a TOML array, table or quoted string but is not valid TOML "
                f"({_in_value(str(exc))}). Quote each item, e.g. --set 'sft.dataset=[\"a.jsonl\"]'."
            ) from None
        value = raw
    return section, key.strip(), value


def _interpolate(value: Any, env: Environment, where: str) -> Any:
    if isinstance(value, list):
        return [_interpolate(v, env, where) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env, where) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if is_secret_name(name):
            raise MhsftError(
                f"{where}: ${{{name}}} would copy a secret into the recipe, and from there onto swift's "
                "command line. Secrets reach swift only through its environment: keep it in .env and "
                "remove this reference."
            )
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        raise MhsftError(
            f"{where}: ${{{name}}} is not set and has no default. Set {name} in your environment "
            f"or .env, or write ${{{name}:-default}} in the recipe."
        )

    whole = _VAR.fullmatch(value)
    if whole and whole.group(1):
        return Expanded(substitute(whole), whole.group(1))
    return _VAR.sub(substitute, value)


def load(ref: str, env: Environment, overrides: list[str] | tuple[str, ...] = ()) -> RawRecipe:
    """Load a recipe file or built-in name with its `extends` chain, overrides and interpolation."""
    path = resolve(ref)
    if path is None:
        raise MhsftError(
            f"recipe file {ref} does not exist and is not a built-in recipe name "
            f"({', '.join(builtin.names())}). Check the path, or create one with "
            "`mhsft recipes new NAME --from qwen7b`."
        )
    chain = _load_chain(path, ())
    recipe = RawRecipe(path=path, data={s: {} for s in SECTIONS}, chain=[p for p, _ in chain])
    recipe.stray = [(p, key) for p, d in chain for key in d if key not in TOP_KEYS + SECTIONS]
    layers = [(DEFAULT_ORIGIN, DEFAULTS)] + [(display(p), d) for p, d in chain]
    for origin, data in layers:
        for section in SECTIONS:
            for key, value in data.get(section, {}).items():
                recipe.data[section][key] = value
                recipe.origins[f"{section}.{key}"] = origin
        if "description" in data:
            recipe.data["description"] = data["description"]
    recipe.data["name"] = chain[-1][1].get("name", path.stem)
    for text in overrides:
        section, key, value = parse_override(text)
        if key is None:
            recipe.data[section] = value
            recipe.origins[section] = SET_ORIGIN
        else:
            recipe.data[section][key] = value
            recipe.origins[f"{section}.{key}"] = SET_ORIGIN
    for section in SECTIONS:
        for key, value in recipe.data[section].items():
            if not is_secret_key(section, key):  # validation rejects those without touching their value
                recipe.data[section][key] = _interpolate(value, env, recipe.where(section, key))
    return recipe
