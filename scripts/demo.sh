#!/usr/bin/env bash
# Set up and run the main job on an embedded default (CPU, no download, a few minutes):
# build a tiny Qwen2 model and tokenizer locally, warm-start it by SFT on ε-greedy expert
# trajectories of agentgym/Bifurcation-v0, then improve it with GiGPO; prints the eval success
# rate before and after and writes runs/demo-*/learning_curve.png and metrics.jsonl. Progress shows
# as bars in a terminal, as a line every 10 s in a file (`> demo.out`); Ctrl-C says what is saved
# and prints the command that resumes the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train
exec .venv/bin/agentgym train demo_bifurcation train.out_dir="runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
