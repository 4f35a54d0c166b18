"""`mhsft recipes import`: a recipe from swift commands (a shell script or pasted line), a swift YAML/JSON config,
or a finished run's args.json. Pure translation: it reads text and mappings and starts nothing.

Each source becomes, per swift command, a list of (flag, value tokens) and environment prefixes; one translator
turns those into recipe tables, noting every flag it renamed, dropped or moved and every secret it kept out.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mhsft.environment import hint, is_secret_key, is_secret_name
from mhsft.errors import MhsftError
from mhsft.paths import display
from mhsft.recipe.swift_args import COMMANDS, ArgSpec, specs
from mhsft.recipe.toml_out import dumps
from mhsft.recipe.validate import LAUNCH_KEYS, LMDEPLOY_RENAMES, REMOVED, SAFE_RENAMES, SWANLAB_KEYS, VLLM_RENAMES
from mhsft.recipe.values import BOOL_WORDS

LAUNCH_VARS = {var: key for key, (_, var) in LAUNCH_KEYS.items()}
SWANLAB_VARS = {"SWANLAB_API_HOST": "api_host", "SWANLAB_WEB_HOST": "web_host", "SWANLAB_LOG_DIR": "log_dir"}
SECRET_FLAGS = {
    "swanlab_token": "SWANLAB_API_KEY",
    "hub_token": "MODELSCOPE_API_TOKEN",
    "api_key": "MHSFT_DEPLOY_API_KEY",
}
CHECKPOINT_FLAGS = ("adapters", "ckpt_dir", "model")  # mhsft infer/deploy/export pass the run's checkpoint
SWIFT_DEFAULT_REPORTERS = ["tensorboard"]
_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
MAX_SOURCE_BYTES = 1 << 20
FIRST = ("model", "model_type", "template", "tuner_type", "dataset", "val_dataset", "cached_dataset", "output_dir")
_VERSION_DIR = re.compile(r"/v\d+-\d{8}-\d{6}/?$")


@dataclass
class Imported:
    """The recipe tables, what was changed and why, and the `.env` lines the user should write (NAME, value)."""

    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dotenv: list[tuple[str, str]] = field(default_factory=list)
    origin: str = ""

    def table(self, section: str) -> dict[str, Any]:
        return self.data.setdefault(section, {})

    def toml(self) -> str:
        """The recipe file: a header naming the source and the notes as comments, then the tables."""
        header = [f"# imported from {self.origin} by `mhsft recipes import`", *(f"# - {n}" for n in self.notes)]
        body = dumps({"description": f"imported from {self.origin}", **self.data})
        return "\n".join(line.replace("\n", " ") for line in header) + "\n\n" + body

    def literal_secrets(self) -> list[str]:
        """The secret values written out in the source (not `${VAR}` references): never to be printed."""
        return [value for _, value in self.dotenv if not value.startswith("${")]

    def env_lines(self) -> list[str]:
        """The `.env` lines to show: a literal secret masked, a `${VAR}` reference as written."""
        return [f"{name}={value if value.startswith('${') else hint(value)}" for name, value in self.dotenv]


@dataclass
class Command:
    """One swift command: its subcommand, environment prefixes and `--flag value...` pairs as written."""

    name: str
    env: dict[str, str]
    flags: list[tuple[str, list[str]]]
    where: str


# ---- reading shell text -----------------------------------------------------------------------------------


def _expand(text: str, shell: dict[str, str]) -> str:
    """Shell variables set earlier in the script substituted; others kept as the recipe's `${VAR[:-default]}`."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in shell:
            return shell[name]
        return f"${{{name}:-{match.group(2)}}}" if match.group(2) is not None else f"${{{name}}}"

    return _SHELL_VAR.sub(sub, text)


