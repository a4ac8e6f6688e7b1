"""Padding-free packed micro-batches (``optim.packing``): the same log-probs, entropies,
gradients and loss as the padded forward, no attention across rows, a probe that refuses a
model which would attend across them, and a real training iteration with packing on."""

import pytest
import torch
from test_trainer import small_recipe

from agentgym.trainers.losses import (
    LossConfig,
    aggregate,
    check_packing,
    loss_denominator,
    policy_loss,
    sequence_logprobs,
)
from agentgym.trainers.models import load_policy
from agentgym.trainers.trainer import Trainer


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    return load_policy(tiny_model_dir, device="cpu").model  # fp32


def ragged(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded random rows with a loss mask on the second half of each row, and a stray
    token earlier on (the loss positions of multi-turn rows are not one block)."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, 500, (len(lengths), width), generator=g)
    attn = (torch.arange(width) < torch.tensor(lengths)[:, None]).long()
    positions = (torch.arange(width) >= torch.tensor(lengths)[:, None] // 2) & attn.bool()
    positions[:, 1] = True
    return ids * attn, attn, positions


def test_packed_logprobs_entropies_gradients_and_loss_equal_the_padded_forward(model):
    ids, attn, positions = ragged([19, 4, 11, 2, 16])
    adv = torch.randn(ids.shape)
    cfg = LossConfig(entropy_coef=0.01)
    denom = loss_denominator(positions.float(), cfg)
    results = {}
    for packed in (False, True):
        model.zero_grad()
        logp, ent = sequence_logprobs(model, ids, attn, 0.7, entropy=True, positions=positions, packed=packed, chunk_size=5)
        pg, _ = policy_loss(logp, logp.detach(), adv, torch.zeros_like(ids), torch.ones_like(logp), cfg)
        loss = aggregate(pg - cfg.entropy_coef * ent, positions.float(), denom)
        loss.backward()
        results[packed] = logp.detach(), ent.detach(), loss.detach(), [p.grad.clone() for p in model.parameters()]
    (logp_a, ent_a, loss_a, grads_a), (logp_b, ent_b, loss_b, grads_b) = results[False], results[True]
    kept = positions & attn.bool()
    kept[:, 0] = False
    assert (logp_a[kept] < 0).all() and not logp_b[~kept].any() and not ent_b[~kept].any()
    torch.testing.assert_close(logp_b, logp_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent_b, ent_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in grads_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_packed_full_logits_path_equals_the_padded_one(model, monkeypatch):
    """A head that is not a plain linear map (here: a config that declares a logit scale) takes
    the full-logits path; packed, it is unpacked the same way."""
    monkeypatch.setattr(model.config, "logit_scale", 1.0, raising=False)
    ids, attn, positions = ragged([7, 3, 12])
    with torch.no_grad():
        padded, _ = sequence_logprobs(model, ids, attn, positions=positions)
        packed, _ = sequence_logprobs(model, ids, attn, positions=positions, packed=True)
    assert (padded[positions & attn.bool()] < 0).all()
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)


def test_packed_rows_do_not_attend_across_the_boundary(model):
    """Changing row 0's tokens leaves rows 1 and 2 alone when packed; the same change with the
    rows concatenated as one sequence (what a leak would be) does move them, so the test can fail."""
    ids, attn, positions = ragged([9, 7, 5])
    other = ids.clone()
    other[0, : attn[0].sum()] = torch.randint(3, 500, (int(attn[0].sum()),), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, _ = sequence_logprobs(model, ids, attn, positions=positions, packed=True)
        after, _ = sequence_logprobs(model, other, attn, positions=positions, packed=True)
        assert not torch.equal(before[0], after[0])
        torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-6)

        def concatenated(x):  # one causal sequence: rows 1 and 2 see row 0
            real = attn.bool()
            return model(input_ids=x[real][None], use_cache=False).logits[0, int(real[0].sum()):]

        assert (concatenated(other) - concatenated(ids)).abs().max() > 1e-2


class _IgnoresPositions(torch.nn.Module):
    """A model whose forward drops ``position_ids``, as a transformers release or architecture
    that does not read packed sequences from them would: it attends across the packed rows."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids, position_ids=None, **kwargs):
        return self.inner(input_ids=input_ids, **kwargs)


def test_a_model_that_would_attend_across_packed_rows_is_refused(model):
    check_packing(model)  # the real one passes
    with pytest.raises(RuntimeError, match="does not keep packed sequences apart.*optim.packing=false"):
        check_packing(_IgnoresPositions(model))
    ids, attn, _ = ragged([6, 4])
    with pytest.raises(RuntimeError, match="optim.packing"):
        sequence_logprobs(_IgnoresPositions(model), ids, attn, packed=True)


def test_a_training_iteration_with_packing(tiny_model_dir, tmp_path):
    """LoRA (a PEFT-wrapped model) and the KL reference (adapters off) go through the packed
    forward too; its log-probs agree with the ones the rollout sampled with."""
    recipe = small_recipe(tiny_model_dir, tmp_path, train={"iterations": 1}, model={"lora": {"r": 4, "alpha": 8}},
                          optim={"packing": True, "micro_batch_size": 8, "micro_batch_tokens": 1200})
    trainer = Trainer(recipe)
    before = [p.detach().clone() for p in trainer.params]
    last = trainer.fit()[-1]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params, strict=True))
    assert last["batch/loss_tokens"] > 0 and "loss/kl" in last
    assert last["is/mean_abs_log_ratio"] < 1e-3  # rollout and packed trainer log-probs agree
