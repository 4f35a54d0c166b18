"""The environment mhsft runs swift in: real variables over `.env`, and which of them are secrets."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mhsft.errors import MhsftError

MASK = "****"
# A name is a secret when its last `_`-word is one of these (HF_TOKEN, DB_PASSWORD) or it is a known name;
# IMAGE_MAX_TOKEN_NUM or TOKENIZERS_PARALLELISM are not.
SECRET_WORDS = frozenset({"TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIALS", "PAT"})
KNOWN_SECRETS = frozenset(
    {
        "SWANLAB_API_KEY",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "MODELSCOPE_API_TOKEN",
        "MHSFT_DEPLOY_API_KEY",
    }
)
# ms-swift settings whose last word is TOKEN but which hold a vocabulary token ("yes"/"no"), not a secret
NOT_SECRETS = frozenset({"GENERATIVE_RERANKER_POSITIVE_TOKEN", "GENERATIVE_RERANKER_NEGATIVE_TOKEN"})
# swanlab reads SWANLAB_<NAME> for these nested settings tables as JSON; a plain string breaks every login/init
NESTED_SWANLAB = tuple(
    f"SWANLAB_{n}" for n in ("PROJECT", "EXPERIMENT", "RUN", "TERMINAL", "INTEGRATION", "CORE", "PROBE")
)
MIN_SECRET_LEN = 8  # shorter values would garble every line they appear in; they are not real secrets either
_PLAIN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|true|false|yes|no|on|off|none|null", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """`SWANLAB_API_KEY`, `HF_TOKEN`, `DB_PASSWORD` are secrets; `IMAGE_MAX_TOKEN_NUM`, `TOKENIZERS_PARALLELISM` not."""
    upper = name.upper().replace("-", "_")
    if upper in NOT_SECRETS:
        return False
    return upper in KNOWN_SECRETS or upper.rstrip("_").rsplit("_", 1)[-1] in SECRET_WORDS


def can_be_secret(value: str) -> bool:
    """Whether a value is worth hiding: 8 characters or more, and not a plain number or boolean (`1024`, `true`)."""
    return len(value) >= MIN_SECRET_LEN and not _PLAIN.fullmatch(value.strip())


def is_secret_key(section: str, key: str) -> bool:
    """Recipe keys that would carry a secret: secret-named variables in [env]; elsewhere the same rule, except
    that a swift key ending in `_key` is a secret only as `api_key` (`reft_layer_key` is a layer name)."""
    if section == "env":
        return is_secret_name(key)
    key = key.lower().replace("-", "_")
    return is_secret_name(key) and (not key.endswith("key") or key == "api_key" or key.endswith("_api_key"))


def breaks_swanlab(name: str, value: str) -> bool:
    """A SWANLAB_PROJECT-style variable holding a plain string (a team's `export SWANLAB_PROJECT=mh-sft`): swanlab
    parses these as JSON tables and fails every login and init on anything else."""
    if name not in NESTED_SWANLAB:
        return False
    try:
        return not isinstance(json.loads(value), dict)
    except ValueError:
        return True


def without_secrets(values: dict[str, str]) -> dict[str, str]:
    """A child's environment from `values` with every secret-named variable left out (only a plan's child
    environment hands a secret on, and only the ones its command needs), and the SWANLAB_PROJECT-style plain
    strings swanlab would fail on (mhsft renders the SwanLab settings itself)."""
    return {k: v for k, v in values.items() if not is_secret_name(k) and not breaks_swanlab(k, v)}


def spellings(value: str) -> set[str]:
    """A secret as it may appear in text: raw, JSON-escaped (a table value, a TOML/JSON dump) and as `repr` shows
    it inside single or double quotes (a message built with `!r`)."""
    backslashed = value.replace("\\", "\\\\")
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {repr(value)[1:-1], backslashed.replace("'", "\\'"), backslashed.replace('"', '\\"')}
    return forms


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (in any of its spellings) in `text` with `****`."""
    forms = {form for s in secrets if can_be_secret(s) for form in spellings(s)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def hint(value: str) -> str:
    """What may be shown of a secret: its last 4 characters when it is long enough, else nothing."""
    return f"{MASK}{value[-4:]}" if len(value) >= 12 else MASK


@dataclass(frozen=True)
class Environment:
    """Variables visible to mhsft and its child: the real environment wins over `.env`."""

    values: Mapping[str, str]
    dotenv_path: Path | None = None
    dotenv_keys: frozenset[str] = field(default_factory=frozenset)
    searched_from: Path | None = None  # the folder the search for `.env` started in (None: --env-file given)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def source(self, name: str) -> str:
        """Where a variable's value came from, for messages (never the value)."""
        if name not in self.values:
            return "unset"
        if name in self.dotenv_keys:
            return f".env ({self.dotenv_path})"
        return "environment"

    def searched(self, name: str) -> str:
        """For a message about a missing `name`: the `.env` file read, or where none was found."""
        if self.dotenv_path is not None:
            how = "--env-file" if self.searched_from is None else f"the nearest .env from {self.searched_from}"
            return f"{name} is neither in the environment nor in {self.dotenv_path} ({how})"
        return (
            f"{name} is not in the environment, and there is no .env in {self.searched_from} or any folder above "
            "it (mhsft looks from the current folder upward)"
        )

    @property
    def secrets(self) -> dict[str, str]:
        """Secret-named variables that have a value."""
        return {k: v for k, v in self.values.items() if v and is_secret_name(k)}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets.values())


def find_dotenv(start: Path) -> Path | None:
    """The nearest `.env` in `start` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def load_environment(
    env_file: Path | None = None, cwd: Path | None = None, base: Mapping[str, str] | None = None
) -> Environment:
    """Read `env_file` (or the nearest `.env` from `cwd` upward) under the real environment `base`."""
    base = os.environ if base is None else base
    if env_file is not None:
        if not os.path.isfile(env_file):
            raise MhsftError(
                f"--env-file {env_file}: no such file. Point --env-file at an existing file "
                "(copy .env.example to .env to start one), or leave the option out to use the nearest .env."
            )
        path: Path | None = env_file
        start = None
    else:
        start = (cwd or Path.cwd()).resolve()
        path = find_dotenv(start)
    from_file: dict[str, str] = {}
    if path is not None:
        from dotenv import dotenv_values  # imported only when there is a file to read

        try:
            parsed = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise MhsftError(f"{path}: cannot read this .env file ({exc}). Fix or remove it.") from None
        from_file = {k: v for k, v in parsed.items() if v is not None}
    values = {**from_file, **base}
    used = frozenset(k for k in from_file if k not in base)
    return Environment(values=values, dotenv_path=path, dotenv_keys=used, searched_from=start)
