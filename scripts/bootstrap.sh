#!/usr/bin/env bash
# Set up ./.venv with everything mhsft and its tests need, on a fresh machine or an existing checkout.
# Idempotent: a second run only checks. CPU torch 2.13.0 goes in first, or pip may pull a multi-GB CUDA build
# when ms-swift asks for torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
if ! .venv/bin/python -c "import mhsft, swift, swanlab, swanboard, modelscope, yaml, orjson, xxhash, numpy, plotext, matplotlib, optuna, pytest, hypothesis, evalscope" 2>/dev/null; then
  # torch pinned as installed: EvalScope's dependencies must not pull another build
  .venv/bin/python -m pip install --quiet -e ".[test,eval]" "torch==$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
fi
echo "bootstrap: $(.venv/bin/mhsft --version), $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
