"""Token log-probs and the policy-gradient loss terms (PPO-clip, GSPO-turn ratio, KL, entropy).

All terms take ``[batch, time]`` tensors aligned with ``input_ids``: position t holds the value
for token t given tokens < t (position 0 is 0 and never in the loss mask). Aggregation divides
by a denominator computed over the whole (mini-)batch, so summing micro-batch losses gives the
full-batch loss exactly and gradient accumulation is exact.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

__all__ = [
    "LossConfig",
    "aggregate",
    "check_packing",
    "kl_penalty",
    "loss_denominator",
    "policy_loss",
    "sequence_logprobs",
    "turn_mean",
]

AGG_MODES = ("token-mean", "seq-mean-token-sum", "dr-grpo")
KL_MODES = ("none", "k1", "k2", "k3")


@dataclass
class LossConfig:
    """PPO-clip settings. ``clip_high > clip_low`` is DAPO's clip-higher; ``dual_clip`` (c > 1)
    bounds the loss of negative-advantage tokens at c·|A|; ``ratio="turn"`` is GSPO-turn
    (A²TGPO §4.4); ``dr_grpo_norm`` is Dr.GRPO's constant length (None: the batch's width)."""

    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    ratio: str = "token"  # "token" | "turn"
    agg: str = "token-mean"
    dr_grpo_norm: int | None = None
    kl: str = "none"
    kl_coef: float = 0.0
    entropy_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.agg not in AGG_MODES:
            raise ValueError(f"agg must be one of {AGG_MODES}, got {self.agg!r}")
        if self.kl not in KL_MODES:
            raise ValueError(f"kl must be one of {KL_MODES}, got {self.kl!r}")
        if self.ratio not in ("token", "turn"):
            raise ValueError(f"ratio must be 'token' or 'turn', got {self.ratio!r}")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {self.dual_clip}")


def sequence_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float = 1.0,
    entropy: bool = False,
    positions: torch.Tensor | None = None,
    chunk_size: int = 256,
    packed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of every token given its prefix (and the policy's entropy there), at the
    sampling temperature so they compare with the rollout's.

    ``positions`` (bool ``[B, T]``) names the tokens whose log-prob is needed (the loss mask);
    every other position is returned as 0. Why: a policy-gradient batch needs log-probs only on
    sampled tokens, and the vocabulary projection is the largest activation of a small model
    (151,936 × fp32 per position for Qwen2). So the decoder's hidden states are gathered at those
    positions only and projected ``chunk_size`` rows at a time under activation checkpointing:
    no ``[B, T, V]`` tensor is ever built, and backward recomputes one chunk's logits at a time.
    Models whose head is more than a linear map of the last hidden state (logit soft-capping,
    scaling) take the plain full-logits path.

    ``packed``: run the model on the rows' real tokens concatenated into one row, with no
    padding, position ids restarting at 0 for each row and no attention mask. transformers
    (5.24, for one) reads restarting position ids as packed sequences and keeps attention within each one
    (a block-diagonal causal mask for sdpa/eager, varlen kernels for flash attention), so the
    results equal the padded forward's while no compute goes to padding. That is checked once
    per model (:func:`check_packing`) since a model or version that ignores it would silently
    attend across rows. The results come back in the ``[B, T]`` layout either way.
    """
    real = attention_mask.bool()
    need = real if positions is None else positions.bool() & real
    need = need[:, 1:] & real[:, :-1]  # a target whose predecessor is real
    head = _linear_head(model)
    if packed:
        check_packing(model)
        index = torch.full_like(input_ids, -1)
        index[real] = torch.arange(int(real.sum()), device=input_ids.device)
        at = index[:, :-1][need]  # where each needed target's predecessor sits in the packed row
        kwargs = {"input_ids": input_ids[real][None], "position_ids": (real.cumsum(1) - 1)[real][None]}
    else:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if head is None:
        out, weight, bias = model(**kwargs, use_cache=False).logits, None, None
    else:
        out, weight, bias = model.get_decoder()(**kwargs, use_cache=False).last_hidden_state, head.weight, head.bias
    hidden = out[0][at] if packed else out[:, :-1][need]
    targets = input_ids[:, 1:][need]
    scale = 1.0 / temperature if temperature > 0 else 1.0
    parts = [_chunk_logprobs(hidden[i : i + chunk_size], targets[i : i + chunk_size], weight, bias, scale, entropy)
             for i in range(0, len(targets), chunk_size)]
    # No position needed (every loss-mask entry 0): an empty tensor still tied to the graph, so a
    # caller's backward() works and simply gives the decoder zero gradients.
    logp_flat = torch.cat([p[0] for p in parts]) if parts else hidden.float().sum(-1)
    logp = logp_flat.new_zeros(need.shape).masked_scatter(need, logp_flat)
    pad = logp.new_zeros((input_ids.shape[0], 1))
    if not entropy:
        return torch.cat([pad, logp], 1), None
    ent_flat = torch.cat([p[1] for p in parts]) if parts else logp_flat
    ent = logp_flat.new_zeros(need.shape).masked_scatter(need, ent_flat)
    return torch.cat([pad, logp], 1), torch.cat([pad, ent], 1)


