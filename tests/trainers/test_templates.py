"""Chat-template families: the ids the trainer builds for a multi-turn episode with tool turns are
exactly the ids the policy sampled plus the ids the template adds for each observation.

Each family's behaviour is written here as a Jinja template (not copied) on the tiny tokenizer,
with the family's special tokens added. The engine is scripted (:class:`ScriptedEngine`): an
untrained tiny model cannot produce ``<think>`` reasoning or a chosen non-canonical split, which
is what these tests need; the tokenizer, the templates, the policy and the trainer's code are real.
"""

import asyncio

import pytest
from support import ToolTurnsEnv
from transformers import AutoTokenizer

import agentgym
from agentgym.rollout import plan, rollout
from agentgym.trainers.chat import ChatTokenizer, annotate_tokens, retokenize, to_sequence
from agentgym.trainers.generation import Sample, SamplingParams, TransformersPolicy
from agentgym.trainers.tiny import CHATML_TEMPLATE
from agentgym.trajectory import Trajectory, Turn

SYSTEM = "Answer briefly."

_TOOL = ("{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{ '<|im_start|>user' }}{%- endif %}"
         "{{ '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
         "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{ '<|im_end|>\n' }}{%- endif %}")

# Qwen3: an assistant message's <think> reasoning is rendered only after the last real user query
# (tool results do not count as one); earlier turns lose it.
QWEN3 = (
    "{%- set ns = namespace(last_query=messages|length - 1, searching=true) %}"
    "{%- for message in messages[::-1] %}{%- set i = messages|length - 1 - loop.index0 %}"
    "{%- if ns.searching and message['role'] == 'user' and not message['content'].startswith('<tool_response>') %}"
    "{%- set ns.searching = false %}{%- set ns.last_query = i %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}{%- set reasoning = '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
    "{{ '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}"
    "{%- else %}{{ '<|im_start|>assistant\n' + content }}{%- endif %}{{ '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'tool' %}" + _TOOL +
    "{%- else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
# Llama-3.1: a dated system header, message text trimmed, tool results in the ipython role.
LLAMA3 = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n\n' + system + '<|eot_id|>' }}"
    "{%- for m in messages %}"
    "{%- if m['role'] == 'tool' %}{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
    "{%- else %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
# Mistral (v0.3 layout): [INST] turns, no generation prompt, assistant text trimmed and closed by
# </s> with no separator after it, the system prompt only in the last user message, tool results
# in [TOOL_RESULTS] (the real template's call-id bookkeeping left out).
MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for m in loop_messages %}"
    "{%- if m['role'] == 'user' %}"
    "{%- if loop.last and system is defined %}{{- '[INST] ' + system + '\n\n' + m['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + m['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif m['role'] == 'assistant' %}{{- ' ' + m['content'] | trim + eos_token }}"
    "{%- elif m['role'] == 'tool' %}{{- '[TOOL_RESULTS] ' + m['content'] + '[/TOOL_RESULTS]' }}"
    "{%- endif %}{%- endfor %}"
)

_CHATML_DELTA = {"user": "\n<|im_start|>user\n{obs}<|im_end|>\n<|im_start|>assistant\n",
                 "tool": "\n<|im_start|>user\n<tool_response>\n{obs}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"}
