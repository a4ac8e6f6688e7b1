"""PPO-clip, GSPO-turn ratio, dual clip, KL estimators, aggregation and exact accumulation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.credit.tokens import turn_level_ratio
from agentgym.trainers.losses import (
    LossConfig,
    aggregate,
    kl_penalty,
    loss_denominator,
    policy_loss,
    sequence_logprobs,
    turn_mean,
)
from agentgym.trainers.models import load_policy


def _loss(logp, old, adv, cfg, turns=None, scale=None):
    turns = torch.zeros_like(logp, dtype=torch.long) if turns is None else turns
    scale = torch.ones_like(logp) if scale is None else scale
    return policy_loss(logp, old, adv, turns, scale, cfg)


def test_clip_low_and_high_are_separate_and_stop_the_gradient():
    cfg = LossConfig(clip_low=0.2, clip_high=0.28)
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.2, 0.5, 0.9])).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, clipped = _loss(logp, old, adv, cfg)
    assert torch.allclose(loss, torch.tensor([-1.28, -1.2, 0.8, 0.9]))
    assert clipped.tolist() == [1.0, 0.0, 1.0, 0.0]
    loss.sum().backward()
    assert logp.grad[0] == 0 and logp.grad[2] == 0 and logp.grad[1] != 0 and logp.grad[3] != 0


def test_dual_clip_bounds_negative_advantage_loss():
    cfg = LossConfig(dual_clip=3.0)
    loss, _ = _loss(torch.log(torch.tensor([10.0, 10.0])), torch.zeros(2), torch.tensor([-2.0, 2.0]), cfg)
    assert torch.allclose(loss, torch.tensor([6.0, -2.56]))


def test_adaptive_clip_scale_moves_the_bounds():
    """docs/credit.md#worked-a2tgpo: ε=(0.2, 0.28), A>0, ρ=1.5 → upper bound 1.3188 at c=1.1386."""
    cfg = LossConfig(clip_low=0.2, clip_high=0.28)
    logp = torch.log(torch.tensor([1.5, 1.5]))
    loss, _ = _loss(logp, torch.zeros(2), torch.ones(2), cfg, scale=torch.tensor([1.1386, 0.8614]))
    assert torch.allclose(-loss, torch.tensor([1.3188, 1.2412]), atol=1e-4)


def test_turn_ratio_value_is_the_turn_geometric_mean_with_per_token_gradients():
    cfg = LossConfig(ratio="turn", clip_low=10, clip_high=10)
    logp = torch.tensor([[0.0, -1.0, -2.0, -0.5, -0.1]], requires_grad=True)
    old = torch.tensor([[0.0, -1.5, -1.5, -0.5, -0.4]])
    turns = torch.tensor([[-1, 0, 0, 1, 1]])
    adv = torch.tensor([[0.0, 1.0, 1.0, 2.0, 2.0]])
    loss, _ = _loss(logp, old, adv, cfg, turns=turns)
    assert torch.allclose(-loss[0, 1:3], torch.ones(2) * math.exp(0.0))  # (+0.5 − 0.5) / 2
    assert torch.allclose(-loss[0, 3:], 2 * torch.ones(2) * math.exp(0.15))
    loss.sum().backward()
    assert torch.allclose(logp.grad[0, 1:], -adv[0, 1:] * torch.tensor([1, 1, math.exp(0.15), math.exp(0.15)]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), st.floats(-3, 0), st.floats(-3, 0)), min_size=1, max_size=20))
def test_turn_ratio_matches_the_credit_librarys_reference(rows):
    turns = torch.tensor([[r[0] for r in rows]])
    logp, old = torch.tensor([[r[1] for r in rows]]), torch.tensor([[r[2] for r in rows]])
    cfg = LossConfig(ratio="turn", clip_low=100, clip_high=100)
    loss, _ = _loss(logp, old, torch.ones_like(logp), cfg, turns=turns)
    expected = turn_level_ratio(logp[0].numpy(), old[0].numpy(), turns[0].numpy())
    on = turns[0] >= 0
    torch.testing.assert_close(-loss[0][on].double(), torch.from_numpy(expected)[on], rtol=1e-5, atol=1e-6)


