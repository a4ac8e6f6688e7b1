"""The rollout engine: many episodes at once, in groups, written as they finish.

Work items are (task, member) pairs; a task's G members share its seed, so they start from the
same task and state. ``concurrency`` workers each own one env and pull the next item as soon as
their episode ends (no lock-step). Each finished trajectory is appended to the store at once,
so a killed run loses only the episodes in flight, and ``resume`` runs exactly the missing items.

Failures are typed: an env that raises (or a step that times out), or a policy that raises
``InfraError`` (server down, retries exhausted), ends that trajectory with ``failure="infra"``
and the run goes on (an env's ``EnvCodeError``, a bug in its or its user's code such as a
verifier that raised, is ``failure="error"`` instead: counted, never scored, never masked); the env is rebuilt, since its state is unknown. A conversation that outgrows
the model's context (``ContextLengthExceeded``) ends the episode as truncated, unless not even
the first prompt fits (a configuration error). Any other policy exception is a bug and stops the
run (whatever finished is on disk; resume continues).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core import Failure, InfraError, TextEnv, TruncationReason
from agentgym.errors import EnvCodeError, TooManyInfraFailures
from agentgym.policies.base import (
    Completion,
    ContextLengthExceeded,
    Episode,
    Message,
    Policy,
    running_episode,
    turn_messages,
)
from agentgym.registry import EnvSpec
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Trajectory, Turn, canonical_key

__all__ = ["RolloutSummary", "WorkItem", "plan", "rollout", "run_episode", "summarize"]


@dataclass(frozen=True)
class WorkItem:
    """One episode to run: member ``member`` of the group of task ``task_index``."""

    task_index: int
    member: int
    seed: int
    group_id: str
    traj_id: str


def plan(run_id: str, *, tasks: int | None = None, group_size: int, seed: int = 0,
         seeds: Sequence[int] | None = None) -> list[WorkItem]:
    """All work items of a run, in order; ids are deterministic so resume can diff them.

    Task i uses seed ``seed + i``, or ``seeds[i]`` when the caller chooses the seeds (the trainer
    cycles over a task pool)."""
    if seeds is None:
        if tasks is None:
            raise TypeError("plan() needs tasks or seeds")
        seeds = range(seed, seed + tasks)
    return [
        WorkItem(i, k, task_seed, f"{run_id}-t{i:05d}", f"{run_id}-t{i:05d}-{k:03d}")
        for i, task_seed in enumerate(seeds)
        for k in range(group_size)
    ]


def _estimate_tokens(completion: Completion) -> int:
    """Completion tokens: the policy's count when known, else ~4 characters per token."""
    if completion.num_tokens is not None:
        return completion.num_tokens
    if completion.token_ids is not None:
        return len(completion.token_ids)
    return max(1, len(completion.text) // 4)


async def run_episode(
    env: TextEnv,
    policy: Policy,
    item: WorkItem,
    *,
    env_id: str,
    max_tokens: int | None = None,
    step_timeout: float | None = None,
) -> Trajectory:
    """Run one episode to its end; failures are recorded on the trajectory, never raised.

    The policy sees the episode as :func:`agentgym.policies.base.current_episode` (seeded
    policies derive their randomness from it)."""
    with running_episode(Episode(item.seed, item.member, item.task_index, item.traj_id)):
        return await _play(env, policy, item, env_id=env_id, max_tokens=max_tokens, step_timeout=step_timeout)


async def _play(
    env: TextEnv, policy: Policy, item: WorkItem, *, env_id: str, max_tokens: int | None,
    step_timeout: float | None,
) -> Trajectory:
    traj = Trajectory(
        traj_id=item.traj_id,
        group_id=item.group_id,
        task_id="",
        env_id=env_id,
        seed=item.seed,
        policy=policy.name,
        started_at=time.time(),
    )
    start = time.perf_counter()
    stage = "reset"
    try:
        obs, info = await _with_timeout(env.areset(seed=item.seed), step_timeout, "reset")
        traj.task_id = str(info.get("task_id", f"seed-{item.seed}"))
        traj.info = {k: v for k, v in info.items() if k not in _PER_TURN_KEYS}
        messages: list[Message] = []
        if env.system_prompt:
            messages.append({"role": "system", "content": env.system_prompt})
        messages.append({"role": info["role"], "content": obs})
        tokens_used = 0
        while True:
            stage = "policy"
            t0 = time.perf_counter()
            try:
                completion = await policy.act(messages, env)
            except ContextLengthExceeded:
                if not traj.turns:  # not even the task fits (or max_tokens alone is too large): a config error
                    raise
                traj.truncated, traj.truncation_reason = True, TruncationReason.CONTEXT_LENGTH
                break
            t1 = time.perf_counter()
            stage = "step"
            next_obs, reward, terminated, truncated, step_info = await _with_timeout(
                env.astep(completion.text), step_timeout, "step"
            )
            t2 = time.perf_counter()
            traj.turns.append(
                Turn(
                    index=len(traj.turns),
                    observation=obs,
                    action=completion.text,
                    reward=reward,
                    state_key=canonical_key(info["state_key"]),
                    role=info["role"],
                    void=bool(step_info["void"]),
                    parse_error=step_info["parse_error"],
                    tool_calls=list(step_info["tool_calls"]),
                    answer=step_info["answer"],
                    action_token_ids=completion.token_ids,
                    action_logprobs=completion.logprobs,
                    finish_reason=completion.finish_reason,
                    env_seconds=t2 - t1,
                    policy_seconds=t1 - t0,
                )
            )
            traj.outcome += reward
            obs, info = next_obs, step_info
            tokens_used += _estimate_tokens(completion)
            if step_info["failure"] is not None:  # the env itself reports a failed episode
                traj.failure = Failure(step_info["failure"])
                traj.failure_detail = step_info.get("failure_detail") or step_info["parse_error"]
            if terminated or truncated:
                traj.terminated, traj.truncated = terminated, truncated
                if truncated:
                    at_limit = env.max_turns is not None and env.turn >= env.max_turns
                    traj.truncation_reason = TruncationReason.MAX_TURNS if at_limit else TruncationReason.ENV
                break
            if max_tokens is not None and tokens_used >= max_tokens:
                traj.truncated, traj.truncation_reason = True, TruncationReason.TOKEN_BUDGET
                break
            messages.extend(turn_messages(completion, obs, info, env))
        traj.final_observation = obs
        traj.info.update({k: v for k, v in info.items() if k not in _PER_TURN_KEYS})
        # the env's verdict on the step that ended it; none when the engine cut the episode short
        traj.success = bool(info.get("success")) and traj.failure is None
    except Exception as e:  # noqa: BLE001 — env failures are recorded, typed, on the trajectory
        if stage == "policy" and not isinstance(e, (InfraError, OSError, TimeoutError)):
            raise  # a bug in the policy, not a failed episode: stop the run (it is resumable)
        traj.failure = Failure.ERROR if isinstance(e, EnvCodeError) else Failure.INFRA
        traj.failure_detail = f"{stage}: {type(e).__name__}: {e}"
        traj.info["traceback"] = traceback.format_exc(limit=8)
    traj.duration_seconds = time.perf_counter() - start
    return traj


# Keys that describe one step, stored on turns rather than in the trajectory's info.
_PER_TURN_KEYS = frozenset({"state_key", "parse_error", "void", "failure", "tool_calls", "answer", "role",
                            "success"})


async def _with_timeout(awaitable: Any, timeout: float | None, what: str) -> Any:
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"env {what} took longer than {timeout:g}s") from None


