"""Turn-level credit assignment for multi-turn agentic RL (numpy only; docs/credit.md has the maths).

Flat, columnar input (:class:`TurnBatch`, one row per turn, explicit trajectory / group / turn
ids), pure vectorised estimators (GRPO, RLOO, GiGPO, IGPO information gain, A²TGPO, SIOP, MAPO, MatchTIR,
VPR, SPA-RL, AEM, void-turn filtering, group filters) and a composable :class:`Pipeline` configured by dict or YAML::

    from agentgym.credit import TurnBatch, build_pipeline
    batch = TurnBatch.from_trajectories(trajs)
    out = build_pipeline({"method": "gigpo", "gamma": 0.95})(batch)
    out.advantages, out.loss_mask, out.clip_scale, out.metrics
"""

from .batch import TurnBatch
from .estimators import (
    a2tgpo,
    anchor_groups,
    gigpo,
    group_filter,
    grpo,
    igpo,
    information_gain,
    invalid_action_penalty,
    invalid_turn_penalty,
    rloo,
    tempo,
    void_loss_mask,
)
from .pipeline import STAGES, CreditResult, Pipeline, assign_credit, build_pipeline, load_config
from .process import (
    answer_clusters,
    mapo,
    match_tool_calls,
    matchtir,
    matchtir_turn_rewards,
    normalise_answer,
    optimal_assignment,
    siop,
    siop_rewards,
    tool_similarity,
    vpr,
)
from .progress import aem, aem_weights, fit_progress, response_surprisal, spa, spa_rewards, text_features
from .report import credit_records, summary
from .scoring import (
    GoldAnswerScorer,
    LookupScorer,
    gold_answer,
    gold_logprobs,
    gold_token_range,
    text_contexts,
)
from .segments import IGPO_NORM, VERL_NORM, Norm, discounted_suffix_sum, segment_mean_std, zscore
from .tokens import broadcast_to_tokens, token_turn_ids, turn_level_ratio
from .void import is_void_simpletir

__all__ = [
    "IGPO_NORM",
    "STAGES",
    "VERL_NORM",
    "CreditResult",
    "GoldAnswerScorer",
    "LookupScorer",
    "Norm",
    "Pipeline",
    "TurnBatch",
    "a2tgpo",
    "anchor_groups",
    "answer_clusters",
    "assign_credit",
    "build_pipeline",
    "credit_records",
    "discounted_suffix_sum",
    "gigpo",
    "gold_answer",
    "gold_logprobs",
    "gold_token_range",
    "group_filter",
    "grpo",
    "igpo",
    "information_gain",
    "invalid_action_penalty",
    "invalid_turn_penalty",
    "is_void_simpletir",
    "load_config",
    "mapo",
    "match_tool_calls",
    "matchtir",
    "matchtir_turn_rewards",
    "normalise_answer",
    "optimal_assignment",
    "rloo",
    "segment_mean_std",
    "siop",
    "siop_rewards",
    "summary",
    "tempo",
    "text_contexts",
    "tool_similarity",
    "token_turn_ids",
    "turn_level_ratio",
    "broadcast_to_tokens",
    "void_loss_mask",
    "vpr",
    "zscore",
    # SPA-RL and AEM (agentgym.credit.progress)
    "aem",
    "aem_weights",
    "fit_progress",
    "response_surprisal",
    "spa",
    "spa_rewards",
    "text_features",
]
