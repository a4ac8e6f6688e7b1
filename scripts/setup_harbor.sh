#!/usr/bin/env bash
# Create .venv-harbor (a separate venv; .venv is not touched) with the harbor package, agentgym
# (editable, no extras) and pytest, for the tests marked `harbor`:
#   bash scripts/setup_harbor.sh && .venv-harbor/bin/python -m pytest -m harbor tests/envs/terminal
# Separate because harbor needs Python >= 3.12 (its task model uses typing.override) while agentgym
# supports 3.10: the venv is made with the first Python >= 3.12 found (PATH, then pyenv's versions).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-harbor
source scripts/lib/venv.sh  # say, pip

pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
candidates=(python3.13 python3.12 "${pyenv_root}"/versions/3.1[23]*/bin/python3)
python=""
for candidate in "${candidates[@]}"; do
  # pyenv's shims are on PATH even where the version is not selected, and then fail: run each
  if "${candidate}" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    python="${candidate}"
    break
  fi
done
if [[ -z "${python}" ]]; then
  echo "setup_harbor.sh: harbor needs Python >= 3.12; none found (tried: ${candidates[*]});" \
    "install one (e.g. pyenv install 3.12) or put it on PATH" >&2
  exit 1
fi

start=$SECONDS
"${python}" -m venv .venv-harbor
pip install --upgrade pip
say "installing harbor>=0.26,<0.27 and agentgym (editable) + pytest with $("${python}" --version)"
pip install "harbor>=0.26,<0.27" -e . "pytest>=8" "pytest-timeout>=2.3"
.venv-harbor/bin/python -m pip check
say "ready in .venv-harbor ($((SECONDS - start)) s): Python $(.venv-harbor/bin/python -c \
  'import importlib.metadata as m, platform; print(platform.python_version(), "harbor", m.version("harbor"))')"