_PACKING_OK: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def check_packing(model: torch.nn.Module) -> None:
    """Raise unless ``model`` keeps packed sequences apart (once per model: the result is cached).

    Why a probe rather than a version check: whether restarting position ids isolate sequences
    depends on the transformers release, the architecture's mask code and the attention
    implementation, and where they do not, the forward runs fine and silently attends across
    rows. The probe packs two short sequences and requires the second one's logits to equal those
    of the same sequence run alone.
    """
    if model in _PACKING_OK:
        return
    vocab = int(model.config.vocab_size)
    device = next(model.parameters()).device
    first, second = torch.arange(1, 6, device=device) % vocab, torch.arange(7, 13, device=device) % vocab
    position_ids = torch.cat([torch.arange(len(first)), torch.arange(len(second))]).to(device)[None]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=torch.cat([first, second])[None], position_ids=position_ids,
                           use_cache=False).logits[0, len(first):].float()
            alone = model(input_ids=second[None], use_cache=False).logits[0].float()
    finally:
        model.train(training)
    tolerance = 1e-4 if next(model.parameters()).dtype == torch.float32 else 3e-2
    error = float((packed - alone).abs().max() / alone.abs().max().clamp(min=1e-6))
    if error > tolerance:
        import transformers

        raise RuntimeError(
            f"optim.packing: this model ({type(model).__name__}, attention "
            f"{getattr(model.config, '_attn_implementation', '?')}, transformers {transformers.__version__}) does not "
            f"keep packed sequences apart (relative logit error {error:.2g}); set optim.packing=false")
    _PACKING_OK.add(model)


def _linear_head(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The LM head when logits are exactly ``head(decoder(x).last_hidden_state)``, else None."""
    config = getattr(model, "config", None)
    if any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "output_multiplier")):
        return None
    get_head, get_decoder = getattr(model, "get_output_embeddings", None), getattr(model, "get_decoder", None)
    if get_head is None or get_decoder is None:
        return None
    head = get_head()
    return head if isinstance(head, torch.nn.Linear) and get_decoder() is not None else None


def _chunk_logprobs(
    hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
    scale: float, entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Target log-probs (and entropies) of one chunk of positions; ``weight=None`` means
    ``hidden`` already holds logits. Checkpointed when it needs a gradient, so only the chunk's
    inputs are kept for backward, never its fp32 logits."""

    def compute(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = (h if weight is None else F.linear(h, weight, bias)).float() * scale
        norm = torch.logsumexp(logits, dim=-1)
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - norm
        if not entropy:
            return logp, logp
        probs = torch.softmax(logits, dim=-1)
        return logp, norm - (probs * logits).sum(-1)

    if torch.is_grad_enabled() and (hidden.requires_grad or (weight is not None and weight.requires_grad)):
        logp, ent = torch.utils.checkpoint.checkpoint(compute, hidden, use_reentrant=False)
    else:
        logp, ent = compute(hidden)
    return logp, ent if entropy else None


def turn_mean(values: torch.Tensor, turn_ids: torch.Tensor) -> torch.Tensor:
    """Each token's value replaced by the mean over its turn (tokens with turn id < 0 → 0)."""
    n_turns = int(turn_ids.max().item()) + 1 if turn_ids.numel() else 0
    if n_turns <= 0:
        return torch.zeros_like(values)
    rows = torch.arange(values.shape[0], device=values.device).unsqueeze(1).expand_as(turn_ids)
    valid = turn_ids >= 0
    segment = torch.where(valid, rows * n_turns + turn_ids, 0).flatten()
    weights = valid.flatten().to(values.dtype)
    sums = torch.zeros(values.shape[0] * n_turns, dtype=values.dtype, device=values.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, segment, values.flatten() * weights)
    counts.index_add_(0, segment, weights)
    means = sums / counts.clamp(min=1)
    return torch.where(valid, means[segment].view_as(values), torch.zeros_like(values))


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    turn_ids: torch.Tensor,
    clip_scale: torch.Tensor,
    cfg: LossConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO-clip loss and a per-token "was clipped" indicator.

    With ``cfg.ratio == "turn"`` each token's ratio *value* is its turn's geometric-mean ratio
    while its gradient stays per token: log ρ = logπ − sg(logπ) + sg(mean_turn(logπ − logπ_old)),
    clamped at 10 in log space. ``clip_scale`` widens or narrows ε per token (A²TGPO).
    """
    log_ratio = logp - old_logp
    if cfg.ratio == "turn":
        log_ratio = logp - logp.detach() + turn_mean(log_ratio.detach(), turn_ids).clamp(max=10.0)
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - cfg.clip_low * clip_scale, 1 + cfg.clip_high * clip_scale)
    loss_unclipped, loss_clipped = -advantages * ratio, -advantages * clipped
    loss = torch.maximum(loss_unclipped, loss_clipped)
    if cfg.dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * cfg.dual_clip), loss)
    return loss, (loss_clipped > loss_unclipped).float()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str) -> torch.Tensor:
    """Schulman's estimators of KL(π‖π_ref) per token: k1 = log π/π_ref, k2 = ½(log r)²,
    k3 = r − 1 − log r with r = π_ref/π (unbiased and ≥ 0)."""
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.exp(log_r) - 1 - log_r
    raise ValueError(f"unknown KL estimator {kind!r}")


def loss_denominator(loss_mask: torch.Tensor, cfg: LossConfig) -> float:
    """The normaliser of a whole (mini-)batch; pass it to every micro-batch's ``aggregate``."""
    if cfg.agg == "token-mean":
        return max(float(loss_mask.sum()), 1.0)
    n_seqs = max(float((loss_mask.sum(1) > 0).sum()), 1.0)
    if cfg.agg == "seq-mean-token-sum":
        return n_seqs
    return n_seqs * float(cfg.dr_grpo_norm or loss_mask.shape[1])


def aggregate(values: torch.Tensor, loss_mask: torch.Tensor, denominator: float) -> torch.Tensor:
    """Masked sum over a micro-batch divided by the batch-wide denominator."""
    return (values * loss_mask).sum() / denominator
