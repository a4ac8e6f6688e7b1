#!/usr/bin/env bash
# Create .venv-verifiers (a separate venv; .venv is not touched) with agentgym (editable, extras train +
# verifiers) and pytest, for the tests marked `verifiers`:
#   bash scripts/setup_verifiers.sh && .venv-verifiers/bin/python -m pytest -m verifiers
# Separate because verifiers 0.1.x caps datasets (<4.7) and regex below what the dev extra resolves to
# (and 0.2-0.4 pin mcp <2 or ==2.0, against the mcp extra's >=2.3): one venv cannot hold both.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-verifiers
source scripts/lib/venv.sh  # say, pip

start=$SECONDS
python3 -m venv .venv-verifiers
pip install --upgrade pip
torch="${AGENTGYM_TORCH:-torch==2.13.0}"  # pinned first, as scripts/setup.sh does: never a CUDA build
say "installing ${torch}, then agentgym[train,verifiers] (editable) + pytest"
pip install "${torch}"
pip install -e ".[train,verifiers]" "pytest>=8" "pytest-timeout>=2.3"
.venv-verifiers/bin/python -m pip check
say "ready in .venv-verifiers ($((SECONDS - start)) s): verifiers $(.venv-verifiers/bin/python -c \
  'import importlib.metadata as m; print(m.version("verifiers"))')"
