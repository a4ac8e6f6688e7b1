#!/usr/bin/env bash
# Create .venv (if missing) and install agentgym with the given extras (default: dev).
# Usage: bash scripts/setup.sh [extras]      e.g. bash scripts/setup.sh dev,train
# With the train extra, torch is pinned first (AGENTGYM_TORCH, default torch==2.13.0) so that
# pip never resolves an unpinned torch to a multi-GB CUDA build on a CPU machine.
# Output: one line per step; pip's errors and real warnings still show (AGENTGYM_SETUP_VERBOSE=1: all of it).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
say() { printf '==> %s\n' "$*"; }

if [[ "${AGENTGYM_SETUP_VERBOSE:-0}" == 1 ]]; then
  pip() { .venv/bin/python -m pip "$@"; }
else
  # setuptools reports every editable install as a warning ("Editable installation. Please be careful
  # with folders ..."): information, not a problem. pip also warns once per configured extra index that
  # lacks a project ("Location ... is ignored"); neither needs the reader's attention.
  export PYTHONWARNINGS="ignore:Editable installation"
  pip() {
    .venv/bin/python -m pip -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  }
fi

# Skip everything when .venv was set up by this script, with these extras, from this pyproject.toml
# (a fresh clone has no stamp; any change to these inputs, or a failed run, installs again).
stamp=.venv/.agentgym-setup
inputs="$(cat pyproject.toml scripts/setup.sh; echo "extras=${extras} torch=${AGENTGYM_TORCH:-} $(python3 --version)")"
want="$(printf '%s' "${inputs}" | sha256sum | cut -d' ' -f1)"
if [[ -x .venv/bin/python && "$(cat "${stamp}" 2>/dev/null)" == "${want}" ]]; then
  say "up to date: .venv has agentgym[${extras}] for this pyproject.toml (rm ${stamp} to reinstall)"
  exit 0
fi
rm -f "${stamp}"

if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv ($(python3 --version))"
fi
python3 -m venv .venv
pip install --upgrade pip
if [[ ",${extras}," == *,train,* ]]; then
  torch="${AGENTGYM_TORCH:-torch==2.13.0}"
  say "installing ${torch} (first time: a large download, a few minutes)"
  pip install "${torch}"
fi
say "installing agentgym[${extras}] (editable)"
pip install -e ".[${extras}]"
echo "${want}" > "${stamp}"
say "ready: .venv/bin/agentgym, .venv/bin/python -m pytest"
