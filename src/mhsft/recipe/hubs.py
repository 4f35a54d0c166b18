"""Which model hub a run needs, the one token swift gets for it, and the offline settings of a local run.

ms-swift logs in to ModelScope while it parses its arguments whenever MODELSCOPE_API_TOKEN is in its
environment, and a failed login kills the command: a run that names no hub id gets no token. A local run
also gets the hubs' offline settings, so that swift, datasets and transformers make no lookup at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mhsft.recipe.argv import looks_local

TOKENS = {"modelscope": ("MODELSCOPE_API_TOKEN",), "hf": ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
HUB_INPUTS = ("model", "ref_model", "dataset", "val_dataset")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TRUE = ("1", "true", "yes", "on")


def hub_ids(args: Mapping[str, Any], cwd: Path) -> list[str]:
    """The values of `args` that swift would fetch from a hub: model and dataset names that are not local paths."""
    found = []
    for key in HUB_INPUTS:
        value = args.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and not looks_local(item.split("#")[0], cwd):
                found.append(item)
    return found


def checkpoint_args(checkpoint: Path | str) -> dict[str, Any]:
    """The arguments swift saved with a checkpoint (its `args.json`; `{}` when unreadable)."""
    try:
        data = json.loads((Path(checkpoint) / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def hub_name(args: Mapping[str, Any], environment: Mapping[str, str]) -> str:
    """`hf` when swift uses Hugging Face (`use_hf` or USE_HF), else `modelscope`."""
    use_hf = args.get("use_hf") is True or str(environment.get("USE_HF", "")).lower() in TRUE
    return "hf" if use_hf else "modelscope"


def token_names(hub: str, environment: Mapping[str, str]) -> tuple[str, ...]:
    """The token variables of `hub` that are set."""
    return tuple(name for name in TOKENS[hub] if environment.get(name))


def offline_env(environment: Mapping[str, str]) -> dict[str, str]:
    """The hubs' offline settings for a run that names no hub id (values the user set win)."""
    return {k: v for k, v in OFFLINE_ENV.items() if k not in environment}
