"""Whether an inference backend imports, checked in a bounded child before any model loads.

`swift infer|deploy --infer_backend lmdeploy` without lmdeploy installed loads the whole model first and only
then dies with ModuleNotFoundError (minutes on a 32B model). The import is tried in a child (a broken CUDA
library can hang or crash it), stopped at the timeout.
"""

from __future__ import annotations

import importlib.util

from mhsft.checks import FAIL, OK, Check
from mhsft.environment import Environment, without_secrets
from mhsft.errors import MhsftError
from mhsft.process import isolated

INSTALL = {"vllm": "pip install vllm", "sglang": 'pip install "sglang[all]"', "lmdeploy": "pip install lmdeploy"}
TIMEOUT_S = 60.0  # vllm's import takes ~10-20 s on a loaded machine


def missing(backend: str | None) -> str | None:
    """The install command for a backend that is not installed at all (no import; for doctor), else None."""
    if backend in INSTALL and importlib.util.find_spec(backend) is None:
        return INSTALL[backend]
    return None


def importable(args: dict, emit: isolated.Emit) -> None:
    """In the child: import the backend's package."""
    emit("step", f"import {args['module']}")
    try:
        importlib.import_module(args["module"])
    except Exception as exc:  # ImportError, or a library that fails while loading
        emit("check", Check("backend", FAIL, f"{type(exc).__name__}: {exc}").as_dict())
        return
    emit("check", Check("backend", OK, "imports").as_dict())


def ensure(backend: str | None, environment: Environment, option: str, timeout: float = TIMEOUT_S) -> None:
    """Refuse to start swift with a backend that does not import here, naming the install command."""
    if backend not in INSTALL:
        return
    fix = f"Install it ({INSTALL[backend]}), or choose another backend: {option} transformers."
    if missing(backend):
        raise MhsftError(f"the {backend} backend is not installed; swift would load the model and then fail. {fix}")
    outcome = isolated.run(
        "mhsft.trained.backend:importable", {"module": backend}, timeout, without_secrets(dict(environment.values))
    )
    problem = isolated.failure("backend", outcome, timeout, f"import {backend}", fix) or next(
        (c for c in outcome.checks if c.status == FAIL), None
    )
    if problem is not None:
        raise MhsftError(
            f"the {backend} backend does not import ({problem.detail}); swift would fail after loading the model. {fix}"
        )
