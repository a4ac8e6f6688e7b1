"""A real learning test: the embedded demo, shortened, must beat its SFT start (fixed seed)."""

import time

from agentgym.trainers.config import load_recipe
from agentgym.trainers.trainer import Trainer


def test_gigpo_improves_on_the_sft_warm_start(tiny_model_dir, tmp_path):
    recipe = load_recipe("demo_bifurcation", [
        f"model.path={tiny_model_dir}", "model.device=cpu", f"train.out_dir={tmp_path}",
        "train.iterations=20", "eval.every=0", "train.tensorboard=false",
    ])
    start = time.perf_counter()
    rows = Trainer(recipe).fit()
    evals = [r["eval/success_rate"] for r in rows if "eval/success_rate" in r]
    before, after = evals[0], evals[-1]
    print(f"success rate {before:.3f} -> {after:.3f} in {time.perf_counter() - start:.0f}s")
    assert 0.3 < before < 0.8  # the ε-greedy warm start leaves room to improve
    assert after >= before + 0.15
    assert (tmp_path / "learning_curve.png").exists()
