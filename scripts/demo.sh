#!/usr/bin/env bash
# Set up and run the main job on an embedded default: roll out the scripted expert
# (ε-greedy, ε=0.2) on the built-in Sokoban env in groups of 4 and print the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
out="runs/demo-$(date +%Y%m%d-%H%M%S)"
exec .venv/bin/agentgym rollout --env agentgym/Sokoban-v0 --policy scripted --policy-kwarg epsilon=0.2 \
  --tasks 32 --group-size 4 --concurrency 8 --out "$out"