def _uncomment(line: str) -> str:
    """A shell line without its `#` comment (a `#` inside quotes or a word, as in `data#500`, stays)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _tokens(text: str) -> list[str]:
    """Shell words with `\\` continuations joined, comments dropped, and separators (; && | newline) as tokens."""
    text = "\n".join(_uncomment(line) for line in re.sub(r"\\\r?\n", " ", text).splitlines())
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:  # an unclosed quote
        raise MhsftError(
            f"the shell text cannot be read ({exc}). Close the quote, or paste the whole command."
        ) from None


def _segments(tokens: list[str]) -> list[list[str]]:
    """Commands between separators, each cut at its first redirection (`> log 2>&1`)."""
    out, current = [], []
    for tok in [*tokens, "\n"]:
        if tok and set(tok) <= set(";&|\n"):
            if current:
                out.append(current)
            current = []
        else:
            current.append(tok)
    cut = []
    for seg in out:
        end = next((i for i, t in enumerate(seg) if set(t) <= set("<>&") and t), len(seg))
        if end and end < len(seg) and seg[end - 1].isdigit():
            end -= 1
        cut.append(seg[:end])
    return [s for s in cut if s]


def _flags(words: list[str], where: str, notes: list[str]) -> list[tuple[str, list[str]]]:
    """`--name v1 v2 --other=v` as (name, values); a word before the first flag is noted and skipped."""
    flags: list[tuple[str, list[str]]] = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            flags.append((name.replace("-", "_"), [value] if eq else []))
        elif flags:
            flags[-1][1].append(word)
        else:
            notes.append(f"{where}: `{word}` is not a --flag; left out.")
    return flags


def commands_from_shell(text: str, where: str, notes: list[str], base: Path | None = None) -> list[Command]:
    """The swift commands of a script, with `export`/assigned variables applied as later commands see them; a
    `swift sft config.yaml ...` reads the config (relative to `base`, the script's folder)."""
    shell: dict[str, str] = {}
    exported: dict[str, str] = {}
    found: list[Command] = []
    for words in _segments(_tokens(text)):
        if words[0] == "export":
            words = words[1:]
            for word in words:
                match = _ASSIGN.match(word)
                if match:
                    shell[match.group(1)] = exported[match.group(1)] = _expand(match.group(2), shell)
            continue
        prefix: dict[str, str] = {}
        while words and _ASSIGN.match(words[0]):
            name, value = _ASSIGN.match(words[0]).groups()
            prefix[name] = _expand(value, shell)
            words = words[1:]
        if not words:
            shell |= prefix  # NAME=value alone on its line: a shell variable for later lines
            continue
        while words and words[0] in ("nohup", "time", "exec", "env"):
            words = words[1:]
        if not words or words[0] != "swift":
            continue
        if len(words) < 2 or words[1] not in COMMANDS:
            sub = words[1] if len(words) > 1 else ""
            notes.append(f"{where}: `swift {sub}` left out: mhsft runs swift {', '.join(COMMANDS)}.")
            continue
        label = f"{where} (swift {words[1]})"
        args = [_expand(w, shell) for w in words[2:]]
        config = Command(words[1], {}, [], label)
        if args and args[0].endswith((".yaml", ".yml", ".json")) and not args[0].startswith("--"):
            path = (base or Path.cwd()) / Path(args[0]).expanduser()
            if path.is_file():
                config = command_from_config(_parse(_read(path), path), label)
                notes.append(f"{label}: read its config {args[0]} (the flags after it win, as in swift).")
            else:
                notes.append(
                    f"{label}: its config {args[0]} was not found (looked in {display(path.parent)}); left out."
                )
            args = args[1:]
        env = {**config.env, **exported, **prefix}  # swift's config ENV never replaces a variable already set
        found.append(Command(words[1], env, [*config.flags, *_flags(args, label, notes)], label))
    return found


# ---- reading configs and args.json ------------------------------------------------------------------------


def config_tokens(value: Any) -> list[str]:
    """A config value as swift's own config expansion turns it into argv tokens (`swift/cli/main.py`)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [json.dumps(value, ensure_ascii=False)]
    return [str(value)]


def command_from_config(config: Any, where: str) -> Command:
    """A swift YAML/JSON config (`swift sft config.yaml`): its keys are flags, its ENV table sets variables."""
    if not isinstance(config, dict):
        raise MhsftError(f"{where}: a swift config is a table of arguments, got {type(config).__name__}.")
    env = config.get("ENV") or {}
    if not isinstance(env, dict):
        raise MhsftError(f"{where}: `ENV` must be a table of variables, got {type(env).__name__}.")
    flags = [(str(k).replace("-", "_"), config_tokens(v)) for k, v in config.items() if k != "ENV" and v is not None]
    return Command("sft", {str(k): str(v) for k, v in env.items()}, flags, where)


def _same(spec: ArgSpec, value: Any, default: Any) -> bool:
    """Whether an args.json value is what swift has when the flag is not given (empty and None alike)."""
    if value in (None, [], {}, "") and default in (None, [], {}, ""):
        return True
    if default is None:
        return False
    return _folded(typed_value(spec, config_tokens(value))) == _folded(typed_value(spec, config_tokens(default)))


def _folded(value: Any) -> str:
    """A value compared case-blind (`init_weights` is the string 'true' by default and True once parsed)."""
    return json.dumps(value, sort_keys=True).lower()


def _derived(args: dict[str, Any]) -> dict[str, Any]:
    """What ms-swift 4.6 fills in itself (`__post_init__`) from the other arguments when a flag is not given."""
    out_dir = str(args.get("output_dir") or "")
    dtype = args.get("torch_dtype")
    return {
        "run_name": out_dir,
        "logging_dir": f"{out_dir}/runs",
        "eval_steps": args.get("save_steps"),
        "eval_strategy": args.get("save_strategy")
        if args.get("val_dataset") or args.get("split_dataset_ratio")
        else "no",
        "metric_for_best_model": "loss",
        "greater_is_better": False,
        "accelerator_config": {"dispatch_batches": False},
        "vit_gradient_checkpointing": args.get("gradient_checkpointing"),
        "task_type": "causal_lm",
        "truncation_strategy": "delete",
        "use_chat_template": True,
        "bnb_4bit_compute_dtype": dtype,
        "stream": False,
        "lazy_tokenize": False,
        "bf16": dtype == "bfloat16",
        "fp16": dtype in ("float16", "float32"),
        "dataloader_num_workers": 0,
    }


def command_from_args_json(args: dict[str, Any], where: str, notes: list[str]) -> Command:
    """A run's args.json (every argument after swift's own defaults and derivations) reduced to what was set."""
    known = specs("sft")
    derived = _derived(args)
    flags: list[tuple[str, list[str]]] = []
    filled = []
    for key, value in args.items():
        if key not in known or value is None:
            continue
        if key in derived and _same(known[key], value, derived[key]):
            filled.append(key)
            continue
        if _same(known[key], value, known[key].default):
            continue
        if key == "output_dir" and args.get("add_version", True):
            value = _VERSION_DIR.sub("", str(value))
        flags.append((key, config_tokens(value)))
    if filled:
        notes.append(f"{where}: left out what swift derived itself from the other arguments: {', '.join(filled)}.")
    flags.sort(key=lambda flag: FIRST.index(flag[0]) if flag[0] in FIRST else len(FIRST))  # as a person writes it
    return Command("sft", {}, flags, where)


# ---- translating one command --------------------------------------------------------------------------------


def typed_value(spec: ArgSpec, tokens: list[str]) -> Any:
    """Argv tokens as the TOML value of `spec`'s kind; `${VAR}` text and anything unparseable stay strings."""
    items = [_typed(spec.kind, t) for t in tokens]
    return items if spec.list else items[0]


