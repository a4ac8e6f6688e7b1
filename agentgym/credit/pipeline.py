"""A composable credit pipeline, configured by a dict or YAML.

Two config forms. A list of stages, applied in order::

    stages:
      - invalid_action_penalty: {penalty: 0.1}   # verl-agent's rule (invalid_turn_penalty: ours)
      - gigpo: {gamma: 0.95, omega: 1.0, std: false}
      - info_gain: {ig_type: log_prob_diff, norm: separate, gamma: 1.0, outcome: false}
      - group_filter: {zero_variance: true, accuracy: [0.1, 0.9]}
      - void_filter: {void_in_group_stats: true}

or the one-method shorthand the trainer recipes use (``{method: gigpo, gamma: 0.95}``, plus
optional ``void_filter``, ``void_in_group_stats``, ``invalid_action_penalty``,
``invalid_turn_penalty``, ``group_filter`` keys). An empty config is GRPO. Unknown keys are
errors. Both forms take a top-level ``on_nonfinite: raise | mask_group`` (see :class:`Pipeline`).

Semantics: estimator stages *add* ``weight × advantage`` into the per-turn advantage (so
GiGPO + IG(outcome=false) is GiGPO with an IG bonus; adding two stages that both credit the
outcome counts it twice, by request); ``aem`` instead rescales the advantage summed so far, so it
follows the estimators it modulates; the penalties (``invalid_action_penalty``: verl-agent's,
on the invalid row's own scores; ``invalid_turn_penalty``: ours, on the turn reward) rewrite the
batch and must come before the estimators; filters multiply the loss mask. ``void_in_group_stats=False`` removes void
trajectories from the statistics of *every* estimator, wherever the void stage is listed.
Infra failures are always out of the statistics, with advantage 0 and loss mask 0.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from agentgym.errors import ConfigError

from . import estimators as est
from . import process, progress
from .batch import TurnBatch
from .scoring import GoldAnswerScorer, gold_logprobs

__all__ = ["CreditResult", "Pipeline", "assign_credit", "build_pipeline", "load_config"]


@dataclass
class CreditResult:
    """Per-turn outputs aligned with ``batch`` rows (canonical order), plus diagnostics.

    ``components[name]`` is each estimator stage's (weighted) contribution; ``metrics`` are flat
    floats for logging (``credit/...``); ``diagnostics`` may hold arrays (step-group sizes,
    filtered group labels).
    """

    batch: TurnBatch
    advantages: np.ndarray
    loss_mask: np.ndarray
    clip_scale: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def traj_index(self) -> np.ndarray:
        return self.batch.traj_index

    @property
    def turn_index(self) -> np.ndarray:
        return self.batch.turn_index

    def per_trajectory(self, what: str = "advantages") -> list[list[float]]:
        """``values[i][t]`` for turn t of input trajectory i (``advantages``, ``loss_mask``, ``clip_scale``
        or a component name)."""
        values = self.components[what] if what in self.components else getattr(self, what)
        return self.batch.per_trajectory(values)


@dataclass
class _State:
    batch: TurnBatch
    include: np.ndarray
    advantages: np.ndarray
    loss_mask: np.ndarray
    clip_scale: np.ndarray
    components: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    estimated: bool = False
    scorer: GoldAnswerScorer | None = None

    def add(self, name: str, values: np.ndarray) -> None:
        key, k = name, 2
        while key in self.components:
            key, k = f"{name}_{k}", k + 1
        self.components[key] = values
        self.advantages = self.advantages + values
        self.estimated = True


@dataclass
class Stage:
    """Base of a pipeline stage; the dataclass fields are the stage's config keys."""

    name: ClassVar[str] = ""
    estimator: ClassVar[bool] = False
    needs_gold: ClassVar[bool] = False
    needs_scorer: ClassVar[bool] = False  # log-probs from a model, unless the batch already holds them

    def __call__(self, s: _State) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class InvalidActionPenalty(Stage):
    """verl-agent's invalid-action penalty: ``penalty`` off the invalid row's own episode score and
    step return, nothing discounted back (:func:`estimators.invalid_action_penalty`; gigpo, grpo)."""

    name: ClassVar[str] = "invalid_action_penalty"
    penalty: float = 0.1

    def __call__(self, s: _State) -> None:
        if s.estimated:
            raise ValueError(f"{self.name} must come before the estimator stages")
        s.batch = self.apply(s.batch)
        s.diagnostics["invalid_turns"] = int(s.batch.invalid.sum())

    def apply(self, batch: TurnBatch) -> TurnBatch:
        return est.invalid_action_penalty(batch, self.penalty)


