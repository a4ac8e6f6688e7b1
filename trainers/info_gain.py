"""IGPO's gold-answer probe (docs/credit.md#gold-answer-probe): teacher-forced mean log-prob of the gold answer
after each turn, with the model that sampled (no grad). It implements the credit library's
:class:`agentgym.credit.GoldAnswerScorer` (``score``, plus ``trajectory_gold_logprobs`` so the
library never rebuilds token contexts from text), and SPA-RL's per-turn hidden states (``turn_features``).

For trajectory i and context k (k = 0: the opening prompt; k = t: everything up to and
including the observation that turn t−1 got back, i.e. the prompt of turn t), the context's
token ids are followed by a pseudo-response ``template.format(gold=...)`` + EOS. Only the gold
answer's tokens are averaged: they are located with the tokenizer's ``offset_mapping``; a token
that overlaps the gold span (e.g. one merged with a preceding newline) counts as gold, tokens
wholly in the template's prefix or suffix do not. Contexts are the token ids the policy saw,
never re-tokenised text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agentgym.credit import gold_answer, gold_token_range
from agentgym.trajectory import Trajectory

from .chat import annotate_tokens, to_sequence
from .losses import sequence_logprobs
from .models import PolicyModel

__all__ = ["TransformersGoldScorer", "gold_token_span"]

DEFAULT_TEMPLATE = "<answer> {gold} </answer>"
SIOP_PROBES = ("after_action", "after_observation")


def gold_token_span(tokenizer: Any, template: str, gold: str) -> tuple[list[int], int, int]:
    """Token ids of the pseudo-response and the ``[start, end)`` token range of the gold answer."""
    text = template.format(gold=gold)
    start = template.index("{gold}")
    end = start + len(gold)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    lo, hi = gold_token_range(enc["offset_mapping"], start, end)
    return list(enc["input_ids"]), lo, hi


class TransformersGoldScorer:
    """Gold-answer mean log-probs per context, batched, for the credit library's IG methods."""

    def __init__(
        self,
        pm: PolicyModel,
        *,
        template: str = DEFAULT_TEMPLATE,
        system_prompt: str | None = None,
        batch_size: int = 16,
    ):
        self.pm, self.template, self.system_prompt, self.batch_size = pm, template, system_prompt, batch_size

    def contexts(self, traj: Trajectory) -> list[list[int]]:
        """The prompt token ids before each turn's action (k = 0 … T−1)."""
        if traj.turns and traj.turns[0].action_span is None:
            annotate_tokens(traj, self.pm.chat, self.system_prompt)
        ids = to_sequence(traj).input_ids
        return [ids[: turn.action_span[0]] for turn in traj.turns]

    def siop_contexts(self, traj: Trajectory, probe: str = "after_action") -> list[list[int]]:
        """SIOP's T + 1 contexts: the prompt, then one per turn. ``after_action`` (SIOP's code):
        up to the end of turn t's action; ``after_observation``: up to the next turn's prompt
        (IGPO's probe), and after the last action for the last turn (no observation follows it
        in the trained sequence)."""
        if probe not in SIOP_PROBES:
            raise ValueError(f"probe must be one of {SIOP_PROBES}, got {probe!r}")
        if not traj.turns:
            return []
        if traj.turns[0].action_span is None:
            annotate_tokens(traj, self.pm.chat, self.system_prompt)
        ids = to_sequence(traj).input_ids
        turns = traj.turns
        ends = [t.action_span[1] if probe == "after_action" or k == len(turns) - 1 else turns[k + 1].action_span[0]
                for k, t in enumerate(turns)]
        return [ids[: turns[0].action_span[0]], *(ids[:e] for e in ends)]

    @torch.no_grad()
    def score(self, contexts: list[list[int]], golds: list[str]) -> list[float]:
        """Mean log-prob of each gold answer given its context (one value per pair)."""
        rows = []
        for ctx, gold in zip(contexts, golds, strict=True):
            response, start, end = gold_token_span(self.pm.tokenizer, self.template, gold)
            rows.append((ctx + response + [self.pm.chat.eos_id], len(ctx) + start, len(ctx) + end))
        out: list[float] = []
        model = self.pm.model
        was_training = model.training
        model.eval()
        try:
            for b in range(0, len(rows), self.batch_size):
                chunk = rows[b : b + self.batch_size]
                width = max(len(ids) for ids, _, _ in chunk)
                ids = torch.full((len(chunk), width), self.pm.chat.pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for r, (seq, _, _) in enumerate(chunk):
                    ids[r, : len(seq)] = torch.tensor(seq)
                    mask[r, : len(seq)] = 1
                logp, _ = sequence_logprobs(model, ids.to(self.pm.device), mask.to(self.pm.device))
                out += [logp[r, s:e].mean().item() for r, (_, s, e) in enumerate(chunk)]
        finally:
            model.train(was_training)
        return out

    @torch.no_grad()
    def turn_features(self, trajs: list[Trajectory]) -> list[np.ndarray]:
        """SPA-RL's progress-estimator input (docs/credit.md#spa-rl): per turn, the policy's last
        hidden state at the turn's last action token, i.e. after reading the history and the
        action (no grad; ``[T, d]`` per trajectory, ``[0, d]`` for one without turns)."""
        rows = []
        for traj in trajs:
            if traj.turns and traj.turns[0].action_span is None:
                annotate_tokens(traj, self.pm.chat, self.system_prompt)
            ids = to_sequence(traj).input_ids if traj.turns else []
            rows.append((ids, [t.action_span[1] - 1 for t in traj.turns]))
        model = self.pm.model
        was_training = model.training
        model.eval()
        out: list[np.ndarray] = []
        try:
            for b in range(0, len(rows), self.batch_size):
                chunk = rows[b : b + self.batch_size]
                width = max((len(ids) for ids, _ in chunk), default=0) or 1
                ids = torch.full((len(chunk), width), self.pm.chat.pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for r, (seq, _) in enumerate(chunk):
                    ids[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[r, : len(seq)] = 1
                hidden = model(input_ids=ids.to(self.pm.device), attention_mask=mask.to(self.pm.device),
                               output_hidden_states=True).hidden_states[-1].float().cpu()
                out += [hidden[r, pos].numpy().astype(np.float64) for r, (_, pos) in enumerate(chunk)]
        finally:
            model.train(was_training)
        return out

    def trajectory_gold_logprobs(self, trajs: list[Trajectory]) -> list[list[float]]:
        """ℓ_{i,k} for every trajectory i and context k, in one batched pass (infra failures and
        empty trajectories are not scored: they are out of the credit statistics)."""
        contexts, golds, sizes = [], [], []
        for traj in trajs:
            if traj.failure == "infra" or not traj.turns:
                sizes.append(0)
                continue
            ctx = self.contexts(traj)
            contexts += ctx
            golds += [gold_answer(traj)] * len(ctx)
            sizes.append(len(ctx))
        flat = self.score(contexts, golds)
        out, pos = [], 0
        for traj, n in zip(trajs, sizes, strict=True):
            out.append(flat[pos : pos + n] if n else [float("nan")] * traj.num_turns)
            pos += n
        return out
