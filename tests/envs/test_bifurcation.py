from __future__ import annotations

import itertools

import pytest

import agentgym
from agentgym.envs.bifurcation import DECISION_SCENES, FILLER_SCENES, BifurcationEnv, parse_choice


def play(env: BifurcationEnv, seed: int, pick, options: dict | None = None) -> tuple[float, list[dict]]:
    """Run one episode choosing ``pick(env)`` each stage; return (reward, infos)."""
    _, info = env.reset(seed=seed, options=options)
    infos = [info]
    while True:
        _, reward, terminated, truncated, info = env.step(pick(env))
        infos.append(info)
        if terminated or truncated:
            return reward, infos


def good(env: BifurcationEnv) -> str:
    return env.task.good_label if env.stage == env.task.t_star else "2"


def bad(env: BifurcationEnv) -> str:
    labels = [x for x in env.labels if x != env.task.good_label]
    return labels[0] if env.stage == env.task.t_star else "1"


def test_deterministic_outcomes_follow_the_decisive_choice() -> None:
    env = BifurcationEnv(p_good=1.0, p_bad=0.0, horizon=6, n_distractors=2)
    for seed in range(100):
        assert play(env, seed, good)[0] == 1.0
        assert play(env, seed, bad)[0] == 0.0


@pytest.mark.parametrize(("p_good", "p_bad"), [(0.9, 0.1), (0.7, 0.4)])
def test_success_rates_match_p_good_and_p_bad(p_good: float, p_bad: float) -> None:
    env, n = BifurcationEnv(p_good=p_good, p_bad=p_bad), 2000
    rate_good = sum(play(env, seed, good)[0] for seed in range(n)) / n
    rate_bad = sum(play(env, seed, bad)[0] for seed in range(n)) / n
    assert abs(rate_good - p_good) < 0.04 and abs(rate_bad - p_bad) < 0.04  # > 3.5 sigma


def test_filler_choices_never_change_the_outcome() -> None:
    """Same seed, same decisive choice ⇒ same outcome whatever the other stages chose."""
    env = BifurcationEnv(horizon=4, t_star=1, p_good=0.5, p_bad=0.5)
    for seed in range(10):
        outcomes = set()
        for combo in itertools.product("123", repeat=3):
            picks = iter(combo)
            outcomes.add(play(env, seed, lambda e, picks=picks: "1" if e.stage == 1 else next(picks))[0])
        assert len(outcomes) == 1


def test_outcome_seed_gives_independent_reproducible_draws() -> None:
    env = BifurcationEnv(p_good=0.5, p_bad=0.5)
    draws = [play(env, 3, good, {"outcome_seed": k})[0] for k in range(400)]
    assert 0.4 < sum(draws) / len(draws) < 0.6  # independent across the group, not all equal
    assert draws == [play(env, 3, good, {"outcome_seed": k})[0] for k in range(400)]


def test_t_star_fixed_or_drawn_per_seed_and_exposed() -> None:
    drawn = BifurcationEnv(horizon=5)
    seen = set()
    for seed in range(100):
        _, infos = play(drawn, seed, good)
        assert {i["t_star"] for i in infos} == {drawn.task.t_star} and {i["horizon"] for i in infos} == {5}
        seen.add(drawn.task.t_star)
    assert seen == set(range(5))
    fixed = BifurcationEnv(horizon=5, t_star=3)
    assert {fixed.reset(seed=s)[1]["t_star"] for s in range(20)} == {3}


def test_task_layout_and_scenes() -> None:
    env = BifurcationEnv(horizon=8, n_distractors=3, n_options=4)
    decision = {scene for scene, _ in DECISION_SCENES}
    filler = {scene for scene, _ in FILLER_SCENES}
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        task = env.task
        assert task.kinds.count("decisive") == 1 and task.kinds[task.t_star] == "decisive"
        assert task.kinds.count("distractor") == 3 and info["kinds"] == list(task.kinds)
        for kind, scene, menu in zip(task.kinds, task.scenes, task.menus, strict=True):
            assert scene in (filler if kind == "filler" else decision)  # distractors look decisive
            assert len(menu) == len(set(menu)) == 4
        assert info["good_label"] in env.legal_actions() == ["1", "2", "3", "4"]
        assert info["task_id"].startswith("bifurcation-H8-")