@dataclass
class InvalidTurnPenalty(InvalidActionPenalty):
    """agentgym's rule: ``penalty`` off the invalid turn's *reward* (so discounted back) and the
    trajectory's outcome (:func:`estimators.invalid_turn_penalty`; every estimator)."""

    name: ClassVar[str] = "invalid_turn_penalty"

    def apply(self, batch: TurnBatch) -> TurnBatch:
        return est.invalid_turn_penalty(batch, self.penalty)


@dataclass
class Outcome(Stage):
    """Outcome baseline on every turn: ``grpo`` (``std=False``: Dr.GRPO) or ``rloo``."""

    name: ClassVar[str] = "outcome"
    estimator: ClassVar[bool] = True
    baseline: str = "grpo"
    std: bool = True
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        if self.baseline == "grpo":
            adv = est.grpo(s.batch, std=self.std, include=s.include)
        elif self.baseline == "rloo":
            adv = est.rloo(s.batch, include=s.include)
        else:
            raise ValueError(f"outcome baseline must be 'grpo' or 'rloo', got {self.baseline!r}")
        s.add(self.baseline, self.weight * adv)


@dataclass
class GiGPO(Stage):
    """GiGPO episode + anchor-state step advantage (see :func:`estimators.gigpo`)."""

    name: ClassVar[str] = "gigpo"
    estimator: ClassVar[bool] = True
    gamma: float = 0.95
    omega: float = 1.0
    std: bool = False
    episode_stats: str = "trajectory"
    episode_weight: float = 1.0
    similarity: float | None = None
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        codes, n = est.anchor_groups(b, similarity=self.similarity, include=s.include)
        adv = est.gigpo(b, gamma=self.gamma, omega=self.omega, std=self.std, episode_stats=self.episode_stats,
                        episode_weight=self.episode_weight, include=s.include, anchors=(codes, n))
        row_inc = (~b.infra & s.include)[b.traj]
        sizes = np.bincount(codes, weights=row_inc, minlength=n)
        sizes = sizes[sizes > 0].astype(np.int64)
        s.diagnostics["step_group_sizes"] = sizes
        s.diagnostics["n_anchor_groups"] = int(sizes.size)
        s.diagnostics["mean_step_group_size"] = float(sizes.mean()) if sizes.size else 0.0
        s.diagnostics["singleton_anchor_share"] = float((sizes == 1).mean()) if sizes.size else 0.0
        s.diagnostics["singleton_turn_share"] = float((sizes == 1).sum() / max(sizes.sum(), 1))
        _warn_if_degenerate(b, sizes)
        s.add("gigpo", self.weight * adv)


def _warn_if_degenerate(b: TurnBatch, anchor_sizes: np.ndarray) -> None:
    """GiGPO quietly becomes something else when its groups are trivial: say so."""
    if b.n_traj and np.bincount(b.traj_group, minlength=b.n_groups).max() == 1:
        warnings.warn("GiGPO: every prompt group holds one trajectory (group size 1), so every advantage "
                      "is 0: set the rollout group size to 2 or more", RuntimeWarning, stacklevel=4)
    elif anchor_sizes.size and (anchor_sizes == 1).all():
        warnings.warn("GiGPO: every anchor group is a single turn, so the step advantage is 0 and GiGPO is "
                      "episode-level GRPO; does the env set info['state_key'] (equal for equal states)?",
                      RuntimeWarning, stacklevel=4)


@dataclass
class InfoGain(Stage):
    """IGPO information-gain turn rewards (see :func:`estimators.igpo`)."""

    name: ClassVar[str] = "info_gain"
    estimator: ClassVar[bool] = True
    needs_gold: ClassVar[bool] = True
    ig_type: str = "log_prob_diff"
    norm: str = "separate"
    gamma: float = 1.0
    std: bool = True
    outcome: bool = True
    outcome_weight: float = 1.0
    ig_weight: float = 1.0
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        adv = est.igpo(b, ig_type=self.ig_type, norm=self.norm, gamma=self.gamma, std=self.std,  # type: ignore[arg-type]
                       outcome=self.outcome, outcome_weight=self.outcome_weight, ig_weight=self.ig_weight,
                       include=s.include)
        ig = est.information_gain(b, ig_type=self.ig_type)  # type: ignore[arg-type]
        ig_rows = ~b.is_last & (~b.infra & s.include)[b.traj]
        finite = np.isfinite(ig) & ig_rows
        s.diagnostics["ig_mean"] = float(ig[finite].mean()) if finite.any() else 0.0
        s.diagnostics["ig_nonfinite"] = int((ig_rows & ~np.isfinite(ig)).sum())
        s.add("info_gain", self.weight * adv)


