#!/usr/bin/env bash
# Create .venv (if missing) and install agentgym with the given extras (default: dev).
# Usage: bash scripts/setup.sh [extras]      e.g. bash scripts/setup.sh dev,train
# With the train extra, torch is pinned first (AGENTGYM_TORCH, default torch==2.13.0) so that
# pip never resolves an unpinned torch to a multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ ",${extras}," == *,train,* ]]; then
  .venv/bin/python -m pip install -q "${AGENTGYM_TORCH:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
