# Sourced by the scripts/setup_*.sh that make a separate venv, after `venv=<its directory>`:
# `say` prints a step; `pip` runs that venv's pip quietly. setuptools reports every editable install
# as a warning and pip warns once per configured extra index that lacks a project: neither needs the
# reader's attention; pip's errors and real warnings still show.
say() { printf '==> %s\n' "$*"; }
export PYTHONWARNINGS="ignore:Editable installation"
pip() {
  "${venv:?}/bin/python" -m pip -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
