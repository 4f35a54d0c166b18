"""One value checked against a swift argument's kind, list-ness and choices; backend aliases."""

from __future__ import annotations

from typing import Any

from mhsft.errors import MhsftError
from mhsft.recipe.argv import check_token, token
from mhsft.recipe.load import Expanded, type_name
from mhsft.recipe.swift_args import specs

BACKEND_ALIASES = {"pt": "transformers"}
# the inference backends' settings -> their ms-swift 4.6 argument names (4.6 prefixes lmdeploy/vllm/sglang options);
# the CLI's --tp/--session-len/--cache-fraction and the recipe's old unprefixed names are both read from here
BACKEND_SETTINGS = {
    "lmdeploy": {
        "tp": "lmdeploy_tp",
        "session_len": "lmdeploy_session_len",
        "cache_fraction": "lmdeploy_cache_max_entry_count",
    },
    "vllm": {
        "tp": "vllm_tensor_parallel_size",
        "session_len": "vllm_max_model_len",
        "cache_fraction": "vllm_gpu_memory_utilization",
    },
    "sglang": {
        "tp": "sglang_tp_size",
        "session_len": "sglang_context_length",
        "cache_fraction": "sglang_mem_fraction_static",
    },
}


def error(where: str, message: str) -> MhsftError:
    """An error about the value at `where` (a file, section and key, or an option)."""
    return MhsftError(f"{where}: {message}")


def plain(value: Any) -> bool:
    """Only strings, numbers, booleans and arrays/tables of them (no TOML dates, no NUL characters)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, str):
        return "\x00" not in value
    return isinstance(value, (bool, int, float))


def _scalar_ok(kind: str, value: Any) -> bool:
    if not plain(value):
        return False
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    if kind == "json":
        return isinstance(value, (str, dict, list))
    return kind == "str" and isinstance(value, (str, int, float))


BOOL_WORDS = {w: True for w in ("true", "yes", "y", "t", "1")} | {w: False for w in ("false", "no", "n", "f", "0")}


_EXPECT = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "json": "a table or a JSON string",
}


def shown(value: Any) -> str:
    """A value for an error message, unescaped so that redaction still recognises any secret in it."""
    if isinstance(value, str):
        return f'"{value}"'
    return str(value) if isinstance(value, (bool, int, float)) else ""


def typed(kind: str, value: Any, where: str) -> Any:
    """A value that was exactly one `${VAR}` converted to `kind` (int, float, bool); other values unchanged."""
    if not isinstance(value, Expanded) or kind not in ("int", "float", "bool"):
        return value
    text = value.strip()
    try:
        if kind == "bool" and text.lower() in BOOL_WORDS:
            return BOOL_WORDS[text.lower()]
        if kind != "bool":
            return int(text) if kind == "int" else float(text)
    except ValueError:
        pass
    raise error(
        where,
        f"${{{value.variable}}} expands to {shown(str(value))}, but this key takes {_EXPECT[kind]}. Set "
        f"{value.variable} (in your environment or .env) to {_EXPECT[kind]}, or change the default after :-.",
    )


def check_value(kind: str, is_list: bool, choices: tuple[Any, ...], value: Any, where: str, argv: bool = True) -> Any:
    """Check one value against a kind (and list-ness, choices); return it typed, lists kept as lists.

    `argv`: the value goes on a command line, so it must not read as an option there.
    """
    items = value if is_list and isinstance(value, list) else [value]
    if not is_list and isinstance(value, list) and kind != "json":
        raise error(where, f"expected {_EXPECT[kind]}, got an array. This option takes a single value.")
    checked = []
    for item in items:
        item = typed(kind, item, where)
        if not _scalar_ok(kind, item) or (is_list and kind == "str" and not isinstance(item, str)):
            many = " (or an array of them)" if is_list else ""
            nul = isinstance(item, str) and "\x00" in item
            got = "a string with a NUL character" if nul else f"{type_name(item)} {shown(item)}"
            raise error(where, f"expected {_EXPECT[kind]}{many}, got {got.strip()}.")
        if choices and str(item) not in {str(c) for c in choices}:
            raise error(where, f"{shown(item)} is not one of {', '.join(map(str, choices))}.")
        check_token(token(item), where, option_like=argv)
        checked.append(item)
    return checked if is_list and isinstance(value, list) else checked[0]


def check_options(command: str, options: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Values given as CLI options for swift arguments, checked like recipe values.

    `options` maps a swift argument name to (the option as typed, its value); None values are left out.
    """
    known = specs(command)
    out = {}
    for name, (option, value) in options.items():
        if value is None:
            continue
        spec = known[name]
        out[name] = check_value(spec.kind, spec.list, spec.choices, value, f"option {option}")
    return out


def backend_name(value: str, where: str) -> tuple[str, str | None]:
    """An inference backend with the old `pt` translated (and a warning saying so)."""
    if value in BACKEND_ALIASES:
        return BACKEND_ALIASES[value], f"{where}: `{value}` is the old name of `{BACKEND_ALIASES[value]}`; translated."
    return value, None
