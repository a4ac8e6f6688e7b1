"""What a person running `agentgym train` sees: progress lines in a log file or a pipe, a Ctrl-C
that says what is saved and how to resume, and torch's CPU threads as the recipe asks."""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch
import typer
import yaml
from test_trainer import small_recipe
from typer.testing import CliRunner

from agentgym.trainers.cli import train
from agentgym.trainers.trainer import Trainer, auto_threads


def _recipe_file(model_dir, tmp_path, **extra) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(small_recipe(model_dir, tmp_path / "run", **extra).to_dict()))
    return path


def test_every_phase_shows_progress_lines_with_rates_when_output_is_not_a_terminal(tiny_model_dir, tmp_path):
    recipe = _recipe_file(tiny_model_dir, tmp_path, eval={"episodes_per_task": 2}, train={"iterations": 1})
    app = typer.Typer()
    app.command()(train)
    result = CliRunner().invoke(app, [str(recipe), "--progress-every", "0"])  # CliRunner's stdout is no terminal
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for where, phase, unit, total in (("before RL", "SFT demos", "episodes", 4), ("before RL", "SFT warm start", "steps", 3),
                                      ("before RL", "eval", "episodes", 6), ("iter 1/1", "rollout", "episodes", 8),
                                      ("iter 1/1", "update", "sequences", 32), ("iter 1/1", "eval", "episodes", 6)):
        # 8 rollouts × (2 epochs + the old and the reference log-prob passes) = 32 sequences
        for pattern in (rf"{phase} {total}/{total} {unit}, [\d.e+]+ {unit}/s, ETA 0:00",
                        rf"{phase} done: {total} {unit} in \d+s \([\d.e+]+ {unit}/s\)"):
            pattern = rf"\[\d+:\d\d\] {where}: {pattern}"
            assert any(re.fullmatch(pattern, line) for line in lines), (pattern, result.output)
    assert lines.index(next(x for x in lines if "SFT warm start 1/3" in x)) < lines.index(
        next(x for x in lines if x.startswith("iter 0 ")))  # as it happens, not at the end


def _run_until(cmd: list[str], marker: str) -> tuple[int, str]:
    """Start ``cmd`` (stdout a pipe), send it SIGINT at the first line holding ``marker``."""
    # SIGINT back to its default in the child: a shell ignores it in background jobs (`cmd &`), and
    # Python keeps an inherited "ignore", so a suite started that way could not test Ctrl-C at all.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    killer = threading.Timer(120, proc.kill)  # never hang the suite
    killer.start()
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if marker in line:
                proc.send_signal(signal.SIGINT)
                break
        out.append(proc.stdout.read())
        return proc.wait(), "".join(out)
    finally:
        killer.cancel()
        proc.kill()


def test_ctrl_c_in_the_warm_start_says_nothing_is_saved_and_how_to_start_again(tiny_model_dir, tmp_path):
    agentgym = Path(sys.executable).with_name("agentgym")
    assert agentgym.exists(), "no agentgym script beside this python: install the package (bash scripts/setup.sh)"
    recipe = _recipe_file(tiny_model_dir, tmp_path)
    # A real SIGINT to a process writing to a pipe, as `bash scripts/demo.sh > demo.out` then Ctrl-C.
    cmd = [str(agentgym), "train", str(recipe), "sft.steps=100000", "--progress-every", "0"]
    code, out = _run_until(cmd, "SFT warm start 1/")
    assert code == 130, out
    assert "interrupted (before RL, SFT warm start (" in out and "nothing saved yet" in out, out
    assert "Start again with:\n  " + shlex.join(cmd[:-2]) + "\n" in out, out


def test_ctrl_c_in_an_iteration_names_the_checkpoint_and_the_command_that_resumes(tiny_model_dir, tmp_path, monkeypatch,
                                                                                 request):
    recipe = _recipe_file(tiny_model_dir, tmp_path)
    step = Trainer.step

    def interrupted_in_iteration_2(self):  # a real SIGINT, from inside the second iteration
        if self.iteration == 1:
            signal.raise_signal(signal.SIGINT)
        return step(self)

    monkeypatch.setattr(Trainer, "step", interrupted_in_iteration_2)
    # Ctrl-C as a terminal delivers it, even when this suite runs in a background job (SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    app = typer.Typer()
    app.command()(train)
    args = [str(recipe), "train.iterations=1000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, result.output
    ckpt = tmp_path / "run" / "checkpoints" / "iter_000001"
    assert (ckpt / "trainer_state.json").exists()
    out = result.output
    assert f"Saved: checkpoint {ckpt} (iteration 1/1000)" in out and "metrics to iteration 1 in" in out, out
    assert out.endswith("Resume with:\n  " + shlex.join(["agentgym", "train", *args]) + "\n"), out


def test_torch_threads_follow_the_recipe(tiny_model_dir, tmp_path):
    before = torch.get_num_threads()
    try:
        Trainer(small_recipe(tiny_model_dir, tmp_path, train={"threads": 2}))
        assert torch.get_num_threads() == 2
        Trainer(small_recipe(tiny_model_dir, tmp_path))  # unset: a core left free
        assert torch.get_num_threads() == auto_threads() == max(1, min(len(os.sched_getaffinity(0)) - 1, 8))
    finally:
        torch.set_num_threads(before)
