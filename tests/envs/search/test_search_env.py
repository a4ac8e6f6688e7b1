"""agentgym/Search-v0: protocol, rewards, malformed actions, state keys, local vs HTTP retrieval."""

from __future__ import annotations

import asyncio
import difflib
import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest

import agentgym
from agentgym.core import INFO_DEFAULTS, InfraError
from agentgym.envs.search import register_search_envs
from agentgym.envs.search.data import KnowledgeBase
from agentgym.envs.search.env import SearchEnv
from agentgym.envs.search.retrievers import BM25Retriever
from agentgym.envs.search.server import RetrieverServer
from agentgym.policies import make_policy
from agentgym.rollout import plan, rollout

KB_DOCS = 1500  # the size of conftest's `kb`, so envs and the fixture share one KB


@pytest.fixture(scope="module")
def env(cache_dir: Path) -> SearchEnv:
    return SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir))


def _play(env: SearchEnv, actions: list[str]) -> list[tuple[str, float, bool, bool, dict[str, Any]]]:
    return [env.step(a) for a in actions]


def test_expert_solves_and_retrieval_follows_the_chain(env: SearchEnv) -> None:
    solved, chain_found, episodes = 0, 0, 300
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        assert obs.startswith("Question: ") and info["question"] in obs
        assert info["gold_answers"] and info["num_hops"] == len(info["hops"]) >= 1
        total, retrieved, observations, done = 0.0, [], [], False
        while not done:
            obs, reward, terminated, truncated, step_info = env.step(env.expert_action())
            total, done = total + reward, terminated or truncated
            retrieved.append(step_info.get("retrieved_ids", []))
            observations.append(obs)
        solved += total == 1.0 and terminated
        hops = info["hops"]
        chain_found += all(h["doc_id"] in ids for h, ids in zip(hops, retrieved, strict=False)) and (
            hops[-1]["entity"] in observations[len(hops) - 1]
        )
    assert solved / episodes >= 0.95
    assert chain_found / episodes >= 0.95  # the hop queries really surface each fact


def test_generation_stops_after_one_action(env: SearchEnv) -> None:
    assert env.stop_sequences == ("</search>", "</answer>")
    env.reset(seed=2)
    obs, _, terminated, _, info = env.step("I will look it up. <search>Korvan founder</search>")
    assert not terminated and info["tool_calls"] and "<information>" in obs


def test_search_observation(env: SearchEnv) -> None:
    env.reset(seed=1)
    query = env.task.hops[0].query
    spaced = "  " + query.replace(" ", "   ") + " "
    obs, reward, terminated, truncated, info = env.step(f"<think>Let me look.</think><search>{spaced}</search>")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["role"] == "tool" and not info["void"] and info["parse_error"] is None
    assert info["tool_calls"] == [{"name": "search", "arguments": {"query": query}}]
    assert env.task.hops[0].doc_id in info["retrieved_ids"]
    [[start, end]] = info["retrieved_spans"]
    block = obs[start:end]
    assert block.startswith("<information>") and block.endswith("</information>")
    assert obs == f"\n\n{block}\n\n" and block.count("Doc ") >= 1
    assert len(info["retrieved_ids"]) <= env.topk


def test_observation_cap(cache_dir: Path) -> None:
    capped = SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir), max_obs_chars=250, topk=5)
    capped.reset(seed=0)
    obs, *_, info = capped.step(f"<search>{capped.task.hops[0].query}</search>")
    [[start, end]] = info["retrieved_spans"]
    assert len(obs) <= 250 and obs[start:end].endswith("…</information>")
    with pytest.raises(ValueError):
        SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir), max_obs_chars=10)


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ("I think the answer is Paris.", "no <search>"),
        ("<search>a</search><search>b</search>", "found 2 actions"),
        ("<search>a</search> then <answer>b</answer>", "found 2 actions"),
        ("<search>   </search>", "is empty"),
        ("<search>who founded Korvan", "never closed"),
        ("<answer>Paris", "never closed"),
        ("Korvan</search>", "no opening"),
        ("<answer></answer>", "is empty"),
        ("x" * 30_000, "characters long"),
        ("<search>" + "word " * 200 + "</search>", "keep it under"),
        ("<think><answer>Paris</answer></think>", "no <search>"),  # thinking about an answer is not one
    ],
)
def test_malformed_actions_keep_the_episode_going(env: SearchEnv, action: str, fragment: str) -> None:
    env.reset(seed=2)
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert fragment in info["parse_error"] and info["void"] and info["role"] == "user"
    assert obs.startswith("\nMy previous action is invalid") and fragment in obs and len(obs) < 700
    assert info["state_key"] == "start" and info["tool_calls"] == ()
    obs, reward, terminated, *_ = env.step(env.expert_action())  # and the episode goes on
    assert not terminated and "<information>" in obs


