"""The same code on CUDA (run with ``-m gpu`` on a GPU machine; never in the default pass)."""

import subprocess
import sys

import pytest
import torch

from agentgym.trainers.config import load_recipe
from agentgym.trainers.models import load_policy
from agentgym.trainers.trainer import Trainer


def test_mounting_the_cli_imports_no_torch():
    code = "import sys, agentgym.trainers.cli; print(bool({'torch', 'transformers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.gpu
def test_training_iteration_on_cuda_in_bf16(tiny_model_dir, tmp_path):
    assert torch.cuda.is_available()
    pm = load_policy(tiny_model_dir)  # device and dtype "auto"
    assert pm.device.type == "cuda" and pm.autocast_dtype == torch.bfloat16  # fp32 weights, bf16 compute
    recipe = load_recipe("demo_bifurcation", [
        f"model.path={tiny_model_dir}", "model.gradient_checkpointing=true", f"train.out_dir={tmp_path}",
        "train.iterations=2", "sft.steps=5", "eval.episodes_per_task=2", "loss.kl=k3", "loss.kl_coef=0.01",
    ])
    rows = Trainer(recipe).fit()
    assert rows[-1]["iteration"] == 2 and rows[-1]["is/mean_abs_log_ratio"] < 0.05