def _typed(kind: str, text: str) -> Any:
    if "${" in text:
        return text
    if kind == "bool" and text.lower() in BOOL_WORDS:
        return BOOL_WORDS[text.lower()]
    try:
        if kind == "int":
            number = float(text)
            return int(number) if number.is_integer() else number
        if kind == "float":
            number = float(text)
            return int(number) if number.is_integer() and abs(number) < 1e15 else number
    except ValueError:
        return text
    if kind == "json" and text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _name(command: str, flag: str, backend: str | None, where: str, notes: list[str]) -> str | None:
    """The ms-swift 4.6 name of `flag` (renames and unique prefixes translated, with a note), or None to drop."""
    known = specs(command)
    if flag in known:
        return flag
    renames = SAFE_RENAMES | (VLLM_RENAMES if backend == "vllm" else LMDEPLOY_RENAMES)
    if flag in renames and renames[flag] in known:
        notes.append(f"{where}: --{flag} is the old name of --{renames[flag]} (ms-swift 4.6); translated.")
        return renames[flag]
    if flag in REMOVED:
        notes.append(f"{where}: --{flag} left out: {REMOVED[flag]}.")
        return None
    prefixed = [k for k in known if k.startswith(flag)]
    if len(prefixed) == 1:
        notes.append(
            f"{where}: --{flag} is a prefix that swift's parser silently took as --{prefixed[0]}; written in full."
        )
        return prefixed[0]
    notes.append(
        f"{where}: --{flag} left out: not an argument of `swift {command}` in ms-swift 4.6 (swift would refuse it)."
    )
    return None