@dataclass
class RolloutSummary:
    """Aggregate numbers of a set of trajectories (what the CLI prints at the end)."""

    trajectories: int = 0
    successes: int = 0
    mean_turns: float = 0.0
    mean_outcome: float = 0.0
    steps: int = 0
    truncated: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.trajectories if self.trajectories else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def summarize(trajectories: Iterable[Trajectory], seconds: float = 0.0) -> RolloutSummary:
    trajs = list(trajectories)
    n = len(trajs)
    steps = sum(t.num_turns for t in trajs)
    return RolloutSummary(
        trajectories=n,
        successes=sum(t.success for t in trajs),
        mean_turns=steps / n if n else 0.0,
        mean_outcome=sum(t.outcome for t in trajs) / n if n else 0.0,
        steps=steps,
        truncated=sum(t.truncated for t in trajs),
        failures=Counter(t.failure for t in trajs if t.failure),
        seconds=seconds,
    )


async def rollout(
    env_spec: EnvSpec,
    policy: Policy,
    items: list[WorkItem],
    *,
    concurrency: int = 8,
    store: TrajectoryStore | None = None,
    max_turns: int | None = None,
    max_tokens: int | None = None,
    step_timeout: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
    threads: bool = True,
    make_env: Callable[..., Awaitable[TextEnv]] | None = None,
    stop_after_infra: int | None = None,
    state_groups: int | None = None,
    success_bonus: float = 1.0,
) -> list[Trajectory]:
    """Run ``items`` with at most ``concurrency`` episodes in flight; return the trajectories.

    Each finished trajectory is appended to ``store`` (if given) and passed to ``on_done``
    (progress bars) before the next item starts on that worker.

    ``threads=False`` builds and steps every env on the event loop itself (``threaded_async`` is
    switched off): envs that block then overlap nothing, but no step's timing can change which
    requests a batching policy serves together or in what order, so with a seeded policy the run
    is reproducible bit for bit (the trainer's ``rollout.deterministic``).

    ``make_env(**env_kwargs)`` builds each worker's env instead of ``env_spec.make`` (the spec
    still names the trajectories' env): :class:`agentgym.ray_rollout.RayEnvPool` hands out envs
    that live in Ray actors while this engine, and the policy, stay in this process.

    ``stop_after_infra``: a circuit breaker. Once that many episodes in a row have failed on
    infrastructure, the run stops with :class:`agentgym.errors.TooManyInfraFailures` (episodes in
    flight are abandoned, the finished ones are stored) instead of failing every remaining episode
    the same way.

    ``state_groups=K``: VPR's state-group rollout (:mod:`agentgym.state_group`): each item is one
    episode that samples K candidates at every state, scores them with the env's oracle and
    commits the best; it yields one one-turn record per candidate (``success_bonus`` is added to
    a solving candidate's reward). ``on_done`` then hears each episode's last record;
    ``max_tokens`` and ``step_timeout`` apply to ordinary episodes only. An env without an oracle
    is a :class:`~agentgym.errors.ConfigError` before anything runs.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    breaker = InfraBreaker(stop_after_infra)
    overrides = dict(env_kwargs or {})
    if max_turns is not None:
        overrides["max_turns"] = max_turns
    queue: asyncio.Queue[WorkItem] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    results: list[Trajectory] = []

    async def make_local(**kwargs: Any) -> TextEnv:
        if threads:
            return await asyncio.to_thread(env_spec.make, **kwargs)
        env = env_spec.make(**kwargs)
        env.threaded_async = False
        return env

    async def worker() -> None:
        env: TextEnv | None = None
        try:
            while not queue.empty():
                item = queue.get_nowait()
                if env is None:
                    try:
                        env = await (make_env or make_local)(**overrides)
                    except Exception as e:  # noqa: BLE001 — a broken env is an infra failure
                        traj = Trajectory(
                            item.traj_id, item.group_id, "", env_spec.id, item.seed, policy.name,
                            failure=Failure.INFRA, failure_detail=f"make: {type(e).__name__}: {e}",
                            started_at=time.time(),
                        )
                        _finish(traj)
                        continue
                if state_groups is None:
                    trajs = [await run_episode(env, policy, item, env_id=env_spec.id, max_tokens=max_tokens,
                                               step_timeout=step_timeout)]
                else:
                    from agentgym.state_group import check_verifier, run_state_group_episode

                    check_verifier(env, env_spec.id)
                    with running_episode(Episode(item.seed, item.member, item.task_index, item.traj_id)):
                        trajs = await run_state_group_episode(
                            env, policy, traj_id=item.traj_id, seed=item.seed, task_index=item.task_index,
                            candidates=state_groups, env_id=env_spec.id, success_bonus=success_bonus)
                if trajs[-1].failure in (Failure.INFRA, Failure.ERROR):  # the env's state is unknown: build a fresh one
                    await _close_quietly(env)
                    env = None
                for traj in trajs[:-1]:
                    _finish(traj, notify=False)
                _finish(trajs[-1])
        finally:
            if env is not None:
                await _close_quietly(env)

    def _finish(traj: Trajectory, notify: bool = True) -> None:
        if store is not None:
            store.append(traj)
        results.append(traj)
        if on_done is not None and notify:
            on_done(traj)
        breaker.record(traj)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)) or 1)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
    return results


class InfraBreaker:
    """Counts episodes failed on infrastructure in a row; raises
    :class:`~agentgym.errors.TooManyInfraFailures` at ``limit`` (``None``: never)."""

    def __init__(self, limit: int | None):
        if limit is not None and limit < 1:
            raise ValueError("stop_after_infra must be >= 1 (or None: never stop)")
        self.limit, self.streak = limit, 0

    def record(self, traj: Trajectory) -> None:
        self.streak = self.streak + 1 if traj.failure == Failure.INFRA else 0
        if self.limit is not None and self.streak >= self.limit:
            raise TooManyInfraFailures(self.streak, traj.failure_detail or "no detail")


async def _close_quietly(env: TextEnv) -> None:
    try:
        await env.aclose()
    except Exception:  # noqa: BLE001 — closing a broken env must not end the run
        pass
