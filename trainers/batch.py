"""Padded training tensors from token sequences and per-turn credit.

Per-turn values (advantage, loss mask, clip scale) are broadcast to tokens through
``turn_ids``, never through value changes, so two adjacent turns with equal advantages stay two
turns in the GSPO-turn ratio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch

from .chat import TokenSequence

__all__ = ["Batch", "make_batch"]


@dataclass
class Batch:
    """``[B, T]`` tensors, right-padded; ``attention_mask`` covers every real token,
    ``loss_mask`` only sampled tokens of turns the credit step keeps."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    turn_ids: torch.Tensor
    advantages: torch.Tensor
    clip_scale: torch.Tensor
    rollout_logp: torch.Tensor
    old_logp: torch.Tensor  # filled by the trainer: θ_old (the weights that sampled)
    ref_logp: torch.Tensor  # filled by the trainer when KL is on

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: slice | torch.Tensor) -> Batch:
        """Rows ``index``, trimmed to their longest sequence."""
        rows = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        width = int(rows["attention_mask"].sum(1).max().item()) if len(rows["input_ids"]) else 0
        return Batch(**{k: v[:, :width] for k, v in rows.items()})

    def micro_batches(self, size: int, token_budget: int | None = None,
                      packed: bool = False) -> Iterator[tuple[torch.Tensor, Batch]]:
        """``(rows, micro-batch)`` pairs that cover every row once, of rows of similar length.

        Rows go longest first and a micro-batch ends after ``size`` rows, or earlier where its
        tokens would pass ``token_budget`` (a row longer than the budget goes alone). Its tokens
        are rows × its longest row when it is padded to that row, so grouping similar lengths cuts
        the padding a random split computes on; ``packed`` (the forward runs on the rows' real
        tokens concatenated, see :func:`~agentgym.trainers.losses.sequence_logprobs`) counts the
        real tokens only. The order is free for the update: every loss normaliser spans the
        mini-batch, so accumulation order changes only float rounding.
        """
        lengths = self.attention_mask.sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        sizes = lengths[order].tolist()
        start = 0
        while start < len(order):
            end, tokens = start + 1, sizes[start]
            while end < min(start + size, len(order)):
                tokens += sizes[end]
                if token_budget is not None and (tokens if packed else (end - start + 1) * sizes[start]) > token_budget:
                    break
                end += 1
            rows = order[start:end]
            yield rows, self.select(rows)
            start = end

    def to(self, device: torch.device) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def make_batch(
    seqs: Sequence[TokenSequence],
    advantages: Sequence[Sequence[float]],
    turn_loss_mask: Sequence[Sequence[float]],
    clip_scale: Sequence[Sequence[float]],
    pad_id: int,
) -> Batch:
    """Broadcast per-turn ``advantages[i][t]`` (and mask, clip scale) onto turn t's tokens."""
    width = max(len(s) for s in seqs)
    shape = (len(seqs), width)
    out = Batch(
        input_ids=torch.full(shape, pad_id, dtype=torch.long),
        attention_mask=torch.zeros(shape, dtype=torch.long),
        loss_mask=torch.zeros(shape),
        turn_ids=torch.full(shape, -1, dtype=torch.long),
        advantages=torch.zeros(shape),
        clip_scale=torch.ones(shape),
        rollout_logp=torch.zeros(shape),
        old_logp=torch.zeros(shape),
        ref_logp=torch.zeros(shape),
    )
    for i, seq in enumerate(seqs):
        n = len(seq)
        turns = torch.tensor(seq.turn_ids, dtype=torch.long)
        sampled = turns >= 0
        index = turns.clamp(min=0)
        out.input_ids[i, :n] = torch.tensor(seq.input_ids)
        out.attention_mask[i, :n] = 1
        out.turn_ids[i, :n] = turns
        out.loss_mask[i, :n] = torch.tensor(seq.loss_mask, dtype=torch.float32) * _per_turn(turn_loss_mask[i], index) * sampled
        out.advantages[i, :n] = _per_turn(advantages[i], index) * sampled
        out.clip_scale[i, :n] = torch.where(sampled, _per_turn(clip_scale[i], index), torch.ones(n))
        out.rollout_logp[i, :n] = torch.tensor(seq.rollout_logprobs, dtype=torch.float32)
    return out


def _per_turn(values: Sequence[float], index: torch.Tensor) -> torch.Tensor:
    return torch.tensor([*values, 0.0], dtype=torch.float32)[index]
