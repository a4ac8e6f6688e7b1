"""VPR's state-group rollout: K candidate actions at every visited state, each scored by the env's
oracle verifier ``V(s, a)``, one max-reward candidate committed to advance the episode.

The env must score a candidate *without* advancing: it provides ``verify_action(action) ->
(reward, valid, success, error)`` evaluated in its current state (Sokoban: a breadth-first
solver). Envs without one are refused with a :class:`~agentgym.errors.ConfigError` before any
episode runs.

Each candidate becomes its own one-turn :class:`~agentgym.trajectory.Trajectory`, so the credit
library, the trainer and ``agentgym advantages`` read it like any other record:

* ``group_id`` is the state group (``<episode>-s<t>``), ``traj_id`` adds ``-c<j>``;
* the turn's observation is the state's observation and the policy sees only that (system prompt,
  then the observation: VPR's Markovian prompt, as in its released code), so the sampled action is
  exactly what the trainer later scores under the same context;
* the turn's ``reward`` (and the trajectory's ``outcome``) is ``V(s, a) + success_bonus`` when the
  move solves the task, else ``V(s, a)``; an invalid candidate carries the env's error as
  ``parse_error``;
* ``info["vpr"]`` keeps the parts: oracle reward, validity, success, whether it was committed,
  the state index, the episode id, and (once the episode ends) the episode's success and length.

The credit stage ``vpr`` (:func:`agentgym.credit.vpr`) turns these into advantages; the maths and
the released code it follows are in docs/credit.md#vpr.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from typing import Any, NamedTuple

from agentgym.core import Failure, InfraError, TextEnv
from agentgym.errors import ConfigError, EnvCodeError
from agentgym.policies.base import Completion, Episode, Message, Policy, running_episode
from agentgym.rollout import _PER_TURN_KEYS
from agentgym.trajectory import Trajectory, Turn, canonical_key

__all__ = ["Verdict", "check_verifier", "episode_metrics", "run_state_group_episode", "select_candidate", "verdict"]


class Verdict(NamedTuple):
    """The oracle's score of one candidate: ``reward`` V(s, a); ``valid`` (parsed and legal);
    ``success`` (the move solves the task); ``error`` (why it is invalid)."""

    reward: float
    valid: bool
    success: bool = False
    error: str | None = None


def check_verifier(env: TextEnv, env_id: str = "") -> None:
    """Raise :class:`ConfigError` unless ``env`` can score a candidate without advancing."""
    if not callable(getattr(env, "verify_action", None)):
        raise ConfigError(
            f"env {env_id or type(env).__name__} has no verify_action(action) oracle: VPR's state-group rollout "
            "scores every candidate in the current state without stepping, so the env must provide "
            "verify_action(action) -> (reward, valid, success, error) (agentgym/Sokoban-v0 does)")


def verdict(env: TextEnv, action: str) -> Verdict:
    """The env's oracle on one candidate, checked: anything but a 4-tuple with a number first is an
    :class:`EnvCodeError` (a bug in the env), never a score."""
    try:
        raw = env.verify_action(action)  # type: ignore[attr-defined]
        v = Verdict(float(raw[0]), bool(raw[1]), bool(raw[2]), None if raw[3] is None else str(raw[3]))
    except EnvCodeError:
        raise
    except Exception as e:  # noqa: BLE001 — an oracle that raises or answers nonsense is the env's bug
        raise EnvCodeError(f"verify_action({action[:60]!r}) failed: {type(e).__name__}: {e}") from e
    return v


def select_candidate(rewards: list[float]) -> int:
    """The committed candidate: the first with the highest reward (the released code's rule);
    a NaN reward is never chosen unless every reward is NaN (then the first)."""
    best, best_r = 0, -math.inf
    for j, r in enumerate(rewards):
        if r > best_r:  # NaN compares False: skipped
            best, best_r = j, r
    return best


async def _sample(policy: Policy, messages: list[Message], env: TextEnv, episode: Episode) -> Completion:
    with running_episode(episode):  # inside its own task: each candidate sees its own episode
        return await policy.act(messages, env)


async def run_state_group_episode(
    env: TextEnv,
    policy: Policy,
    *,
    traj_id: str,
    seed: int,
    task_index: int = 0,
    candidates: int,
    env_id: str,
    success_bonus: float = 1.0,
) -> list[Trajectory]:
    """Play one episode in state groups; returns every candidate's record (state by state).

    At each state the policy is asked ``candidates`` times concurrently (each call under its own
    :class:`Episode`, member ``t·K + j``, so seeded policies draw independently), the oracle scores
    each reply, and the first max-reward reply is stepped in the env (whatever the env does with
    it: an all-invalid group commits its first reply, which Sokoban treats as a turn where nothing
    moves). The episode ends when the env ends it. An env failure ends it with one extra record,
    no turns, ``failure="infra"`` (or ``"error"`` for a bug in the env's code, e.g. its oracle);
    the candidates scored before it are kept.
    """
    if candidates < 1:
        raise ValueError(f"candidates (K) must be >= 1, got {candidates}")
    records: list[Trajectory] = []
    stage, t, started = "reset", 0, time.time()
    success = False
    try:
        obs, info = await env.areset(seed=seed)
        task_id = str(info.get("task_id", f"seed-{seed}"))
        task_info = {k: v for k, v in info.items() if k not in _PER_TURN_KEYS}
        while True:
            messages: list[Message] = [{"role": "system", "content": env.system_prompt}] if env.system_prompt else []
            messages.append({"role": info["role"], "content": obs})
            stage = "policy"
            tasks = [_sample(policy, messages, env, Episode(seed, t * candidates + j, task_index, f"{traj_id}-s{t:03d}"))
                     for j in range(candidates)]
            completions = await asyncio.gather(*tasks)
            stage = "verify"
            verdicts = [verdict(env, c.text) for c in completions]
            rewards = [v.reward + (success_bonus if v.success else 0.0) for v in verdicts]
            best = select_candidate(rewards)
            stage = "step"
            next_obs, _, terminated, truncated, step_info = await env.astep(completions[best].text)
            group = f"{traj_id}-s{t:03d}"
            for j, (c, v, r) in enumerate(zip(completions, verdicts, rewards, strict=True)):
                turn = Turn(index=0, observation=obs, action=c.text, reward=r,
                            state_key=canonical_key(info.get("state_key")), role=info["role"],
                            parse_error=None if v.valid else (v.error or "invalid action"),
                            action_token_ids=c.token_ids, action_logprobs=c.logprobs, finish_reason=c.finish_reason)
                records.append(Trajectory(
                    traj_id=f"{group}-c{j:02d}", group_id=group, task_id=task_id, env_id=env_id, seed=seed,
                    policy=policy.name, turns=[turn], final_observation=next_obs if j == best else "",
                    outcome=r, terminated=v.success, success=v.success, started_at=started,
                    info={**task_info, "vpr": {"episode": traj_id, "state_index": t, "candidate": j,
                                               "oracle_reward": v.reward, "valid": v.valid, "success": v.success,
                                               "committed": j == best}}))
            t += 1
            obs, info = next_obs, step_info
            if terminated or truncated:
                success = bool(step_info.get("success"))
                break
    except Exception as e:  # noqa: BLE001 — env failures are recorded, typed, as in the core engine
        if stage == "policy" and not isinstance(e, (InfraError, OSError, TimeoutError)):
            raise  # a bug in the policy: stop the run
        records.append(Trajectory(
            traj_id=f"{traj_id}-s{t:03d}-failed", group_id=f"{traj_id}-s{t:03d}", task_id="", env_id=env_id,
            seed=seed, policy=policy.name, started_at=started,
            failure=Failure.ERROR if isinstance(e, EnvCodeError) else Failure.INFRA,
            failure_detail=f"{stage}: {type(e).__name__}: {e}", info={"traceback": traceback.format_exc(limit=8)}))
    for rec in records:
        if "vpr" in rec.info:
            rec.info["vpr"].update(episode_success=success, episode_length=t)
    return records


def episode_metrics(records: list[Trajectory]) -> dict[str, Any]:
    """Rollout metrics of state-group records: episodes, their success rate and length, and the
    candidates' oracle statistics (how often a candidate was valid, optimal, committed)."""
    cands = [r for r in records if "vpr" in r.info]
    episodes = {r.info["vpr"]["episode"]: r.info["vpr"] for r in cands}
    n = max(len(cands), 1)
    return {
        "vpr/episodes": float(len(episodes)),
        "vpr/episode_success_rate": sum(e["episode_success"] for e in episodes.values()) / max(len(episodes), 1),
        "vpr/episode_length": sum(e["episode_length"] for e in episodes.values()) / max(len(episodes), 1),
        "vpr/candidates": float(len(cands)),
        "vpr/candidate_valid_rate": sum(r.info["vpr"]["valid"] for r in cands) / n,
        "vpr/candidate_oracle_reward": sum(r.info["vpr"]["oracle_reward"] for r in cands) / n,
    }