def test_turn_mean_keeps_adjacent_turns_separate():
    values = torch.tensor([[1.0, 1.0, 3.0, 5.0, 9.0]])
    turns = torch.tensor([[-1, 0, 0, 1, 2]])
    assert turn_mean(values, turns).tolist() == [[0.0, 2.0, 2.0, 5.0, 9.0]]


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    log_r = ref - logp
    assert torch.allclose(kl_penalty(logp, ref, "k1"), -log_r)
    assert torch.allclose(kl_penalty(logp, ref, "k2"), 0.5 * log_r**2)
    k3 = kl_penalty(logp, ref, "k3")
    assert torch.allclose(k3, log_r.exp() - 1 - log_r) and (k3 >= 0).all()
    assert kl_penalty(logp, logp, "k3").abs().max() == 0


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "dr-grpo"])
def test_aggregation_modes(agg):
    values = torch.tensor([[1.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    cfg = LossConfig(agg=agg, dr_grpo_norm=10)
    expected = {"token-mean": 7 / 3, "seq-mean-token-sum": 7 / 2, "dr-grpo": 7 / 20}[agg]
    assert aggregate(values, mask, loss_denominator(mask, cfg)).item() == pytest.approx(expected)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "dr-grpo"])
def test_accumulated_micro_batch_grads_equal_full_batch(tiny_model_dir, agg):
    torch.manual_seed(0)
    policy = load_policy(tiny_model_dir, device="cpu")
    model = policy.model
    ids = torch.randint(3, 500, (6, 20))
    attn = torch.ones_like(ids)
    attn[4:, 15:] = 0
    mask = torch.zeros(6, 20)
    mask[:, 8:] = 1
    mask *= attn
    turns = torch.where(mask > 0, torch.arange(20) // 6, -1)
    adv = torch.randn(6, 1).expand(6, 20) * mask
    cfg = LossConfig(agg=agg, kl="k3", kl_coef=0.1, entropy_coef=0.01, ratio="turn")
    with torch.no_grad():
        old, _ = sequence_logprobs(model, ids, attn)
        old = old + 0.1 * torch.randn_like(old)
    denom = loss_denominator(mask, cfg)

    def loss_of(rows):
        logp, ent = sequence_logprobs(model, ids[rows], attn[rows], entropy=True)
        pg, _ = policy_loss(logp, old[rows], adv[rows], turns[rows], torch.ones_like(logp), cfg)
        kl = kl_penalty(logp, old[rows], cfg.kl)
        m = mask[rows]
        return aggregate(pg + cfg.kl_coef * kl - cfg.entropy_coef * ent, m, denom)

    model.zero_grad()
    loss_of(slice(0, 6)).backward()
    full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for rows in (slice(0, 2), slice(2, 5), slice(5, 6)):
        loss_of(rows).backward()
    for g_full, p in zip(full, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g_full, rtol=1e-4, atol=1e-6)


def _full_logits_logprobs(model, ids, attn, temperature=1.0):
    """The reference: full-vocabulary fp32 log-softmax at every position."""
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float() / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, ids[:, 1:, None]).squeeze(-1)
    ent = -(logp_all.exp() * logp_all).sum(-1)
    pad = torch.zeros(ids.shape[0], 1)
    return torch.cat([pad, logp], 1), torch.cat([pad, ent], 1)


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_logprobs_at_loss_positions_equal_the_full_softmax_values_and_gradients(tiny_model_dir, chunk_size):
    torch.manual_seed(0)
    model = load_policy(tiny_model_dir, device="cpu").model
    ids = torch.randint(3, 500, (3, 16))
    attn = torch.ones_like(ids)
    attn[2, 12:] = 0
    positions = torch.zeros(3, 16, dtype=torch.bool)
    positions[:, 9:] = True
    positions[1, 3] = True
    weights = torch.randn(3, 16)

    ref_logp, ref_ent = _full_logits_logprobs(model, ids, attn, temperature=0.7)
    kept = positions & attn.bool()
    ((ref_logp + 0.1 * ref_ent) * weights * kept).sum().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    logp, ent = sequence_logprobs(model, ids, attn, 0.7, entropy=True, positions=positions, chunk_size=chunk_size)
    ((logp + 0.1 * ent) * weights).sum().backward()
    torch.testing.assert_close(logp[kept], ref_logp[kept], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[kept], ref_ent[kept], rtol=1e-5, atol=1e-5)
    assert not logp[~kept].any() and not ent[~kept].any()  # nothing computed where no loss reads it
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-5)  # summation order differs


def test_logprobs_without_positions_cover_every_real_token(tiny_model_dir):
    model = load_policy(tiny_model_dir, device="cpu").model
    ids = torch.randint(3, 500, (2, 10))
    attn = torch.ones_like(ids)
    attn[1, 6:] = 0
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, ids, attn)
        ref, _ = _full_logits_logprobs(model, ids, attn)
    real = attn.bool()
    real[:, 0] = False
    torch.testing.assert_close(logp[real], ref[real], rtol=1e-5, atol=1e-5)
    assert (logp[real] < 0).all() and not logp[~real].any()


def test_a_head_that_is_not_a_plain_linear_map_takes_the_full_logits_path(tiny_model_dir):
    model = load_policy(tiny_model_dir, device="cpu").model
    ids = torch.randint(3, 500, (2, 8))
    attn = torch.ones_like(ids)
    head_calls = []
    model.get_output_embeddings().register_forward_hook(lambda *_: head_calls.append(1))
    with torch.no_grad():
        fast, _ = sequence_logprobs(model, ids, attn)
        assert not head_calls  # the fast path projects only the gathered rows itself
        model.config.final_logit_softcapping = 30.0  # Qwen2 ignores it, so the values must agree
        try:
            slow, _ = sequence_logprobs(model, ids, attn)
        finally:
            model.config.final_logit_softcapping = None
    assert head_calls  # the model's own forward, head and all
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_a_micro_batch_without_loss_tokens_still_backpropagates(tiny_model_dir):
    model = load_policy(tiny_model_dir, device="cpu").model
    ids = torch.randint(3, 500, (2, 8))
    attn = torch.ones_like(ids)
    logp, ent = sequence_logprobs(model, ids, attn, entropy=True, positions=torch.zeros_like(ids, dtype=torch.bool))
    assert not logp.any() and not ent.any()
    (logp.sum() + ent.sum()).backward()  # e.g. every group filtered out: a zero update, not a crash
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