# family: (template, added special tokens, eos, bos, what the template adds after a completion's EOS)
FAMILIES = {
    "qwen2.5": (CHATML_TEMPLATE, {}, None, None, _CHATML_DELTA),
    "qwen3": (QWEN3, {}, None, None, _CHATML_DELTA),
    "llama3": (LLAMA3, {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"]},
               "<|eot_id|>", "<|begin_of_text|>",
               {"user": "<|start_header_id|>user<|end_header_id|>\n\n{obs}<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n",
                "tool": "<|start_header_id|>ipython<|end_header_id|>\n\n{obs}<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n"}),
    "mistral": (MISTRAL, {"additional_special_tokens": ["[INST]", "[/INST]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"]},
                "</s>", "<s>",
                {"user": "[INST] " + SYSTEM + "\n\n{obs}[/INST]", "tool": "[TOOL_RESULTS] {obs}[/TOOL_RESULTS]"}),
}


def family_chat(model_dir, family: str) -> ChatTokenizer:
    template, special, eos, bos, _ = FAMILIES[family]
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.add_tokens(["<think>", "</think>"])  # Qwen3's: ordinary added tokens, kept in decoded text
    tok.add_special_tokens({**special, **({"eos_token": eos, "bos_token": bos} if eos else {})})
    tok.chat_template = template
    return ChatTokenizer(tok)


class ScriptedEngine:
    """A generation backend that answers each prompt with scripted ids and records both: reasoning
    (Qwen3 style), an answer spelled one token per character (a split re-tokenising its text would
    merge) with spaces a template would trim, closed by EOS except every third sample (cut off)."""

    def __init__(self, chat: ChatTokenizer, reasoning: bool):
        self.chat, self.reasoning = chat, reasoning
        self.sampled: list[tuple[list[int], list[int]]] = []  # (prompt, sample)

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            k = len(self.sampled)
            ids = self.chat.encode(f"<think>\nlook up step {k}\n</think>\n\n") if self.reasoning else []
            ids += [i for c in f" ok{k} " for i in self.chat.encode(c)]
            cut = k % 3 == 2
            ids += [] if cut else [self.chat.eos_id]
            self.sampled.append((list(prompt), ids))
            out.append(Sample(ids, [-0.5] * len(ids), "length" if cut else "stop"))
        return out


class SystemToolTurnsEnv(ToolTurnsEnv):
    """ToolTurnsEnv with a system prompt (Mistral-style templates move it)."""

    system_prompt = SYSTEM


def _episodes(chat: ChatTokenizer, reasoning: bool) -> tuple[ScriptedEngine, list[Trajectory]]:
    engine = ScriptedEngine(chat, reasoning)
    policy = TransformersPolicy(engine, chat, SamplingParams(max_new_tokens=32))
    agentgym.register("tests/SystemToolTurns-v0", SystemToolTurnsEnv, max_turns=5, force=True)
    try:
        trajs = asyncio.run(rollout(agentgym.spec("tests/SystemToolTurns-v0"), policy, plan("t", tasks=2, group_size=1)))
    finally:
        agentgym.registry.unregister("tests/SystemToolTurns-v0")
    return engine, trajs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_trained_ids_are_the_sampled_ids_plus_the_template_deltas(tiny_model_dir, family):
    chat = family_chat(tiny_model_dir, family)
    deltas = FAMILIES[family][4]
    engine, trajs = _episodes(chat, reasoning=family == "qwen3")
    assert all(t.num_turns == 5 and t.failure is None for t in trajs) and len(engine.sampled) == 10
    assert {turn.role for t in trajs for turn in t.turns[1:]} == {"user", "tool"}
    for traj in trajs:
        seq = to_sequence(annotate_tokens(traj, chat, SYSTEM))
        opening = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": traj.turns[0].observation}]
        expected = chat.encode(chat.render(opening, generation_prompt=True))
        sampled_at: list[int] = []
        for turn in traj.turns:
            if turn.index:
                obs = turn.observation.strip() if family == "llama3" and turn.role == "user" else turn.observation
                expected += [] if expected[-1] == chat.eos_id else [chat.eos_id]
                expected += chat.encode(deltas[turn.role].format(obs=obs))
            sample = turn.action_token_ids
            assert (expected, sample) in engine.sampled  # the policy saw exactly this prompt and sampled this
            sampled_at += range(len(expected), len(expected) + len(sample))
            expected += sample
        assert seq.input_ids == expected
        assert [i for i, m in enumerate(seq.loss_mask) if m] == sampled_at
    text = chat.tokenizer.decode(seq.input_ids)
    if family == "qwen3":  # re-rendering drops turn 0's reasoning; the stream keeps it
        whole = chat.render([*opening, {"role": "assistant", "content": traj.turns[0].action},
                             {"role": "user", "content": traj.turns[1].observation}], generation_prompt=True)
        assert "look up step" not in whole.split("result 1")[0]
        assert "<think>\nlook up step" in text.split("result 1")[0]
    if family == "mistral":  # the system prompt in the first prompt and in every user delta
        assert text.count(SYSTEM) == 1 + sum(turn.role == "user" for turn in traj.turns[1:])


def test_retokenized_and_drifted_turns_are_counted(tiny_model_dir):
    chat = family_chat(tiny_model_dir, "qwen2.5")
    spelled = [i for c in "left" for i in chat.encode(c)]
    assert chat.encode("left") != spelled  # the tokenizer merges it
    turns = [
        Turn(0, "o", "go left", action_token_ids=chat.encode("go left") + [chat.eos_id]),  # sampled, canonical
        Turn(1, "o", "left", action_token_ids=spelled + [chat.eos_id]),  # sampled, a split text would not give
        Turn(2, "o", "right"),  # text only: re-tokenised, round-trips
        Turn(3, "o", "a<|im_end|>b"),  # text only: markup becomes an EOS inside the turn
    ]
    traj = Trajectory("t", "g", "task", "env", 0, "p", turns=turns)
    assert retokenize([traj], chat) == {"rollout/retokenized_turns": 2.0, "rollout/drifted_turns": 2.0}
    assert turns[2].action_token_ids == chat.encode("right") + [chat.eos_id]
    assert turns[1].action_token_ids == spelled + [chat.eos_id]  # sampled ids are never replaced
    seq = to_sequence(annotate_tokens(traj, chat, None))
    assert seq.input_ids[slice(*turns[3].action_span)] == chat.encode("a<|im_end|>b") + [chat.eos_id]


def test_a_training_step_on_text_only_turns_reports_them(tiny_model_dir, tmp_path):
    """A policy that returns text only (as an OpenAI-compatible server without token ids would):
    the step re-tokenises its turns, trains on them and says so in its metrics."""
    from agentgym.policies.simple import ScriptedPolicy
    from agentgym.trainers.config import recipe_from_dict
    from agentgym.trainers.trainer import Trainer

    recipe = recipe_from_dict({
        "env": {"id": "agentgym/Bifurcation-v0", "kwargs": {"horizon": 2}},
        "model": {"path": str(tiny_model_dir), "device": "cpu"},
        "rollout": {"tasks_per_iter": 2, "group_size": 2}, "loss": {"kl": "none"},
        "sft": {"steps": 0}, "eval": {"episodes_per_task": 0},
        "train": {"iterations": 1, "out_dir": str(tmp_path), "tensorboard": False, "plot": False},
    })
    trainer = Trainer(recipe, resume=False)
    trainer.policy = ScriptedPolicy(epsilon=0.5, seed=0)
    metrics = trainer.step()
    assert metrics["rollout/retokenized_turns"] == metrics["rollout/turns_mean"] * 4 > 0
    assert metrics["rollout/drifted_turns"] == 0 and metrics["batch/loss_tokens"] > 0
