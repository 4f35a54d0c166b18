"""The environment mhsft runs swift in: real variables over `.env`, and which of them are secrets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mhsft.errors import MhsftError

MASK = "****"
SECRET_WORDS = frozenset({"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS", "PAT"})
MIN_REDACT_LEN = 4  # shorter values would garble every line they appear in


def is_secret_name(name: str) -> bool:
    """`SWANLAB_API_KEY`, `HF_TOKEN`, `DB_PASSWORD` are secrets; `TOKENIZERS_PARALLELISM` is not."""
    return any(word in SECRET_WORDS for word in name.upper().split("_"))


def is_secret_key(section: str, key: str) -> bool:
    """Recipe keys that would carry a secret: any secret-named variable in [env]; token/secret keys elsewhere."""
    if section == "env":
        return is_secret_name(key)
    key = key.replace("-", "_")
    return key in ("api_key", "token", "secret", "password") or key.endswith(
        ("_token", "_secret", "_password", "_api_key")
    )


def spellings(value: str) -> set[str]:
    """A secret as it may appear in text: raw, and JSON-escaped (in a table value or a TOML/JSON dump)."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (in any of its spellings) in `text` with `****`."""
    forms = {form for s in secrets if len(s) >= MIN_REDACT_LEN for form in spellings(s)}
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

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def source(self, name: str) -> str:
        """Where a variable's value came from, for messages (never the value)."""
        if name not in self.values:
            return "unset"
        if name in self.dotenv_keys:
            return f".env ({self.dotenv_path})"
        return "environment"

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
    else:
        path = find_dotenv((cwd or Path.cwd()).resolve())
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
    return Environment(values=values, dotenv_path=path, dotenv_keys=used)
