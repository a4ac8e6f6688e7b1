#!/usr/bin/env bash
# Create .venv-verifiers-v1 (a separate venv; .venv is not touched) with agentgym (editable, extra
# verifiers-v1) and pytest, for the tests marked `verifiers_v1`:
#   bash scripts/setup_verifiers_v1.sh && .venv-verifiers-v1/bin/python -m pytest -m verifiers_v1
# Separate because verifiers 0.4 pins mcp==2.0.0 (against the mcp extra's >=2.3) and its classic
# 0.1.x API lives in .venv-verifiers (scripts/setup_verifiers.sh): one venv cannot hold all three.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-verifiers-v1
source scripts/lib/venv.sh  # say, pip

start=$SECONDS
python3 -m venv "${venv}"
pip install --upgrade pip
torch="${AGENTGYM_TORCH:-torch==2.13.0}"  # pinned first, as scripts/setup.sh does: never a CUDA build
say "installing ${torch}, then agentgym[verifiers-v1] (editable) + pytest"
pip install "${torch}"
# uv: verifiers runs its harness programs (null, bash) as PEP 723 scripts with it; on the venv's PATH it
# is found there, instead of verifiers installing one into ~/.local
pip install -e ".[verifiers-v1]" "pytest>=8" "pytest-timeout>=2.3" "uv>=0.8"
"${venv}/bin/python" -m pip check
say "ready in ${venv} ($((SECONDS - start)) s): verifiers $("${venv}/bin/python" -c \
  'import importlib.metadata as m; print(m.version("verifiers"))')"