@dataclass
class A2TGPO(Stage):
    """A²TGPO turn-group IG, √-rescaled accumulation and adaptive clip scale."""

    name: ClassVar[str] = "a2tgpo"
    estimator: ClassVar[bool] = True
    needs_gold: ClassVar[bool] = True
    alpha: float = 0.3
    beta: float = 0.3
    gamma: float = 1.0
    ig_type: str = "log_prob_diff"
    std: bool = True
    outcome: bool = True
    adaptive_clip: bool = True
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        adv, clip = est.a2tgpo(s.batch, alpha=self.alpha, beta=self.beta, gamma=self.gamma,
                               ig_type=self.ig_type, std=self.std, outcome=self.outcome,  # type: ignore[arg-type]
                               include=s.include)
        if self.adaptive_clip:
            s.clip_scale = s.clip_scale * clip
        s.add("a2tgpo", self.weight * adv)


@dataclass
class Tempo(Stage):
    """Turn-level TEMPO: GRPO advantage plus branch-gated prefix-value TD [recon]."""

    name: ClassVar[str] = "tempo"
    estimator: ClassVar[bool] = True
    lam: float = 1.0
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        s.add("tempo", self.weight * est.tempo(s.batch, lam=self.lam, include=s.include))


def _info_rows(batch: TurnBatch, key: str, what: str) -> list[list[float]]:
    """``info[key]`` (one number per turn) of every trajectory, for stages whose input the env or a judge stored."""
    if batch.trajectories is None:
        raise ValueError(f"{what} needs per-turn values: build the batch with them, or from trajectories "
                         f"whose info[{key!r}] lists one per turn")
    out = []
    for i, t in enumerate(batch.trajectories):
        info = (t.get("info") if isinstance(t, Mapping) else getattr(t, "info", None)) or {}
        if key not in info:
            if batch.infra[i] or not batch.lengths[i]:
                out.append([float("nan")] * int(batch.lengths[i]))
                continue
            raise ValueError(f"{what}: trajectory {str(batch.traj_ids[i]) if batch.traj_ids is not None else i!r} "
                             f"has no info[{key!r}] (one score per turn)")
        try:
            out.append([float(x) for x in info[key]])
        except (TypeError, ValueError):
            raise ValueError(f"{what}: info[{key!r}] of trajectory {i} must be a list of numbers, "
                             f"got {info[key]!r}") from None
    return out


SIOP_PROBES = ("after_action", "after_observation")


def siop_contexts(trajectory: Any, probe: str = "after_action") -> list[str]:
    """SIOP's T + 1 text contexts: the first observation (prompt only), then one per turn.

    ``after_action`` (SIOP's released code): up to and including turn t's action, before the
    env's reply. ``after_observation``: up to the observation that follows it (IGPO's probe; the
    trajectory's ``final_observation`` after the last turn).
    """
    if probe not in SIOP_PROBES:
        raise ValueError(f"siop probe must be one of {SIOP_PROBES}, got {probe!r}")

    def get(obj: Any, key: str, default: Any = "") -> Any:
        value = obj.get(key, default) if isinstance(obj, Mapping) else getattr(obj, key, default)
        return default if value is None else value

    turns = get(trajectory, "turns", []) or []
    if not turns:
        return []
    parts = [str(get(turns[0], "observation"))]
    out = [parts[0]]
    for k, turn in enumerate(turns):
        parts.append(str(get(turn, "action")))
        nxt = get(turns[k + 1], "observation") if k + 1 < len(turns) else get(trajectory, "final_observation")
        if probe == "after_action":
            out.append("\n".join(parts))
            parts.append(str(nxt))
        else:
            parts.append(str(nxt))
            out.append("\n".join(parts))
    return out


