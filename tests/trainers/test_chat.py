"""Token-in/token-out sequences: template deltas, spans, masks and turn ids."""

import asyncio

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.core import TextEnv
from agentgym.credit.tokens import broadcast_to_tokens, token_turn_ids
from agentgym.registry import spec
from agentgym.rollout import plan, rollout
from agentgym.trainers.batch import make_batch
from agentgym.trainers.chat import ChatTokenizer, TemplateError, annotate_tokens, to_sequence
from agentgym.trainers.generation import HFGenerator, Sample, SamplingParams, TransformersPolicy
from agentgym.trainers.models import load_policy
from agentgym.trajectory import Trajectory, Turn


@pytest.fixture(scope="module")
def policy_model(tiny_model_dir):
    return load_policy(tiny_model_dir, device="cpu")


@pytest.mark.parametrize(("template", "error"), [
    # earlier assistant turns rendered without their text: where a completion ends is lost
    ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
     "{{ '<|im_start|>assistant\n<|im_end|>\n' }}{% else %}"
     "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", "drops an assistant message"),
    # assistant turns closed by a newline, not EOS: a sampled EOS could not be continued
    ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}", "does not end an assistant turn"),
])
def test_templates_that_cannot_be_continued_are_refused(policy_model, template, error):
    tok = policy_model.tokenizer
    saved = tok.chat_template
    tok.chat_template = template
    try:
        with pytest.raises(TemplateError, match=error):
            ChatTokenizer(tok)
    finally:
        tok.chat_template = saved


def test_policy_contexts_equal_reconstructed_sequences(policy_model):
    """What the policy saw before each turn is exactly the sequence prefix the trainer rebuilds."""
    torch.manual_seed(0)
    gen = HFGenerator(policy_model.model, policy_model.chat.eos_id, policy_model.chat.pad_id)
    seen: list[list[int]] = []
    generate = gen.generate
    gen.generate = lambda prompts, params: (seen.extend(prompts), generate(prompts, params))[1]
    policy = TransformersPolicy(gen, policy_model.chat, SamplingParams(max_new_tokens=6))
    env_spec = spec("agentgym/Bifurcation-v0")
    trajs = asyncio.run(rollout(env_spec, policy, plan("c", tasks=2, group_size=3), concurrency=6,
                                env_kwargs={"horizon": 3}))
    assert len(seen) == sum(t.num_turns for t in trajs) and max(t.num_turns for t in trajs) > 1
    system = env_spec.make().system_prompt
    prompts = {tuple(p) for p in seen}
    for traj in trajs:
        annotate_tokens(traj, policy_model.chat, system)
        seq = to_sequence(traj)
        for turn in traj.turns:
            start, end = turn.action_span
            assert tuple(seq.input_ids[:start]) in prompts
            assert seq.input_ids[start:end] == turn.action_token_ids
            assert seq.rollout_logprobs[start:end] == turn.action_logprobs


class StopEnv(TextEnv):
    """Declares stop strings; the policy only reads them."""

    def __init__(self, stop: tuple[str, ...]):
        super().__init__()
        self.stop_sequences = stop


def test_policy_passes_each_envs_stop_strings_to_the_backend(policy_model):
    calls = []

    class Recorder:
        def generate(self, prompts, params):
            calls.append((len(prompts), params.stop))
            return [Sample([5, policy_model.chat.eos_id], [-1.0, -1.0], "stop") for _ in prompts]

    policy = TransformersPolicy(Recorder(), policy_model.chat, SamplingParams(stop=("STOP",)))
    envs = [StopEnv(("\n```\n",)), StopEnv(()), StopEnv(("\n```\n", "STOP"))]

    async def main():
        return await asyncio.gather(*(policy.act([{"role": "user", "content": "hi"}], env) for env in envs))

    assert len(asyncio.run(main())) == 3
    assert sorted(calls) == [(1, ("STOP",)), (2, ("STOP", "\n```\n"))]  # one batch per set of strings


