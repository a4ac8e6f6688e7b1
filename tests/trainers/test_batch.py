"""Micro-batches grouped by length: every row once, within the row and token budgets, and an
update whose result does not depend on how the mini-batch was cut."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_trainer import small_recipe

from agentgym.trainers.batch import Batch
from agentgym.trainers.trainer import Trainer


def ragged_batch(lengths: list[int]) -> Batch:
    width = max(lengths)
    attn = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        attn[i, :n] = 1
    ids = torch.arange(len(lengths))[:, None].expand(-1, width) * attn  # each row's index, for tracking
    zeros = torch.zeros(len(lengths), width)
    return Batch(ids, attn, zeros, ids, zeros, zeros, zeros, zeros, zeros)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=40), st.integers(1, 8), st.none() | st.integers(1, 256),
       st.booleans())
def test_micro_batches_cover_every_row_once_within_both_budgets(lengths, size, budget, packed):
    """Padded, a micro-batch's tokens are rows × its longest row; packed, its real tokens."""
    batch = ragged_batch(lengths)
    seen = []
    for rows, micro in batch.micro_batches(size, budget, packed):
        longest = max(lengths[r] for r in rows.tolist())
        assert micro.input_ids.shape == (len(rows), longest)  # padded to its own longest row only
        assert torch.equal(micro.input_ids[:, 0], rows)
        assert len(rows) <= size
        tokens = sum(lengths[r] for r in rows.tolist()) if packed else len(rows) * longest
        assert budget is None or len(rows) == 1 or tokens <= budget
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(lengths)))


def test_grouping_by_length_pads_less_than_cutting_in_order():
    lengths = [64, 4, 60, 6, 58, 5, 62, 3]
    batch = ragged_batch(lengths)
    grouped = sum(micro.input_ids.numel() for _, micro in batch.micro_batches(2))
    in_order = sum(batch.select(slice(i, i + 2)).input_ids.numel() for i in range(0, len(lengths), 2))
    assert grouped == 2 * (64 + 60 + 6 + 4) and in_order == 2 * (64 + 60 + 58 + 62)


@pytest.mark.parametrize("optim", [{"micro_batch_size": 1}, {"micro_batch_size": 8, "micro_batch_tokens": 40},
                                   {"micro_batch_size": 8, "micro_batch_tokens": 1200, "packing": True}])
def test_update_is_the_same_however_the_mini_batch_is_cut(tiny_model_dir, tmp_path, optim):
    whole = {"epochs": 1, "mini_batch_size": None, "micro_batch_size": 64}
    a = Trainer(small_recipe(tiny_model_dir, tmp_path / "a", optim=whole, loss={"kl": "k3"}))
    b = Trainer(small_recipe(tiny_model_dir, tmp_path / "b", optim={**whole, **optim}, loss={"kl": "k3"}))
    trajs = a.collect(a.task_seeds(0, 2), 4, "x")
    credit = a.credit_fn(trajs, a.pipeline, None)
    batch = a.to_batch(trajs, credit)
    assert len(set(batch.attention_mask.sum(1).tolist())) > 1, "the rows must differ in length"
    if b.recipe.optim.packing:  # rows of ~590 tokens: two to a micro-batch under the budget
        assert max(len(rows) for rows, _ in batch.micro_batches(8, 1200, packed=True)) == 2
    torch.testing.assert_close(b._logprobs(b.pm.model, batch), a._logprobs(a.pm.model, batch), rtol=1e-5, atol=1e-6)
    ma, mb = a.update(batch), b.update(b.to_batch(trajs, credit))
    # Packed, attention runs over other shapes and sums in another order; Adam divides by √v, which
    # magnifies that rounding where a gradient is near 0 (seen: 4e-6 on 6 of 108,544 weights, lr 1e-3).
    atol = 1e-5 if b.recipe.optim.packing else 1e-6
    for p, q in zip(a.pm.model.parameters(), b.pm.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=atol)
    for key in ("loss/policy", "loss/kl", "batch/loss_tokens"):
        assert ma[key] == pytest.approx(mb[key], rel=1e-4, abs=1e-6), key
