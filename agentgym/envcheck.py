"""``agentgym check ENV_ID``: what an env author runs before anyone trains on the env.

Each check gives one :class:`CheckResult` (PASS, FAIL or WARN with the reason; latency is INFO,
reported and never judged): Gymnasium's own checker, reset determinism per seed, the agentgym info
contract (``state_key`` present and equal for equal states, ``task_id``, ``success`` a bool on the
last step only), finite task-pool coverage by consecutive seeds, and the generic red-team catalogue
of :mod:`agentgym.redteam`, which doubles as the malformed-action suite (empty, huge, binary,
broken-Unicode and unclosed-tag replies must become observations, never exceptions).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from collections.abc import Callable
from typing import Any

from agentgym.core import InfraError, TextEnv
from agentgym.registry import EnvSpec
from agentgym.trajectory import canonical_key

__all__ = ["CheckResult", "run_checks"]

#: Steps per played episode when the env has no turn limit of its own.
MAX_EPISODE_STEPS = 64


@dataclasses.dataclass
class CheckResult:
    """One line of the report."""

    name: str
    status: str  # PASS | FAIL | WARN | INFO
    reason: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Timed:
    """Reset and step latencies of the episodes the checks play themselves."""

    def __init__(self) -> None:
        self.reset: list[float] = []
        self.step: list[float] = []

    def do_reset(self, env: TextEnv, seed: int) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        out = env.reset(seed=seed)
        self.reset.append(time.perf_counter() - start)
        return out

    def do_step(self, env: TextEnv, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        out = env.step(action)
        self.step.append(time.perf_counter() - start)
        return out


def _percentiles(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    s = sorted(xs)
    p50, p95 = s[len(s) // 2], s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]
    return f"p50 {p50 * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms (n={len(s)})"


def _key(info: dict[str, Any]) -> Any:
    return canonical_key(info.get("state_key"))


def _actions(env: TextEnv, rng: random.Random, expert: bool) -> Any:
    """The expert's action (when it has one and ``expert``), else a legal one, else a fixed probe."""
    if expert and callable(getattr(env, "expert_action", None)):
        return env.expert_action()
    legal = env.legal_actions() if callable(getattr(env, "legal_actions", None)) else []
    return rng.choice(legal) if legal else "?"