def test_rewards_em_f1_and_answer_from_model_text(cache_dir: Path, kb: KnowledgeBase) -> None:
    person = next(i for i, t in enumerate(kb.tasks) if len(t.answers) == 2 and " " in t.answers[0]
                  and t.question.startswith("Who"))
    full, surname = kb.tasks[person].answers
    first = full.split()[0]
    for metric, answer, expected in [
        ("em", f"the {full.upper()}.", 1.0), ("em", surname, 1.0), ("em", first, 0.0),
        ("f1", first, pytest.approx(2 / 3)), ("f1", f"{full} indeed", pytest.approx(0.8)), ("f1", "no idea", 0.0),
    ]:
        env = SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir), metric=metric)
        env.reset(options={"task": person})
        env.step(env.expert_action())  # the docs now contain the answer; the model's text still decides
        obs, reward, terminated, truncated, info = env.step(f"<think>{full}?</think> <answer>{answer}</answer>")
        assert terminated and not truncated and obs == ""
        assert reward == expected and info["answer"] == answer.strip() and not info["void"]
        assert set(info) >= {"em", "f1"}
    with pytest.raises(ValueError):
        SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir), metric="bleu")


def test_state_keys(cache_dir: Path) -> None:
    env = SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir), max_turns=None)
    env.reset(seed=3)
    hop = env.task.hops[0].query
    keys = [info["state_key"] for *_, info in _play(env, [
        f"<search>{hop}</search>", f"<search>{hop.upper()}?</search>", f"<search>the {hop}</search>",
    ])]
    assert len(set(keys)) == 1 and keys[0].startswith(tuple("PCNOUI"))  # wording-insensitive
    ids, tokens = keys[0].split(" | ")
    assert ids == " ".join(sorted(ids.split())) and tokens == " ".join(sorted(tokens.split()))
    # "facts" occurs in no document, so the results are the same: a near-identical anchor that
    # GiGPO's similarity mode (difflib ratio >= 0.9) merges; other documents fall below it.
    reworded = _play(env, [f"<search>{hop} facts</search>"])[0][4]
    assert reworded["state_key"].split(" | ")[0] == ids
    assert difflib.SequenceMatcher(None, keys[0], reworded["state_key"]).ratio() >= 0.9
    other = _play(env, ["<search>mayor capital university device</search>"])[0][4]
    assert difflib.SequenceMatcher(None, keys[0], other["state_key"]).ratio() < 0.9
    assert env.step("no tag")[4]["state_key"] == env.state_key  # invalid turn: knowledge unchanged


def test_task_selection_and_truncation(env: SearchEnv, kb: KnowledgeBase) -> None:
    assert env.reset(options={"task": 5})[1]["task_id"] == kb.tasks[5].id
    assert env.reset(options={"task": kb.tasks[7].id})[1]["question"] == kb.tasks[7].question
    assert env.reset(seed=11)[1] == env.reset(seed=11)[1]  # same seed, same task
    with pytest.raises(ValueError):
        env.reset(options={"task": 10**9})
    env.reset(seed=0)
    results = _play(env, ["nothing"] * env.max_turns)
    assert results[-1][3] and not results[-1][2]  # truncated at max_turns, not terminated


