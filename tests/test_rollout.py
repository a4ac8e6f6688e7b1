import asyncio

import pytest

import agentgym
from agentgym.core import InfraError
from agentgym.policies.base import Completion, Policy
from agentgym.rollout import plan, rollout, summarize
from agentgym.store import TrajectoryStore

pytestmark = pytest.mark.usefixtures("test_envs")


class Expert(Policy):
    """Answers right, optionally after a delay that depends on the seed, counting concurrency."""

    name = "expert"

    def __init__(self, delay_for_seed=None, wrong=False, tokens=None):
        self.delay_for_seed = delay_for_seed or (lambda seed: 0.0)
        self.wrong, self.tokens = wrong, tokens
        self.in_flight = self.max_in_flight = 0

    async def act(self, messages, env):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_for_seed(env.number))
        self.in_flight -= 1
        return Completion("wrong" if self.wrong else env.expert_action(), num_tokens=self.tokens)


def run(env_id, policy, tasks=4, group_size=3, **kw):
    items = plan("run", tasks=tasks, group_size=group_size)
    return asyncio.run(rollout(agentgym.spec(env_id), policy, items, **kw))


def test_groups_share_seed_and_task_and_ids_are_unique():
    trajs = run("tests/Echo-v0", Expert(), tasks=5, group_size=4, concurrency=3)
    assert len(trajs) == 20 and len({t.traj_id for t in trajs}) == 20
    by_group = {}
    for t in trajs:
        by_group.setdefault(t.group_id, set()).add((t.seed, t.task_id))
    assert len(by_group) == 5 and all(len(v) == 1 for v in by_group.values())
    assert all(t.success and t.num_turns == 1 for t in trajs)
    turn = trajs[0].turns[0]
    assert turn.observation.startswith("Say ") and turn.state_key == "start" and turn.reward == 1.0


def test_concurrency_is_bounded_and_not_lock_step():
    # The episode of seed 0 is slow; the other episodes must finish while it is in flight.
    env = agentgym.make("tests/Echo-v0")
    slow_number = int(env.reset(seed=0)[0].split()[1].rstrip("."))
    policy = Expert(delay_for_seed=lambda n: 0.5 if n == slow_number else 0.01)
    finished = []
    items = plan("run", tasks=12, group_size=1)
    trajs = asyncio.run(
        rollout(agentgym.spec("tests/Echo-v0"), policy, items, concurrency=4, on_done=finished.append)
    )
    assert len(trajs) == 12 and policy.max_in_flight == 4
    slow = [i for i, t in enumerate(finished) if t.seed == 0]
    assert slow and slow[0] > 0  # others finished before the slow episode: no lock-step


def test_max_turns_and_token_budget_truncation_are_marked():
    trajs = run("tests/Echo-v0", Expert(wrong=True), tasks=2, group_size=1, max_turns=3)
    assert all(t.truncated and t.truncation_reason == "max_turns" and t.num_turns == 3 for t in trajs)
    assert all(not t.success and t.failure is None for t in trajs)
    trajs = run("tests/Echo-v0", Expert(wrong=True, tokens=40), tasks=2, group_size=1, max_tokens=100)
    assert all(t.truncation_reason == "token_budget" and t.num_turns == 3 for t in trajs)


def test_env_exceptions_become_typed_failures_and_the_run_goes_on():
    trajs = run("tests/Flaky-v0", Expert(), tasks=30, group_size=1, concurrency=4)
    assert len(trajs) == 30
    kinds = summarize(trajs).failures
    assert kinds["infra"] > 0 and sum(t.success for t in trajs) > 0
    crashed = [t for t in trajs if t.failure == "infra"]
    details = {t.failure_detail.split(":")[1].strip() for t in crashed}
    assert details == {"ZeroDivisionError", "InfraError"}
    assert all(t.outcome == 0 and not t.success for t in crashed)


def test_step_timeout_is_an_infra_failure():
    trajs = run("tests/Slow-v0", Expert(), tasks=2, group_size=1, step_timeout=0.05,
                env_kwargs={"delay": 0.5})
    assert [t.failure for t in trajs] == ["infra", "infra"]
    assert "longer than 0.05s" in trajs[0].failure_detail


def test_policy_infra_error_is_recorded_but_a_policy_bug_stops_the_run():
    class Down(Policy):
        async def act(self, messages, env):
            raise InfraError("server returned 503 five times")

    class Buggy(Policy):
        async def act(self, messages, env):
            raise KeyError("oops")

    trajs = run("tests/Echo-v0", Down(), tasks=2, group_size=1)
    assert all(t.failure == "infra" and "503" in t.failure_detail for t in trajs)
    with pytest.raises(KeyError):
        run("tests/Echo-v0", Buggy(), tasks=2, group_size=1)


def test_store_receives_each_trajectory_and_resume_runs_only_the_missing(tmp_path):
    items = plan("run", tasks=4, group_size=2)
    store = TrajectoryStore(tmp_path)
    spec = agentgym.spec("tests/Echo-v0")
    asyncio.run(rollout(spec, Expert(), items[:3], store=store))
    done = store.completed_ids()
    todo = [it for it in items if it.traj_id not in done]
    asyncio.run(rollout(spec, Expert(), todo, store=store))
    store.close()
    ids = [t.traj_id for t in store.read()]
    assert sorted(ids) == sorted(it.traj_id for it in items)


def test_summary_counts():
    trajs = run("tests/Echo-v0", Expert(), tasks=2, group_size=2)
    trajs += run("tests/Echo-v0", Expert(wrong=True), tasks=1, group_size=2)
    s = summarize(trajs, seconds=2.0)
    assert s.trajectories == 6 and s.successes == 4 and s.success_rate == pytest.approx(4 / 6)
    assert s.mean_turns == pytest.approx((4 * 1 + 2 * 4) / 6) and s.steps_per_second == 6.0