@dataclass
class Siop(Stage):
    """SIOP: verifier-free information gain toward the rollout's own answer cluster (:func:`process.siop`).

    Reads ``batch.answers`` (the final answers) and ``batch.ref_logp`` (log-probs of each
    trajectory's cluster reference answer); without the latter the pipeline's scorer computes
    them. ``equivalence``: ``"exact"`` (normalised exact match) or, from Python, any callable
    ``(answer_a, answer_b) -> bool`` (e.g. an NLI model's bidirectional entailment). ``probe``:
    where each turn's context ends (:func:`siop_contexts`; a scorer's own ``siop_contexts``
    method, like the trainer's, takes precedence over the text one).
    """

    name: ClassVar[str] = "siop"
    estimator: ClassVar[bool] = True
    needs_scorer: ClassVar[bool] = True
    lam: float = 0.5
    eps: float = 1e-8
    gamma: float = 1.0
    std: bool = True
    equivalence: Any = "exact"
    probe: str = "after_action"
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        if b.answers is None:
            raise ValueError("siop needs the trajectories' final answers (batch.answers: the last turn's "
                             "'answer' or info['answer'])")
        if self.equivalence == "exact":
            equivalent = None
        elif callable(self.equivalence):
            equivalent = self.equivalence
        else:
            raise ValueError(f"siop equivalence must be 'exact' or a callable (a, b) -> bool, got {self.equivalence!r}")
        if self.probe not in SIOP_PROBES:
            raise ValueError(f"siop probe must be one of {SIOP_PROBES}, got {self.probe!r}")
        inc = s.include & ~b.infra
        q, refs, codes = process.answer_clusters(b.answers, b.traj_group, equivalent=equivalent, include=inc)
        if b.ref_logp is None:
            b = s.batch = b.with_ref_logp(self._ref_logprobs(b, refs, s.scorer, self.probe))
        s.diagnostics["siop_answered_share"] = float((q[inc] > 0).mean()) if inc.any() else 0.0
        s.diagnostics["siop_mean_q"] = float(q[q > 0].mean()) if (q > 0).any() else 0.0
        s.diagnostics["siop_clusters"] = int(codes.max()) + 1 if codes.size else 0
        s.add("siop", self.weight * process.siop(b, q, lam=self.lam, eps=self.eps, gamma=self.gamma,
                                                 std=self.std, include=s.include))

    @staticmethod
    def _ref_logprobs(b: TurnBatch, refs: list[str | None], scorer: GoldAnswerScorer | None,
                      probe: str) -> list[list[float]]:
        if scorer is None or b.trajectories is None:
            raise ValueError("siop needs reference-answer log-probs: build the batch with ref_logp, or pass "
                             "trajectories and a scorer (GoldAnswerScorer.score(contexts, answers))")
        own = getattr(scorer, "siop_contexts", None)

        def contexts(t: Any) -> list[Any]:
            return own(t, probe) if own is not None else siop_contexts(t, probe)

        flat_ctx: list[Any] = []
        flat_ref: list[str] = []
        sizes = []
        for t, ref in zip(b.trajectories, refs, strict=True):
            ctx = contexts(t) if ref is not None else []
            flat_ctx += ctx
            flat_ref += [ref] * len(ctx)  # type: ignore[list-item]
            sizes.append(len(ctx))
        flat = [float(x) for x in scorer.score(flat_ctx, flat_ref)] if flat_ctx else []
        out, pos = [], 0
        for T, n in zip(b.lengths.tolist(), sizes, strict=True):
            out.append(flat[pos : pos + n] if n else [float("nan")] * (T + 1 if T else 0))
            pos += n
        return out


@dataclass
class Mapo(Stage):
    """MAPO: per-turn judge scores → Monte-Carlo returns → turn- and batch-level z-scores mixed
    (:func:`process.mapo`) [recon]. Scores come from ``batch.turn_score``, else ``judge(trajectory)``
    (Python only), else each trajectory's ``info[score_key]``."""

    name: ClassVar[str] = "mapo"
    estimator: ClassVar[bool] = True
    gamma: float = 1.0
    lam: float = 0.5
    std: bool = True
    score_key: str = "turn_scores"
    judge: Any = None
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        if self.judge is not None and not callable(self.judge):
            raise ValueError(f"mapo judge must be a callable trajectory -> per-turn scores, got {self.judge!r}")
        if b.turn_score is None:
            if self.judge is not None:
                if b.trajectories is None:
                    raise ValueError("mapo's judge scores trajectories: build the batch from trajectories")
                rows = [[float(x) for x in self.judge(t)] for t in b.trajectories]
            else:
                rows = _info_rows(b, self.score_key, "mapo")
            b = s.batch = b.with_turn_scores(rows)
        s.add("mapo", self.weight * process.mapo(b, gamma=self.gamma, lam=self.lam, std=self.std, include=s.include))