def test_random_strings_never_crash(env: SearchEnv) -> None:
    rng = random.Random(0)
    pieces = ["<search>", "</search>", "<answer>", "</answer>", "<think>", "</think>", "<information>",
              "Vel", "Dara", "founder", " ", "\n", "\\", '"', "{", "\x00", "é", "日本"]
    env.reset(seed=0)
    for i in range(1000):
        if rng.random() < 0.5:
            action = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        else:
            action = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 60)))
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and 0.0 <= reward <= 1.0 and set(INFO_DEFAULTS) <= set(info)
        assert info["void"] == (info["parse_error"] is not None)
        json.dumps(info)
        if terminated or truncated:
            env.reset(seed=i)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_and_http_retrievers_give_the_same_observations(kb: KnowledgeBase, cache_dir: Path) -> None:
    local = SearchEnv(kb_docs=KB_DOCS, cache_dir=str(cache_dir))
    with RetrieverServer(BM25Retriever(kb.docs, cache_dir=cache_dir)) as server:
        remote = SearchEnv(kb_docs=KB_DOCS, retriever_url=server.url)
        for seed in range(25):
            rng = random.Random(seed)
            local.reset(seed=seed), remote.reset(seed=seed)
            actions = [f"<search>{rng.choice(kb.docs).title} {rng.choice(['born', 'capital'])}</search>"]
            while not actions[-1].startswith("<answer>"):
                actions.append(local.expert_action())
                local_step, remote_step = local.step(actions[-1]), remote.step(actions[-1])
                assert local_step == remote_step
            assert actions[0] and local_step[2]
        remote.close()


def test_dead_retriever_is_an_infra_error(kb: KnowledgeBase) -> None:
    env = SearchEnv(kb_docs=KB_DOCS, retriever_url=f"http://127.0.0.1:{_free_port()}")
    env.retriever.backoff = 0.01
    env.reset(seed=0)
    with pytest.raises(InfraError):
        env.step("<search>anything</search>")


def test_user_data(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "qa.jsonl").write_text(
        json.dumps({"id": "q1", "question": "What is the capital of Brellia?", "golden_answers": ["Vel Dara"]}) + "\n"
    )
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"id": "0", "contents": '"Brellia"\nThe capital of Brellia is Vel Dara.'}) + "\n"
        + json.dumps({"id": "1", "contents": '"Tarvenia"\nTarvenia is a country.'}) + "\n"
    )
    env = SearchEnv(data_path=str(tmp_path / "qa.jsonl"), corpus_path=str(tmp_path / "corpus.jsonl"),
                    cache_dir=str(cache_dir))
    obs, info = env.reset(seed=0)
    assert info["task_id"] == "q1" and info["hops"] == []
    obs, *_ = env.step("<search>capital of Brellia</search>")
    assert "Doc 1(Title: Brellia) The capital of Brellia is Vel Dara." in obs
    assert env.step(env.expert_action())[1] == 1.0
    with pytest.raises(ValueError, match="needs a corpus"):
        SearchEnv(data_path=str(tmp_path / "qa.jsonl"))


def test_registered_and_rolls_out(cache_dir: Path) -> None:
    register_search_envs()
    spec = agentgym.spec("agentgym/Search-v0")
    assert spec.max_turns == 6 and json.loads(spec.to_json())["entry_point"].endswith("SearchEnv")
    kwargs = {"kb_docs": KB_DOCS, "cache_dir": str(cache_dir)}
    env = agentgym.make("agentgym/Search-v0", **kwargs)
    assert isinstance(env, SearchEnv) and env.system_prompt and "<search>" in env.system_prompt
    trajectories = asyncio.run(rollout(spec, make_policy("scripted"), plan("t", tasks=6, group_size=2),
                                       concurrency=4, env_kwargs=kwargs))
    assert len(trajectories) == 12 and all(t.success for t in trajectories)
    for traj in trajectories:
        assert traj.info["gold_answers"] and traj.turns[0].state_key == "start"
        assert [t.role for t in traj.turns[1:]] == ["tool"] * (len(traj.turns) - 1)
    groups = {}
    for traj in trajectories:
        groups.setdefault(traj.group_id, set()).add(tuple(t.state_key for t in traj.turns))
    assert all(len(keys) == 1 for keys in groups.values())  # same task, same actions ⇒ same anchors