def _secret(out: Imported, name: str, value: str, where: str) -> None:
    """A secret value (literal or `${VAR}`) noted as a `.env` line, never as a recipe value."""
    if value == f"${{{name}}}" or value.startswith(f"${{{name}:-"):
        out.notes.append(f"{where}: {name} is read from your environment (or .env) by mhsft itself; left out.")
        return
    out.dotenv.append((name, value))
    shown = value if value.startswith("${") else "a literal value"
    out.notes.append(f"{where}: a secret ({shown}) kept out of the recipe: write {name} in .env (shown below).")


def _environment(out: Imported, cmd: Command) -> None:
    for var, value in cmd.env.items():
        if is_secret_name(var):
            _secret(out, var, value, cmd.where)
        elif var in LAUNCH_VARS:
            kind = LAUNCH_KEYS[LAUNCH_VARS[var]][0]
            out.table("launch")[LAUNCH_VARS[var]] = _typed(kind, value)
        elif var in SWANLAB_VARS:
            out.table("swanlab")[SWANLAB_VARS[var]] = value
        elif var.startswith("SWANLAB_"):
            out.notes.append(f"{cmd.where}: {var} left out: mhsft sets SwanLab's variables from [swanlab] itself.")
        else:
            out.table("env")[var] = value


def _swanlab(out: Imported, key: str, value: Any, where: str) -> None:
    if key in SWANLAB_KEYS:
        out.table("swanlab")[key] = value
    else:
        out.notes.append(
            f"{where}: --swanlab_{key} left out: mhsft does not support it ([swanlab] keys: {', '.join(SWANLAB_KEYS)})."
        )


def translate(out: Imported, cmd: Command, training_env: dict[str, str]) -> None:
    """Add one swift command to the recipe tables of `out` (`training_env`: the variables the training had)."""
    section = cmd.name
    if section == "sft":
        _environment(out, cmd)
    elif own := [k for k, v in cmd.env.items() if training_env.get(k) != v]:
        out.notes.append(
            f"{cmd.where}: {', '.join(own)} left out: `mhsft {section}` runs with the training's [launch] gpus "
            "and [env]."
        )
    flags = dict((f, v) for f, v in cmd.flags)
    backend = (flags.get("infer_backend") or [None])[0]
    table = out.table(section)
    for flag, tokens in cmd.flags:
        if is_secret_key(section, flag):
            target = SECRET_FLAGS.get(flag)
            if flag == "hub_token" and str((flags.get("use_hf") or ["false"])[0]).lower() in ("true", "1"):
                target = "HF_TOKEN"
            if target and tokens:
                _secret(out, target, tokens[0], cmd.where)
            else:
                out.notes.append(f"{cmd.where}: --{flag} (a secret) left out: mhsft never passes it to swift.")
            continue
        name = _name(section, flag, backend, cmd.where, out.notes)
        if name is None:
            continue
        spec = specs(section)[name]
        if not tokens and spec.kind == "bool":
            tokens = ["true"]
        if not tokens:
            out.notes.append(f"{cmd.where}: --{flag} has no value; left out.")
            continue
        value = typed_value(spec, tokens) if spec.list or len(tokens) == 1 else " ".join(tokens)
        if section == "sft" and name.startswith("swanlab_"):
            _swanlab(out, name.removeprefix("swanlab_"), value, cmd.where)
        elif name == "report_to":
            kept = [r for r in (value if isinstance(value, list) else [value]) if r not in ("swanlab", "none")]
            out.notes.append(
                f"{cmd.where}: --report_to {' '.join(map(str, tokens))} "
                + (
                    f"kept as {kept}; mhsft adds swanlab itself."
                    if kept and kept != SWIFT_DEFAULT_REPORTERS
                    else "left out: mhsft always adds swanlab (after swift's default tensorboard)."
                )
            )
            if kept and kept != SWIFT_DEFAULT_REPORTERS:
                table[name] = kept
        elif section != "sft" and name in CHECKPOINT_FLAGS:
            out.notes.append(
                f"{cmd.where}: --{flag} left out: `mhsft {section}` passes the run's checkpoint itself "
                "(--checkpoint latest|best|PATH)."
            )
        elif section == "infer" and name == "dataset":
            table["val_dataset"] = value
            out.notes.append(f"{cmd.where}: --dataset written as val_dataset (batch inference in ms-swift 4.6).")
        else:
            table[name] = value
    if section != "sft" and not table:
        del out.data[section]


# ---- whole sources -------------------------------------------------------------------------------------------

ORDER = ("launch", "swanlab", "env", "sft", "infer", "deploy", "export")