@dataclass
class MatchTIR(Stage):
    """MatchTIR: turn rewards from matching the agent's tool calls to a gold trace, dual-level
    advantage (:func:`process.matchtir`).

    From trajectories: each turn's ``tool_calls`` against the trajectory's ``info[gold_key]`` (a
    list of ``{name, arguments}``; ToolWorld stores ``gold_trace``), matched with ``assignment``
    (``hungarian`` optimal, ``greedy`` as released, ``soft`` Sinkhorn); plus the env's turn
    reward (the task score on the answer turn) when ``env_reward``. From a bare batch:
    ``batch.turn_score`` holds the matching rewards.
    """

    name: ClassVar[str] = "matchtir"
    estimator: ClassVar[bool] = True
    assignment: str = "hungarian"
    reg: float = 0.1
    gamma: float = 0.9
    mix: float = 0.5
    std: bool = True
    gold_key: str = "gold_trace"
    env_reward: bool = True
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        if self.assignment not in process.ASSIGNMENTS:
            raise ValueError(f"matchtir assignment must be one of {process.ASSIGNMENTS}, got {self.assignment!r}")
        if b.trajectories is not None:
            match = np.concatenate([np.zeros(0), *self._match_rows(b)])
        elif b.turn_score is not None:
            match = b.turn_score
        else:
            raise ValueError("matchtir needs trajectories (tool calls and info[gold_key]) or batch.turn_score")
        live = (~b.infra & s.include)[b.traj]
        s.diagnostics["matchtir_match_mean"] = float(match[live].mean()) if live.any() else 0.0
        r = match + b.reward if self.env_reward else match
        s.add("matchtir", self.weight * process.matchtir(b, rewards=r, gamma=self.gamma, mix=self.mix,
                                                         std=self.std, include=s.include))

    def _match_rows(self, b: TurnBatch) -> list[np.ndarray]:
        out = []
        for i, t in enumerate(b.trajectories or []):
            T = int(b.lengths[i])
            info = (t.get("info") if isinstance(t, Mapping) else getattr(t, "info", None)) or {}
            if b.infra[i]:
                out.append(np.zeros(T))
                continue
            gold = info.get(self.gold_key)
            if not isinstance(gold, list):
                raise ValueError(f"matchtir: trajectory {i} has no gold trace list in info[{self.gold_key!r}] "
                                 f"(got {gold!r})")
            turns = (t.get("turns") if isinstance(t, Mapping) else getattr(t, "turns", None)) or []
            calls = [list((u.get("tool_calls") if isinstance(u, Mapping) else getattr(u, "tool_calls", None)) or [])
                     for u in turns]
            out.append(process.matchtir_turn_rewards(calls, gold, assignment=self.assignment, reg=self.reg))
        return out


def _turn_field(t: Any, key: str) -> list[Any]:
    turns = (t.get("turns") if isinstance(t, Mapping) else getattr(t, "turns", None)) or []
    return [u.get(key) if isinstance(u, Mapping) else getattr(u, key, None) for u in turns]


@dataclass
class Spa(Stage):
    """SPA-RL: a progress estimator fitted on this batch (``Σ_t c_t`` regresses the outcome) gives
    per-turn contributions, plus ``grounding`` for each executed action (no parse error)
    (:func:`progress.spa`). ``features``: ``text`` (hashed words of each turn's observation and
    action, numpy, so it also runs from a rollout directory) or ``model`` (the trainer's
    scorer: the policy's last hidden state at each action's last token, ``turn_features``)."""

    name: ClassVar[str] = "spa"
    estimator: ClassVar[bool] = True
    grounding: float = progress.SPA_GROUNDING
    ridge: float = 1.0
    features: str = "text"
    dim: int = 1024
    gamma: float = 1.0
    std: bool = True
    weight: float = 1.0

    @property
    def needs_scorer(self) -> bool:  # type: ignore[override]
        return self.features == "model"

    def __call__(self, s: _State) -> None:
        b = s.batch
        if self.features not in ("text", "model"):
            raise ValueError(f"spa features must be 'text' or 'model', got {self.features!r}")
        if b.trajectories is None:
            raise ValueError("spa fits its progress estimator on turn features: build the batch from trajectories")
        if self.features == "model":
            fn = getattr(s.scorer, "turn_features", None)
            if fn is None:
                raise ValueError("spa features: model needs a scorer with turn_features(trajectories) "
                                 "(the trainer's); use features: text from a rollout directory")
            rows = [np.asarray(x, dtype=np.float64) for x in fn(b.trajectories)]
        else:
            rows = [progress.text_features(t, self.dim) for t in b.trajectories]
        for i, (r, T) in enumerate(zip(rows, b.lengths.tolist(), strict=True)):
            if r.ndim != 2 or r.shape[0] != T:
                raise ValueError(f"spa: trajectory {i} has {T} turns but features of shape {r.shape}")
        width = max((r.shape[1] for r in rows if r.size), default=1)
        feats = np.concatenate([np.zeros((0, width)), *(r if r.size else np.zeros((len(r), width)) for r in rows)])
        inc = s.include & ~b.infra
        c, fit = progress.fit_progress(b, feats, ridge=self.ridge, include=inc)
        live = inc[b.traj]
        s.diagnostics.update(fit)
        s.diagnostics["spa_executed_share"] = float((~b.invalid[live]).mean()) if live.any() else 0.0
        s.add("spa", self.weight * progress.spa(b, c, grounding=self.grounding, gamma=self.gamma,
                                                std=self.std, include=inc))


