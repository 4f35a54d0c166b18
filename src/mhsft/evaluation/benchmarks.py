"""What can be checked about the benchmarks before any model is deployed: EvalScope installed, each name in its
list, local files present, remote sets cached or the hub reachable. Nothing here imports EvalScope: its list of
benchmarks and their dataset ids are read from the data files it ships (`benchmarks/_index.json`, `_meta/`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mhsft.environment import Environment
from mhsft.errors import DATA_CHECK, USAGE, MhsftError
from mhsft.paths import absolute
from mhsft.recipe.swift_args import suggest

INSTALL = 'pip install "mhsft[eval]"  (or: pip install evalscope)'
LOCAL_BENCHMARKS = ("general_qa", "general_mcq")  # EvalScope's custom sets: they read local_path, never a hub
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Benchmark:
    """One benchmark as EvalScope names it, with its local folder (from `eval_dataset_args`) or hub dataset id."""

    name: str
    local_path: str | None = None
    dataset_id: str | None = None
    cached: bool = False


def evalscope_dir() -> Path:
    """The installed EvalScope package folder (found without importing it), or the install command."""
    spec = importlib.util.find_spec("evalscope")
    if spec is None or not spec.submodule_search_locations:
        raise MhsftError(f"mhsft eval needs EvalScope, which is not installed here. Install it: {INSTALL}.", USAGE)
    return Path(next(iter(spec.submodule_search_locations)))


def names(root: Path) -> list[str]:
    """Every benchmark name EvalScope registers (its own index of them)."""
    try:
        return sorted(json.loads((root / "benchmarks" / "_index.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):  # an EvalScope without the index: ask its registry (slower: ~7 s)
        from evalscope.api.registry import BENCHMARK_REGISTRY

        return sorted(BENCHMARK_REGISTRY.keys())


def dataset_id(root: Path, name: str) -> str | None:
    """The hub dataset a benchmark downloads (from EvalScope's metadata), or None when it does not say."""
    try:
        meta = json.loads((root / "benchmarks" / "_meta" / f"{name}.json").read_text(encoding="utf-8"))["meta"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    value = meta.get("dataset_id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def cache_dirs(environment: Environment) -> list[Path]:
    """Where EvalScope keeps downloaded sets: its own cache, and ModelScope's dataset snapshots."""
    home = Path(os.path.expanduser("~"))
    evalscope = Path(environment.get("EVALSCOPE_CACHE") or home / ".cache" / "evalscope") / "datasets"
    modelscope = Path(environment.get("MODELSCOPE_CACHE") or home / ".cache" / "modelscope" / "hub") / "datasets"
    return [evalscope, modelscope]


def is_cached(dataset: str, environment: Environment) -> bool:
    """Whether a split of `dataset` is in EvalScope's cache (`<id>-<hash>` folders) or ModelScope's snapshots."""
    safe = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]", "_", dataset))
    for folder in cache_dirs(environment):
        if (folder / dataset).is_dir():
            return True
        if folder.is_dir() and any(p.name.startswith(f"{safe}-") and p.is_dir() for p in folder.iterdir()):
            return True
    return False


def hub_unreachable(environment: Environment, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the ModelScope hub (where EvalScope downloads from) cannot be reached, or None when it answers."""
    from mhsft.preflight.hub import cause, endpoint

    url = endpoint("modelscope", environment)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{url} cannot be resolved (DNS)"
    except OSError as exc:
        return f"{url} {cause(exc)}"


def resolve(
    wanted: list[str], dataset_args: dict[str, Any], environment: Environment, cwd: Path, where: str
) -> list[Benchmark]:
    """The benchmarks checked: names EvalScope knows (case as it spells them), local paths that exist, and remote
    sets that are cached or whose hub answers within seconds; MhsftError (exit 2 or 4) naming the fix otherwise."""
    root = evalscope_dir()
    known = names(root)
    by_lower = {n.lower(): n for n in known}
    found: list[Benchmark] = []
    for raw in wanted:
        name = by_lower.get(raw.lower())
        if name is None:
            hint = suggest(raw.lower(), known) or f" Some it knows: {', '.join(known[:12])}, ..."
            raise MhsftError(
                f"{where}: `{raw}` is not a benchmark EvalScope {_version(root)} knows.{hint} Its full list: "
                "`python -c 'from evalscope.api.registry import BENCHMARK_REGISTRY as r; print(sorted(r))'`.",
                USAGE,
            )
        local = (dataset_args.get(name) or dataset_args.get(raw) or {}).get("local_path")
        if local:
            path = absolute(str(local), cwd)
            if not os.path.exists(path):
                raise MhsftError(
                    f"{where}: the local_path of `{name}` in eval_dataset_args, {path}, does not exist. Fix the "
                    "path (a folder holding <subset>.jsonl or .csv files, or one such file) or create it.",
                    DATA_CHECK,
                )
            found.append(Benchmark(name, local_path=path))
            continue
        if name in LOCAL_BENCHMARKS:
            raise MhsftError(
                f"{where}: `{name}` is EvalScope's custom set and needs a folder: set eval_dataset_args = "
                f'{{{name} = {{local_path = "data/my_set", subset_list = ["my_set"]}}}} in [eval].',
                USAGE,
            )
        dataset = dataset_id(root, name) or name
        found.append(Benchmark(name, dataset_id=dataset, cached=is_cached(dataset, environment)))
    _ensure_downloadable([b for b in found if b.dataset_id and not b.cached], environment)
    return found


def _ensure_downloadable(missing: list[Benchmark], environment: Environment) -> None:
    if not missing:
        return
    started = time.monotonic()
    why = hub_unreachable(environment)
    if why is None:
        return
    first = missing[0]
    raise MhsftError(
        f"benchmark `{first.name}` is not in the local cache ({', '.join(map(str, cache_dirs(environment)))}) and "
        f"the hub {why} (checked in {time.monotonic() - started:.1f} s), so it cannot be downloaded; nothing was "
        f"deployed. On a machine with network, fetch it once: `evalscope eval --model dummy --eval-type mock_llm "
        f"--datasets {first.name} --limit 1` (then copy the cache folder here), or point eval_dataset_args "
        f"{first.name}.local_path at a local copy.",
        DATA_CHECK,
    )


def _version(root: Path) -> str:
    try:
        text = (root / "version.py").read_text(encoding="utf-8")
    except OSError:
        return ""
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    return match.group(1) if match else ""