class _Interrupted(BaseException):
    """Not an Exception, like KeyboardInterrupt or pytest-timeout's Failed."""


def test_an_interrupt_inside_generation_reaches_every_waiting_episode(policy_model):
    class Interrupting:
        def generate(self, prompts, params):
            raise _Interrupted

    policy = TransformersPolicy(Interrupting(), policy_model.chat, SamplingParams())

    async def main():
        acts = [policy.act([{"role": "user", "content": str(i)}], StopEnv(())) for i in range(3)]
        return await asyncio.wait_for(asyncio.gather(*acts, return_exceptions=True), timeout=60)

    results = asyncio.run(main())  # before the fix the futures were never resolved: TimeoutError
    assert [type(r) for r in results] == [_Interrupted] * 3


def test_policy_refuses_a_foreign_conversation(policy_model):
    gen = HFGenerator(policy_model.model, policy_model.chat.eos_id, policy_model.chat.pad_id)
    policy = TransformersPolicy(gen, policy_model.chat, SamplingParams(max_new_tokens=2))
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}]
    with pytest.raises(ValueError, match="token-in/token-out"):
        asyncio.run(policy.act(messages, object()))


_turn = st.tuples(st.text(max_size=30), st.lists(st.integers(3, 900), min_size=1, max_size=6),
                  st.floats(-5, 5), st.sampled_from([0.0, 1.0]), st.sampled_from(["user", "tool"]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_turn, min_size=1, max_size=5), min_size=1, max_size=4))
def test_turn_advantage_lands_on_its_own_tokens(policy_model, episodes):
    chat = policy_model.chat
    seqs, advs, masks, spans, trajs = [], [], [], [], []
    for i, turns in enumerate(episodes):
        traj = Trajectory(f"t{i}", "g", "task", "env", 0, "p", turns=[
            Turn(index=k, observation=obs, action="", role=role, action_token_ids=ids,
                 action_logprobs=[-0.5] * len(ids))
            for k, (obs, ids, _, _, role) in enumerate(turns)
        ])
        annotate_tokens(traj, chat, "sys")
        trajs.append(traj)
        seqs.append(to_sequence(traj))
        spans.append([t.action_span for t in traj.turns])
        advs.append([t[2] for t in turns])
        masks.append([t[3] for t in turns])
    batch = make_batch(seqs, advs, masks, [[1.0] * len(a) for a in advs], chat.pad_id)
    for i, turns in enumerate(episodes):
        n = len(seqs[i])
        assert batch.attention_mask[i].sum() == n and batch.attention_mask[i, :n].all()
        assert batch.turn_ids[i, :n].tolist() == token_turn_ids(spans[i], n).tolist()  # the credit library's reference
        assert torch.allclose(batch.advantages[i, :n].double(), torch.from_numpy(broadcast_to_tokens(advs[i], spans[i], n)))
        for k, (_, ids, adv, keep, _) in enumerate(turns):
            on_turn = batch.turn_ids[i] == k
            assert on_turn.sum() == len(ids)  # equal advantages never merge turns
            assert batch.input_ids[i][on_turn].tolist() == ids
            assert torch.allclose(batch.advantages[i][on_turn], torch.tensor(adv, dtype=torch.float32))
            assert (batch.loss_mask[i][on_turn] == keep).all()
        not_sampled = batch.turn_ids[i] < 0
        assert (batch.advantages[i][not_sampled] == 0).all() and (batch.loss_mask[i][not_sampled] == 0).all()
        for k, (obs, _, _, _, role) in enumerate(turns):
            if k and role == "tool":  # a tool result: wrapped by the template, never trained on
                start, end = trajs[i].turns[k].obs_span
                text = chat.tokenizer.decode(seqs[i].input_ids[start:end])
                assert f"<|im_start|>user\n<tool_response>\n{obs}\n</tool_response><|im_end|>" in text
                assert not any(seqs[i].loss_mask[start:end]) and (batch.advantages[i, start:end] == 0).all()