@dataclass
class Aem(Stage):
    """AEM [recon]: rescales the advantage of the stages before it by each response's surprisal
    relative to its prompt group (:func:`progress.aem`); reads every turn's ``action_logprobs``
    (the rollout's sampled-token log-probs). Recorded as the component ``aem`` = ``(w − 1)·A``."""

    name: ClassVar[str] = "aem"  # not an estimator: it rescales theirs, so a pipeline of aem alone is refused
    beta: float = 0.2
    clip: float = 3.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        if not s.estimated:
            raise ValueError("aem rescales an advantage: list it after an estimator stage (e.g. grpo, gigpo)")
        if b.trajectories is None:
            raise ValueError("aem reads each turn's action_logprobs: build the batch from trajectories")
        u = progress.response_surprisal([lp for t in b.trajectories for lp in _turn_field(t, "action_logprobs")])
        inc = s.include & ~b.infra
        w = progress.aem_weights(b, u, beta=self.beta, clip=self.clip, include=inc)
        known = inc[b.traj] & ~np.isnan(u)
        s.diagnostics["aem_known_share"] = float(known.mean()) if b.n_rows else 0.0
        s.diagnostics["aem_weight_min"] = float(w[known].min()) if known.any() else 1.0
        s.diagnostics["aem_weight_max"] = float(w[known].max()) if known.any() else 1.0
        s.add("aem", (w - 1.0) * s.advantages)


@dataclass
class Vpr(Stage):
    """VPR: within-state-group relative oracle rewards (:func:`process.vpr`).

    Reads the records of a state-group rollout (:mod:`agentgym.state_group`): one candidate per
    trajectory, grouped by state, its turn reward the oracle's score. Groups of one candidate or
    of equal rewards get advantage 0 and loss mask 0 (counted in ``vpr_masked_group_share``).
    """

    name: ClassVar[str] = "vpr"
    estimator: ClassVar[bool] = True
    mode: str = "group_whiten"
    eps: float = 1e-8
    weight: float = 1.0

    def __call__(self, s: _State) -> None:
        b = s.batch
        adv, train = process.vpr(b, mode=self.mode, eps=self.eps, include=s.include)
        s.loss_mask = s.loss_mask * train
        live = (~b.infra & s.include)[b.traj]
        groups = np.unique(b.group[live])
        trained = np.unique(b.group[train])
        s.diagnostics["vpr_state_groups"] = int(groups.size)
        s.diagnostics["vpr_masked_group_share"] = float(1 - trained.size / groups.size) if groups.size else 0.0
        s.diagnostics["vpr_candidates_per_group"] = float(live.sum() / groups.size) if groups.size else 0.0
        s.add("vpr", self.weight * adv)


@dataclass
class VoidFilter(Stage):
    """SimpleTIR: loss mask 0 on whole trajectories with a void turn.

    ``void_in_group_stats=True`` (default, faithful to SimpleTIR's code) keeps them in every
    group statistic; False drops them from the statistics before any estimator runs.
    """

    name: ClassVar[str] = "void_filter"
    void_in_group_stats: bool = True

    def __call__(self, s: _State) -> None:
        b = s.batch
        s.loss_mask = s.loss_mask * est.void_loss_mask(b)
        live = ~b.infra
        s.diagnostics["void_trajectories"] = int((b.void_traj & live).sum())
        s.diagnostics["void_ratio"] = float((b.void_traj & live).sum() / max(live.sum(), 1))


@dataclass
class GroupFilter(Stage):
    """Drop (loss-mask) whole prompt groups: zero variance, accuracy band, too few valid rollouts."""

    name: ClassVar[str] = "group_filter"
    zero_variance: bool = True
    std_threshold: float = 1e-3
    accuracy: Sequence[float] | None = None
    min_valid: int | None = None

    def __call__(self, s: _State) -> None:
        b = s.batch
        valid = np.bincount(b.traj, weights=s.loss_mask, minlength=b.n_traj) >= np.maximum(b.lengths, 1)
        keep = est.group_filter(b, zero_variance=self.zero_variance, std_threshold=self.std_threshold,
                                accuracy=self.accuracy, min_valid=self.min_valid, include=s.include, valid=valid)
        s.loss_mask = s.loss_mask * keep[b.group]
        dropped = np.flatnonzero(~keep)
        prev = s.diagnostics.get("filtered_groups", [])
        labels = [str(b.group_ids[g]) if b.group_ids is not None else int(g) for g in dropped]
        s.diagnostics["filtered_groups"] = sorted(set(prev) | set(labels), key=str)