def _play(env: TextEnv, seed: int, timed: _Timed, raw: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """One episode from ``seed`` (expert on even seeds, legal/probe actions on odd ones): the reset
    and every step as comparable tuples; ``raw`` gets the info dicts the env itself returned."""
    rng = random.Random(seed)
    obs, info = timed.do_reset(env, seed)
    record = [("reset", obs, _key(info), info.get("task_id"))]
    inner = env.unwrapped
    original = inner._step

    def spy(action: str) -> Any:
        out = original(action)
        raw.append(dict(out[4]))
        return out

    inner._step = spy  # the env's own info, before the core fills in defaults and success
    try:
        for _ in range(min(env.max_turns or MAX_EPISODE_STEPS, MAX_EPISODE_STEPS)):
            obs, reward, terminated, truncated, info = timed.do_step(env, _actions(env, rng, seed % 2 == 0))
            record.append(("step", obs, reward, terminated, truncated, _key(info), info.get("success"), info))
            if terminated or truncated:
                break
    finally:
        del inner._step
    return record


def _fmt_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"


def _gymnasium_check(env_spec: EnvSpec, overrides: dict[str, Any]) -> CheckResult:
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    name = "gymnasium-checker"
    try:
        env = gymnasium.make(env_spec.id, **overrides)  # through gymnasium: the checker also tries the render modes
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check_env(env.unwrapped)
            finally:
                env.close()
    except InfraError:
        raise
    except Exception as e:  # noqa: BLE001 — what the checker found
        return CheckResult(name, "FAIL", f"gymnasium.utils.env_checker.check_env raised {_fmt_error(e)}")
    found = sorted({str(w.message)[:300] for w in caught if "render fps" not in str(w.message)})  # text has no fps
    if found:
        return CheckResult(name, "WARN", f"check_env warned: {' | '.join(found)}", {"warnings": found})
    return CheckResult(name, "PASS", "gymnasium.utils.env_checker.check_env: no error, no warning")


def _determinism(make_env: Callable[[], TextEnv], seeds: range, timed: _Timed,
                 raw: list[dict[str, Any]]) -> tuple[CheckResult, list[list[tuple[Any, ...]]]]:
    """Two fresh envs play the same seeds with the same actions, and the first resets each seed
    again after playing: every reset (observation, state_key, task_id) and every step must repeat."""
    name = "reset-determinism"
    first, second = make_env(), make_env()
    try:
        episodes = [_play(first, s, timed, raw) for s in seeds]
        others = [_play(second, s, timed, []) for s in seeds]
        again = [timed.do_reset(first, s) for s in seeds]
    finally:
        first.close()
        second.close()
    problems = []
    for s, ep, other, (obs, info) in zip(seeds, episodes, others, again, strict=True):
        if (ep[0][1], ep[0][2], ep[0][3]) != (obs, _key(info), info.get("task_id")):
            problems.append(f"seed {s}: a second reset(seed={s}) of the same env gave another observation, "
                            "state_key or task_id (state leaks across episodes?)")
        elif ep[0] != other[0]:
            problems.append(f"seed {s}: two envs reset with seed {s} gave different observations, state_key "
                            "or task_id")
        elif ep != other:
            turn = next(i for i, (a, b) in enumerate(zip(ep, other, strict=False)) if a != b)
            problems.append(f"seed {s}: the same actions diverged at step {turn} (observation, reward, "
                            "state_key or info differ)")
    details = {"seeds": list(seeds)}
    if problems:
        return CheckResult(name, "FAIL", "; ".join(problems), details), episodes
    if len(seeds) > 1 and len({ep[0][1] for ep in episodes}) == 1:
        return CheckResult(name, "WARN", f"seeds {seeds.start}-{seeds.stop - 1} all give the same first "
                           "observation: does the seed pick the task?", details), episodes
    return CheckResult(name, "PASS", f"seeds {seeds.start}-{seeds.stop - 1}: same observation, info and "
                       "episode from two envs and from a reset after play", details), episodes


def _info_contract(episodes: list[list[tuple[Any, ...]]], raw: list[dict[str, Any]]) -> list[CheckResult]:
    """state_key on every observation, task_id on reset, success a bool on the last step only."""
    results = []
    resets = [ep[0] for ep in episodes]
    steps = [st for ep in episodes for st in ep[1:]]
    missing = sum(r[2] is None for r in resets) + sum(st[5] is None for st in steps)
    keys = {r[2] for r in resets} | {st[5] for st in steps}
    if missing:
        results.append(CheckResult("state_key", "FAIL", f"{missing} of {len(resets) + len(steps)} observations have "
                                   "no info['state_key'] (GiGPO cannot pool their turns)"))
    elif len(keys) == 1 and len(resets) + len(steps) > 2:
        results.append(CheckResult("state_key", "WARN", "every observation has the same state_key: it does not "
                                   "tell states apart"))
    else:
        results.append(CheckResult("state_key", "PASS", f"present on every observation ({len(keys)} distinct), "
                                   "equal for equal states of two envs"))
    no_task = sum(r[3] is None for r in resets)
    if no_task:
        results.append(CheckResult("task_id", "WARN", f"{no_task} of {len(resets)} resets have no info['task_id'] "
                                   "(trajectories get 'seed-N')"))
    elif any(not isinstance(r[3], str) for r in resets):
        results.append(CheckResult("task_id", "WARN", "info['task_id'] is not a str (it is stored as str())"))
    else:
        results.append(CheckResult("task_id", "PASS", f"a str on every reset ({len({r[3] for r in resets})} distinct)"))
    early = [st for ep in episodes for st in ep[1:-1] if st[6] is not None]
    ended = [ep for ep in episodes if len(ep) > 1 and (ep[-1][3] or ep[-1][4])]
    said = [info for info in raw if "success" in info and info["success"] is not None]
    terminated_by_env = [ep for ep in ended if ep[-1][3]]
    if any(st[6] for st in early):
        results.append(CheckResult("success", "FAIL", "info['success'] is true on a step that does not end the "
                                   "episode: success is the verdict of the last step"))
    elif terminated_by_env and not said:
        results.append(CheckResult("success", "FAIL", "the env never sets info['success'] itself: the core falls "
                                   "back to 'a positive return', which is not your env's definition of success"))
    elif said and any(not isinstance(i["success"], bool) for i in said):
        bad = next(i["success"] for i in said if not isinstance(i["success"], bool))
        results.append(CheckResult("success", "WARN", f"info['success'] is {bad!r}, not a bool (coerced)"))
    elif not ended:
        results.append(CheckResult("success", "WARN", f"no played episode ended within {MAX_EPISODE_STEPS} steps: "
                                   "success not checked"))
    elif early:
        results.append(CheckResult("success", "WARN", f"info['success'] is {early[0][6]!r} before the last step "
                                   "(the contract keeps it None until then)"))
    else:
        wins = sum(bool(ep[-1][6]) for ep in ended)
        results.append(CheckResult("success", "PASS", f"a bool on the last step only ({wins} of {len(ended)} "
                                   "played episodes succeeded)"))
    return results


def _pool(make_env: Callable[[], TextEnv], window: int, timed: _Timed) -> CheckResult:
    """``num_tasks`` consecutive seeds play every task of a finite pool once (see ``TextEnv.pool_index``)."""
    name = "task-pool"
    env = make_env()
    try:
        size = env.unwrapped.num_tasks
        if size is None:
            return CheckResult(name, "PASS", "num_tasks is None: a new task for every seed")
        n = min(size, window)
        ids = [timed.do_reset(env, s)[1].get("task_id") for s in range(n)]
        if None in ids:
            return CheckResult(name, "FAIL", f"num_tasks={size} but reset gives no info['task_id'] to tell tasks apart")
        if len(set(ids)) < n:
            return CheckResult(name, "FAIL", f"seeds 0-{n - 1} played {len(set(ids))} distinct tasks of {size}: "
                               "pick the task with self.pool_index(num_tasks)", {"num_tasks": size})
        if n == size and timed.do_reset(env, size)[1].get("task_id") != ids[0]:
            return CheckResult(name, "FAIL", f"seed {size} does not replay seed 0's task: the pool is not cycled "
                               "by seed mod num_tasks", {"num_tasks": size})
        covered = "the whole pool" if n == size else f"{n} distinct tasks (window; pool of {size})"
        return CheckResult(name, "PASS", f"seeds 0-{n - 1} played {covered}", {"num_tasks": size})
    finally:
        env.close()


def _redteam(make_env: Callable[[], TextEnv], seeds: range) -> list[CheckResult]:
    from agentgym.redteam import GENERIC_ATTACKS, run_redteam

    results = run_redteam(make_env, seeds=seeds)
    crashed = [f"{r.attack} ({r.errors[0]})" for r in results if r.errors]
    forged = [f"{r.attack} (reward {r.max_reward:g}, success {r.success})" for r in results if r.forged]
    infra = [f"{r.attack} ({r.infra[0]})" for r in results if r.infra]
    details = {"attacks": [r.to_json() for r in results]}
    malformed = (CheckResult("malformed-actions", "FAIL", "step raised on: " + "; ".join(crashed))
                 if crashed else CheckResult("malformed-actions", "PASS", f"no exception from {len(GENERIC_ATTACKS)} "
                                             "red-team attacks (empty, huge, non-text, broken Unicode, unclosed tags, ...)"))
    if forged:
        red = CheckResult("redteam", "FAIL", "forged replies earned reward or success: " + "; ".join(forged), details)
    elif infra:
        red = CheckResult("redteam", "WARN", "infrastructure failed during: " + "; ".join(infra), details)
    else:
        red = CheckResult("redteam", "PASS", f"every generic attack held ({len(results)} attacks x {len(seeds)} "
                          "seeds)", details)
    return [malformed, red]


def run_checks(env_spec: EnvSpec, overrides: dict[str, Any] | None = None, *, seeds: int = 3,
               pool_window: int = 1000,
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Every check on ``env_spec`` built with ``overrides``; ``on_result`` sees each result as it lands.

    The caller checks the config first (:func:`agentgym.registry.check_env_config`): a kwarg the
    env rejects is bad input, not a check that fails. An :class:`InfraError` fails the check it
    happened in, and the others still run."""
    overrides = dict(overrides or {})
    timed, raw, out = _Timed(), [], []

    def make_env() -> TextEnv:
        return env_spec.make(**overrides)

    def add(*results: CheckResult) -> None:
        for r in results:
            out.append(r)
            if on_result is not None:
                on_result(r)

    def guarded(name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except InfraError as e:
            add(CheckResult(name, "FAIL", f"infrastructure failed: {_fmt_error(e)}"))
        except Exception as e:  # noqa: BLE001 — a contract violation is the finding
            add(CheckResult(name, "FAIL", f"raised {_fmt_error(e)}"))
        return None

    result = guarded("gymnasium-checker", lambda: _gymnasium_check(env_spec, overrides))
    if result:
        add(result)
    played = guarded("reset-determinism", lambda: _determinism(make_env, range(seeds), timed, raw))
    if played:
        add(played[0])
        add(*_info_contract(played[1], raw))
    result = guarded("task-pool", lambda: _pool(make_env, pool_window, timed))
    if result:
        add(result)
    results = guarded("redteam", lambda: _redteam(make_env, range(seeds)))
    if results:
        add(*results)
    add(CheckResult("latency", "INFO", f"reset {_percentiles(timed.reset)}; step {_percentiles(timed.step)}",
                    {"reset_s": sorted(timed.reset), "step_s": sorted(timed.step)}))
    return out
