"""Tool turns in training: the tiny template renders tool calls and results Qwen2.5-style, the
trainer's token-delta sequence of a ToolWorld episode equals rendering it whole with structured
tool_calls, tool results are masked out of the loss, and the gigpo_toolworld recipe runs on CPU."""

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

import agentgym
from agentgym.policies.simple import ScriptedPolicy
from agentgym.rollout import plan, rollout
from agentgym.tools import format_tool_calls
from agentgym.trainers.batch import make_batch
from agentgym.trainers.chat import annotate_tokens, to_sequence
from agentgym.trainers.cli import train
from agentgym.trainers.models import load_policy


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return load_policy(tiny_model_dir, device="cpu").chat


def test_template_renders_structured_calls_as_hermes_text(chat):
    calls = [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": "é"}'}},
             {"name": "get_order", "arguments": {"order_id": "O2001"}}]
    structured = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": calls},
                  {"role": "tool", "content": "3"}, {"role": "tool", "content": "{\"status\": \"pending\"}"}]
    text = [*structured[:1], {"role": "assistant", "content": format_tool_calls(calls)}, *structured[2:]]
    rendered = chat.render(structured, generation_prompt=True)
    assert rendered == chat.render(text, generation_prompt=True)
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": "é"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "O2001"}}\n</tool_call><|im_end|>\n'
            '<|im_start|>user\n<tool_response>\n3\n</tool_response>\n<tool_response>\n{"status": "pending"}\n'
            '</tool_response><|im_end|>\n<|im_start|>assistant\n') in rendered
    env = agentgym.make("agentgym/ToolWorld-v0")
    with_tools = chat.tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, *structured[:1]], tools=env.tool_schemas(), tokenize=False)
    assert with_tools.startswith("<|im_start|>system\nS\n\n# Tools\n") and '"name": "cancel_order"' in with_tools


def test_toolworld_sequence_equals_whole_rendering_and_masks_tool_results(chat):
    env_spec = agentgym.spec("agentgym/ToolWorld-v0")
    kwargs = {"tool_prompt": "compact"}
    trajs = asyncio.run(rollout(env_spec, ScriptedPolicy(epsilon=0.2, seed=1), plan("tw", tasks=6, group_size=1),
                                env_kwargs=kwargs))
    system = env_spec.make(**kwargs).system_prompt
    tool_turns = 0
    for traj in trajs:
        for turn in traj.turns:  # as SFT does: the expert's text, tokenised
            turn.action_token_ids = chat.encode(turn.action) + [chat.eos_id]
        seq = to_sequence(annotate_tokens(traj, chat, system))
        # The same episode as a chat with structured tool calls, rendered whole by the template.
        messages = [{"role": "system", "content": system}]
        for turn in traj.turns:
            messages.append({"role": turn.role, "content": turn.observation})
            if turn.tool_calls and turn.parse_error is None and "<tool_call>" in turn.action:
                calls = [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in turn.tool_calls]
                messages.append({"role": "assistant", "content": "", "tool_calls": calls})
            else:
                messages.append({"role": "assistant", "content": turn.action})
        whole = chat.encode(chat.render(messages, generation_prompt=False))
        assert seq.input_ids == whole[: len(seq)] and whole[len(seq):] == chat.encode("\n")
        batch = make_batch([seq], [[1.0 + k for k in range(traj.num_turns)]], [[1.0] * traj.num_turns],
                           [[1.0] * traj.num_turns], chat.pad_id)
        for k, turn in enumerate(traj.turns):
            start, end = turn.action_span
            assert all(seq.loss_mask[start:end]) and (batch.advantages[0, start:end] == 1.0 + k).all()
            assert chat.tokenizer.decode(seq.input_ids[start:end - 1]) == turn.action
            o_start, o_end = turn.obs_span
            assert not any(seq.loss_mask[o_start:o_end]) and (batch.advantages[0, o_start:o_end] == 0).all()
            if turn.role == "tool":
                tool_turns += 1
                text = chat.tokenizer.decode(seq.input_ids[o_start:o_end])
                assert f"<tool_response>\n{turn.observation}\n</tool_response>" in text
    assert tool_turns > 10


def test_gigpo_toolworld_recipe_runs_on_cpu(tiny_model_dir, tmp_path):
    app = typer.Typer()
    app.command("train")(train)
    app.command("other")(lambda: None)  # two commands: typer keeps "train" as a subcommand name
    result = CliRunner().invoke(app, [
        "train", "gigpo_toolworld", f"model.path={tiny_model_dir}", "train.iterations=2",
        f"train.out_dir={tmp_path}", "model.device=cpu", "train.tensorboard=false", "train.plot=false",
        # smaller than the recipe, to keep the default test pass short; the code path is the same
        "rollout.tasks_per_iter=2", "rollout.group_size=2", "sft.episodes=4", "sft.steps=2",
        "generation.sampling.max_new_tokens=24",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[0]["sft/demo_success_rate"] > 0.5 and rows[0]["sft/loss_last"] < rows[0]["sft/loss_first"]
    assert all("rollout/success_rate" in r and "batch/loss_tokens" in r for r in rows[1:])


def test_matchtir_toolworld_recipe_runs_on_cpu(tiny_model_dir, tmp_path):
    """MatchTIR credit inside training: the trainer's ToolWorld trajectories carry the gold trace."""
    app = typer.Typer()
    app.command("train")(train)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, [
        "train", "matchtir_toolworld", f"model.path={tiny_model_dir}", "train.iterations=1",
        f"train.out_dir={tmp_path}", "model.device=cpu", "train.tensorboard=false", "train.plot=false",
        "rollout.tasks_per_iter=2", "rollout.group_size=2", "sft.episodes=4", "sft.steps=2",
        "generation.sampling.max_new_tokens=24",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    assert "credit/matchtir_match_mean" in rows[1] and "batch/loss_tokens" in rows[1]


def test_vpr_sokoban_recipe_runs_on_cpu(tiny_model_dir, tmp_path):
    """VPR inside training: state-group rollouts on Sokoban (the BFS oracle scores every candidate),
    the vpr credit stage, a PPO update; end to end with the tiny model."""
    app = typer.Typer()
    app.command("train")(train)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, [
        "train", "vpr_sokoban", f"model.path={tiny_model_dir}", "train.iterations=1",
        f"train.out_dir={tmp_path}", "model.device=cpu", "train.tensorboard=false", "train.plot=false",
    ])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1]
    it = rows[1]
    assert it["vpr/episodes"] == 2 and it["vpr/candidates"] == 4 * 2 * it["vpr/episode_length"]
    # the warm start makes some candidates moves, so some state groups differ and are trained
    assert it["vpr/candidate_valid_rate"] > 0 and it["credit/vpr_masked_group_share"] < 1
    assert it["batch/loss_tokens"] > 0
    samples = [json.loads(line) for line in (tmp_path / "samples" / "trajectories.jsonl").read_text().splitlines()]
    assert samples and all(len(s["turns"]) == 1 and "vpr" in s["info"] for s in samples)