STAGES: dict[str, type[Stage]] = {
    cls.name: cls for cls in (InvalidActionPenalty, InvalidTurnPenalty, Outcome, GiGPO, InfoGain, A2TGPO, Tempo, Siop,
                              Mapo, MatchTIR, Vpr, Spa, Aem, VoidFilter, GroupFilter)
}
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "grpo": ("outcome", {"baseline": "grpo"}),
    "dr_grpo": ("outcome", {"baseline": "grpo", "std": False}),
    "rloo": ("outcome", {"baseline": "rloo"}),
    "igpo": ("info_gain", {}),
}
_PENALTY_KEYS = ("invalid_action_penalty", "invalid_turn_penalty")
_SHORTHAND_KEYS = {"method", "void_filter", "void_in_group_stats", *_PENALTY_KEYS, "group_filter"}


def _make_stage(name: str, params: Mapping[str, Any] | None) -> Stage:
    params = dict(params or {})
    if name in ALIASES:
        name, preset = ALIASES[name]
        params = {**preset, **params}
    if name not in STAGES:
        raise ValueError(f"unknown credit stage {name!r}; known: {sorted(STAGES) + sorted(ALIASES)}")
    cls = STAGES[name]
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"credit stage {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return cls(**params)


def _stages_from_config(config: Mapping[str, Any]) -> list[Stage]:
    if "stages" in config:
        extra = set(config) - {"stages"}
        if extra:
            raise ValueError(f"credit config: unknown top-level keys {sorted(extra)} beside 'stages'")
        if not isinstance(config["stages"], list):  # a mapping would iterate its names, dropping their params
            raise ConfigError(f"credit config: 'stages' must be a list of stages (- name, or - {{name: params}}), "
                              f"got a {type(config['stages']).__name__}: {config['stages']!r}")
        stages = []
        for item in config["stages"]:
            if isinstance(item, str):
                stages.append(_make_stage(item, None))
            elif isinstance(item, Mapping) and len(item) == 1:
                (name, params), = item.items()
                if params is not None and not isinstance(params, Mapping):
                    raise ConfigError(f"credit stage {name!r}: its parameters must be a mapping, got {params!r}")
                stages.append(_make_stage(name, params))
            else:
                raise ValueError(f"a credit stage is a name or a one-key mapping {{name: params}}, got {item!r}")
        return stages
    cfg = dict(config)
    method = cfg.pop("method", "grpo")
    params = {k: v for k, v in cfg.items() if k not in _SHORTHAND_KEYS}
    stages = []
    for key in _PENALTY_KEYS:
        if cfg.get(key):
            stages.append(_make_stage(key, {"penalty": float(cfg[key])}))
    stages.append(_make_stage(method, params))
    if cfg.get("group_filter"):
        gf = cfg["group_filter"]
        stages.append(_make_stage("group_filter", gf if isinstance(gf, Mapping) else {}))
    if "void_in_group_stats" in cfg and not cfg.get("void_filter"):
        raise ValueError("credit config: void_in_group_stats needs void_filter: true")
    if cfg.get("void_filter"):
        stages.append(_make_stage("void_filter", {"void_in_group_stats": cfg.get("void_in_group_stats", True)}))
    return stages


NONFINITE_POLICIES = ("raise", "mask_group")