def from_commands(commands: list[Command], where: str) -> Imported:
    """The recipe for a script's commands: its first `swift sft` and the infer/deploy/export lines after it."""
    out = Imported()
    trainings = [c for c in commands if c.name == "sft"]
    if not trainings:
        raise MhsftError(
            f"{where}: no `swift sft` command found. Give a shell script or a pasted `swift sft ...` line, a swift "
            "YAML/JSON config, or a run folder (one holding args.json)."
        )
    for extra in trainings[1:]:
        out.notes.append(f"{extra.where}: left out: a recipe holds one training; import it separately.")
    seen: set[str] = set()
    for cmd in commands:
        if cmd.name != "sft" and cmd.name in seen:
            out.notes.append(f"{cmd.where}: left out: a recipe holds one [{cmd.name}] table (the first is kept).")
            continue
        if cmd is trainings[0] or cmd.name != "sft":
            seen.add(cmd.name)
            translate(out, cmd, trainings[0].env)
    out.data = {s: out.data[s] for s in ORDER if out.data.get(s)}
    out.origin = where
    return out


def from_shell(text: str, where: str, base: Path | None = None) -> Imported:
    notes: list[str] = []
    out = from_commands(commands_from_shell(text, where, notes, base), where)
    out.notes[:0] = notes
    return out


def from_config(config: Any, where: str) -> Imported:
    return from_commands([command_from_config(config, where)], where)


def from_args_json(args: Any, where: str) -> Imported:
    if not isinstance(args, dict):
        raise MhsftError(f"{where}: an args.json holds a table of arguments, got {type(args).__name__}.")
    notes: list[str] = []
    out = from_commands([command_from_args_json(args, where, notes)], where)
    out.notes[:0] = notes
    return out


def _args_json_in(folder: Path) -> Path | None:
    """The args.json of a run folder: its own, else the newest `vN-*` folder's or checkpoint's inside it."""
    candidates = [folder / "args.json", *sorted(folder.glob("v*-*/args.json"), key=lambda p: p.stat().st_mtime)]
    found = [p for p in candidates if p.is_file()]
    return found[0] if found and found[0].parent == folder else (found[-1] if found else None)


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise MhsftError(f"{display(path)} is larger than 1 MiB: that is not a swift script or config.")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise MhsftError(
            f"{display(path)} cannot be read ({reason}). Give a shell script, a config or a run folder."
        ) from None


def _parse(text: str, path: Path) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(text)
        import yaml  # only for a YAML config

        return yaml.safe_load(text)
    except ValueError as exc:
        raise MhsftError(f"{display(path)} is not valid {path.suffix[1:].upper()} ({exc}). Fix the file.") from None
    except Exception as exc:  # yaml.YAMLError
        raise MhsftError(f"{display(path)} is not valid YAML ({str(exc).splitlines()[0]}). Fix the file.") from None


def import_source(source: str, stdin: str | None = None) -> Imported:
    """The recipe for SOURCE: `-` (stdin text), a run folder or args.json, a YAML/JSON config, a shell script,
    or a pasted command line."""
    if source == "-":
        return from_shell(stdin or "", "stdin")
    path = Path(source).expanduser()
    if path.is_dir():
        found = _args_json_in(path)
        if found is None:
            raise MhsftError(
                f"{display(path)} holds no args.json (nor a v*-* run folder with one). Give the folder swift wrote "
                "(output_dir/vN-...) or its args.json."
            )
        path = found
    if not path.is_file():
        if "swift" in source.split():
            return from_shell(source, "a pasted command")
        raise MhsftError(
            f"{source}: no such file or folder. Give a shell script, a swift YAML/JSON config, a run folder, "
            "`-` to read a pasted command from stdin, or the command itself in quotes."
        )
    text = _read(path)
    if path.suffix in (".yaml", ".yml", ".json"):
        data = _parse(text, path)
        is_run = path.name == "args.json" or (isinstance(data, dict) and "swift_version" in data)
        return from_args_json(data, display(path)) if is_run else from_config(data, display(path))
    return from_shell(text, display(path), path.parent)


def write(text: str, dest: Path, overwrite: bool = False) -> Path:
    """Write the recipe text to `dest` (.toml added), refusing to replace a file unless `overwrite`."""
    if dest.suffix != ".toml":
        dest = dest.with_name(f"{dest.name}.toml")
    if dest.exists() and not overwrite:
        raise MhsftError(f"{display(dest)} already exists. Choose another name, or pass --force to replace it.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MhsftError(
            f"cannot write {display(dest)} ({exc.strerror or exc}). Choose a folder you can write."
        ) from None
    return dest
