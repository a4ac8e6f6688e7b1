#!/usr/bin/env bash
# Set up and run the default test pass (not slow, not gpu). Extra args go to pytest.
# Docker tests need a running engine (`docker info`); they skip with a reason when there is
# none, unless AGENTGYM_REQUIRE_DOCKER=1 (CI), where a missing engine fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