class Pipeline:
    """Stages applied in order to a :class:`TurnBatch`; call it to get a :class:`CreditResult`.

    ``on_nonfinite``: what a NaN or ±inf reward or outcome does. ``"raise"`` (default): a
    ``ValueError`` naming the trajectory and turn. ``"mask_group"``: the whole prompt group of
    such a trajectory leaves every statistic and gets advantage 0 and loss mask 0, counted in
    ``diagnostics["nonfinite_groups"]`` / ``["nonfinite_trajectories"]`` (and the metrics). Either
    way no NaN reaches the loss: a non-finite advantage after the stages is a ``RuntimeError``.
    """

    def __init__(self, stages: Sequence[Stage], *, on_nonfinite: str = "raise"):
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.stages = list(stages)
        if not any(st.estimator for st in self.stages):
            raise ValueError("a credit pipeline needs at least one estimator stage")
        seen_estimator = False
        for st in self.stages:
            seen_estimator |= st.estimator
            if isinstance(st, InvalidActionPenalty) and seen_estimator:
                raise ValueError(f"{st.name} must come before the estimator stages")

    @property
    def needs_gold(self) -> bool:
        return any(st.needs_gold for st in self.stages)

    @property
    def needs_model(self) -> bool:
        """Some stage needs log-probs from a model (gold or SIOP reference answers)."""
        return any(st.needs_gold or st.needs_scorer for st in self.stages)

    def __repr__(self) -> str:
        return f"Pipeline({self.stages!r})"

    def __call__(self, batch: TurnBatch | Sequence[Any], scorer: GoldAnswerScorer | None = None) -> CreditResult:
        if not isinstance(batch, TurnBatch):
            batch = TurnBatch.from_trajectories(batch)
        if self.needs_gold and batch.gold_logp is None:
            if scorer is None or batch.trajectories is None:
                raise ValueError("this credit pipeline needs gold log-probs: build the batch with gold_logp, "
                                 "or pass trajectories and a GoldAnswerScorer")
            batch = batch.with_gold_logp(gold_logprobs(batch.trajectories, scorer))
        include = ~batch.infra
        for st in self.stages:
            if isinstance(st, VoidFilter) and not st.void_in_group_stats:
                include = include & ~batch.void_traj
        bad = batch.nonfinite_traj() & ~batch.infra
        bad_groups = np.zeros(batch.n_groups, dtype=bool)
        if bad.any():
            if self.on_nonfinite == "raise":
                batch.check_finite()
            bad_groups[batch.traj_group[bad]] = True
            include = include & ~bad_groups[batch.traj_group]
        n = batch.n_rows
        dead = batch.infra | bad_groups[batch.traj_group]
        s = _State(batch=batch, include=include, advantages=np.zeros(n),
                   loss_mask=np.where(dead[batch.traj], 0.0, 1.0), clip_scale=np.ones(n), scorer=scorer)
        for st in self.stages:
            st(s)
        live = ~dead[batch.traj]
        s.advantages = np.where(live, s.advantages, 0.0)
        if not np.isfinite(s.advantages).all():  # a guard: nothing above should let one through
            row = int(np.flatnonzero(~np.isfinite(s.advantages))[0])
            raise RuntimeError(f"credit produced a non-finite advantage at trajectory {int(batch.traj[row])}, "
                               f"turn {int(batch.turn_index[row])}; this is a bug, please report it")
        s.diagnostics.update(
            n_turns=n, n_trajectories=batch.n_traj, n_groups=batch.n_groups,
            infra_trajectories=int(batch.infra.sum()),
            nonfinite_trajectories=int(bad.sum()), nonfinite_groups=int(bad_groups.sum()),
        )
        s.diagnostics.setdefault("filtered_groups", [])
        return CreditResult(s.batch, s.advantages, s.loss_mask, s.clip_scale, s.components, s.diagnostics,
                            _metrics(s))


def _metrics(s: _State) -> dict[str, float]:
    m: dict[str, float] = {}
    for key, value in s.diagnostics.items():
        if isinstance(value, (bool, int, float, np.integer, np.floating)):
            m[f"credit/{key}"] = float(value)
    m["credit/filtered_groups"] = float(len(s.diagnostics.get("filtered_groups", [])))
    on = s.loss_mask > 0
    m["credit/loss_mask_mean"] = float(s.loss_mask.mean()) if s.loss_mask.size else 0.0
    if on.any():
        adv = s.advantages[on]
        m["credit/adv_mean"] = float(adv.mean())
        m["credit/adv_std"] = float(adv.std())
        m["credit/adv_abs_mean"] = float(np.abs(adv).mean())
        m["credit/clip_scale_mean"] = float(s.clip_scale[on].mean())
    return m


def load_config(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A credit config from a dict, a YAML file path, or YAML text; a ``credit:`` section is unwrapped."""
    if isinstance(source, Mapping):
        cfg = dict(source)
    else:
        import yaml

        text = Path(source).read_text() if (isinstance(source, Path) or "\n" not in str(source)
                                            and Path(str(source)).exists()) else str(source)
        cfg = yaml.safe_load(text) or {}
        if not isinstance(cfg, Mapping):
            raise ValueError("a credit config must be a mapping")
        cfg = dict(cfg)
    if set(cfg) == {"credit"}:
        cfg = dict(cfg["credit"] or {})
    return cfg


def build_pipeline(config: Mapping[str, Any] | str | Path | Pipeline | None = None) -> Pipeline:
    """A :class:`Pipeline` from a config dict, YAML path or text (``None`` / ``{}``: GRPO)."""
    if isinstance(config, Pipeline):
        return config
    cfg = load_config(config or {})
    on_nonfinite = cfg.pop("on_nonfinite", "raise")
    return Pipeline(_stages_from_config(cfg), on_nonfinite=on_nonfinite)


def assign_credit(
    trajectories: Sequence[Any] | TurnBatch,
    config: Mapping[str, Any] | str | Path | Pipeline | None = None,
    scorer: GoldAnswerScorer | None = None,
) -> CreditResult:
    """One call: trajectories (or a batch) → per-turn credit."""
    return build_pipeline(config)(trajectories, scorer=scorer)