def test_state_key_tracks_the_hidden_decisive_status() -> None:
    env = BifurcationEnv(horizon=4, t_star=1)
    for pick, status in ((good, "good"), (bad, "bad")):
        _, infos = play(env, 0, pick)
        keys = [i["state_key"] for i in infos]
        assert [k.rsplit("=", 1)[1] for k in keys] == ["pending", "pending", status, status, status]
        assert keys[0].startswith("stage=0|") and keys[-1] == f"end|decisive={status}"
    good_keys = [i["state_key"] for i in play(env, 0, good)[1]]
    bad_keys = [i["state_key"] for i in play(env, 0, bad)[1]]
    assert good_keys[:2] == bad_keys[:2] and good_keys[2] != bad_keys[2]  # anchors split after t*


def test_observation_hides_the_decisive_status() -> None:
    env = BifurcationEnv(horizon=3, t_star=0, p_good=1.0, p_bad=0.0)
    env.reset(seed=5)
    good_obs = env.step(env.task.good_label)[0]
    env.reset(seed=5)
    other = next(x for x in env.labels if x != env.task.good_label)
    bad_obs = env.step(other)[0]
    # Only the "You chose …" line differs: the next menu is the same text.
    assert good_obs.split("\n", 1)[1] == bad_obs.split("\n", 1)[1]


def test_noise_varies_text_not_state_key() -> None:
    quiet = BifurcationEnv(noise=0.0)
    assert "paces" not in quiet.reset(seed=1)[0]
    env = BifurcationEnv(horizon=3, t_star=2, noise=1.0)
    texts, keys = set(), set()
    for first in "123":
        env.reset(seed=1)
        obs, _, _, _, info = env.step(first)  # filler choice, then the same Markov state
        texts.add(obs.split("\n", 1)[1])
        keys.add(info["state_key"])
        assert "paces" in obs
    assert len(keys) == 1 and len(texts) > 1
    env.reset(seed=1)
    again = env.step("1")[0]
    env.reset(seed=1)
    assert env.step("1")[0] == again  # still reproducible from seed + actions


@pytest.mark.parametrize("action", ["2", " 2 ", "\n2\t", "<answer>2</answer>", "<ANSWER> 2 </Answer>",
                                    " <answer>\n2\n</answer> "])
def test_accepted_action_forms(action: str) -> None:
    assert parse_choice(action, ["1", "2", "3"]) == ("2", None)


@pytest.mark.parametrize("action", ["", "two", "22", "4", "0", "<answer>2", "2.", "option 2", "<answer>2</answer>x",
                                    "2" * 1000])
def test_invalid_actions_repeat_the_menu_and_count(action: str) -> None:
    env = BifurcationEnv(horizon=3)
    obs0, info0 = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["parse_error"] and info["void"] and reward == 0.0 and not (terminated or truncated)
    assert obs.startswith("Invalid reply") and obs0.split("\n\n", 1)[1] in obs
    assert info["state_key"] == info0["state_key"] and info["stage"] == 0 and env.turn == 1


def test_max_turns_defaults_to_twice_the_horizon() -> None:
    env = agentgym.make("agentgym/Bifurcation-v0", horizon=7)
    env.reset(seed=0)
    for turn in range(1, 15):
        _, _, terminated, truncated, _ = env.step("nope")
        assert truncated == (turn == 14) and not terminated
    assert BifurcationEnv(horizon=7, max_turns=3).max_turns == 3


def test_expert_picks_the_good_option_only_where_it_matters() -> None:
    env = BifurcationEnv(horizon=5)
    for seed in range(20):
        env.reset(seed=seed)
        for stage in range(5):
            expected = env.task.good_label if stage == env.task.t_star else "1"
            assert env.expert_action() == expected
            env.step(env.expert_action())


@pytest.mark.parametrize("kwargs", [{"horizon": 0}, {"t_star": 5}, {"t_star": -1}, {"p_good": 0.2, "p_bad": 0.5},
                                    {"p_good": 1.5}, {"n_options": 1}, {"n_options": 7}, {"n_distractors": 5},
                                    {"noise": -0.1}])
def test_rejects_bad_kwargs(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BifurcationEnv(**kwargs)


def test_horizon_one_and_null_control() -> None:
    env = BifurcationEnv(horizon=1, p_good=0.5, p_bad=0.5)
    _, info = env.reset(seed=0)
    assert info["t_star"] == 0 and info["kinds"] == ["decisive"]
    _, _, terminated, _, info = env.step("1")
    assert terminated and info["state_key"] == f"end|decisive={'good' if env.task.good_label == '1' else 'bad'}"
