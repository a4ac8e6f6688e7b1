"""Coming from Search-R1: its data files, a wiki-18-style corpus, its turn budget and its exact
protocol (``protocol="search-r1"``). The files are written here, in Search-R1's formats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import hide_package

from agentgym.envs.search.data import load_corpus, load_qa
from agentgym.envs.search.env import SearchEnv
from agentgym.envs.search.retrievers import BM25Retriever, HTTPRetriever
from agentgym.envs.search.searchr1 import INVALID, cut_turn, make_prefix
from agentgym.envs.search.server import RetrieverServer
from agentgym.policies.base import Completion, Policy
from agentgym.rollout import WorkItem, run_episode

# wiki-18's shape: "title" (quoted, quotes inside quotes) on the first line, then the text,
# sometimes over several lines.
WIKI_ROWS = [
    {"id": "0", "contents": '"Aaron"\nAaron is a prophet, a high priest and the brother of Moses.'},
    {"id": "1", "contents": '""Weird Al" Yankovic"\nAlfred Matthew "Weird Al" Yankovic is an American singer.\n'
                            "He is known for parodies."},
    {"id": "2", "contents": '"Zebra crossing"\nA zebra crossing is a pedestrian crossing.\n\nIt has white stripes.'},
    {"id": "3", "contents": "A row with no title line about lighthouses"},
    {"id": "4", "contents": '"Kestrel"\nThe kestrel is a small falcon.   \n'},
    {"id": "5", "contents": '"Moses"\nMoses led the Israelites; his brother Aaron spoke for him.'},
]
QA_ROWS = [
    {"id": "train_0", "question": "who was the brother of moses?", "golden_answers": ["Aaron", "Aharon"]},
    {"id": "train_1", "question": "what kind of bird is a kestrel?", "golden_answers": ["falcon"]},
]


def _verl_row(row: dict[str, Any], index: int, with_originals: bool) -> dict[str, Any]:
    """A row as Search-R1's data scripts write it: their prompt, verl's reward_model."""
    prompt = ("Answer the given question. ... For example, <answer> Beijing </answer>. "
              f"Question: {row['question']}\n")
    verl = {
        "data_source": "nq",
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": row["golden_answers"]}},
        "extra_info": {"split": "train", "index": index},
    }
    return {**row, **verl} if with_originals else verl


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def wiki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_jsonl(tmp_path_factory.mktemp("wiki") / "wiki-18.jsonl", WIKI_ROWS)


# -- 1. corpus contents round-trip ------------------------------------------------------------
def test_corpus_contents_round_trip_byte_for_byte(wiki: Path, cache_dir: Path) -> None:
    docs = load_corpus(wiki)
    assert [d.contents for d in docs] == [r["contents"] for r in WIKI_ROWS]
    assert docs[1].title == 'Weird Al" Yankovic' and docs[3].title == ""  # display fields still parsed
    stored = {r["id"]: r["contents"] for r in WIKI_ROWS}
    retriever = BM25Retriever(docs, cache_dir=cache_dir)
    with RetrieverServer(retriever) as server:
        queries = ["Aaron brother Moses", "Weird Al Yankovic parodies", "zebra crossing stripes",
                   "lighthouses", "kestrel falcon"]
        body = httpx.post(server.url, json={"queries": queries, "topk": 6, "return_scores": True}).json()
        returned = [item["document"] for result in body["result"] for item in result]
        assert {d["id"] for d in returned} == set(stored)
        assert all(d["contents"] == stored[d["id"]] for d in returned)
        client = HTTPRetriever(server.url)
        for result in client.batch_search(queries, 6):
            assert all(doc.contents == stored[doc.id] for doc in result)
        client.close()


def test_parquet_corpus_loads_the_same(wiki: Path, tmp_path: Path) -> None:
    parquet = _write_parquet(tmp_path / "wiki-18.parquet", WIKI_ROWS)
    assert [d.contents for d in load_corpus(parquet)] == [d.contents for d in load_corpus(wiki)]


# -- 2. Search-R1's data files ----------------------------------------------------------------
def test_search_r1_parquet_loads(tmp_path: Path) -> None:
    full = _write_parquet(tmp_path / "train.parquet", [_verl_row(r, i, True) for i, r in enumerate(QA_ROWS)])
    tasks = load_qa(full)
    assert [(t.id, t.question, t.answers) for t in tasks] == [
        ("train_0", "who was the brother of moses?", ("Aaron", "Aharon")),
        ("train_1", "what kind of bird is a kestrel?", ("falcon",)),
    ]
    # Only what verl reads: the answers from reward_model, the question from the prompt.
    verl_only = _write_parquet(tmp_path / "verl.parquet", [_verl_row(r, i, False) for i, r in enumerate(QA_ROWS)])
    assert [(t.id, t.question, t.answers) for t in load_qa(verl_only)] == [
        ("0", "who was the brother of moses?", ("Aaron", "Aharon")),
        ("1", "what kind of bird is a kestrel?", ("falcon",)),
    ]
    # The same verl-only rows as JSONL, and parquet under a misleading name (found by its magic bytes).
    as_jsonl = _write_jsonl(tmp_path / "verl.jsonl", [_verl_row(r, i, False) for i, r in enumerate(QA_ROWS)])
    assert load_qa(as_jsonl) == load_qa(verl_only)
    renamed = tmp_path / "train.data"
    renamed.write_bytes(full.read_bytes())
    assert load_qa(renamed) == tasks


def test_binary_that_is_not_parquet_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"question": "q", "golden_answers": ["a"]}\n\xff\xfe\x00binary')
    with pytest.raises(ValueError, match=r"data.jsonl: not UTF-8 text"):
        load_qa(path)


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_parquet(tmp_path / "train.parquet", [_verl_row(QA_ROWS[0], 0, True)])
    hide_package(monkeypatch, "pyarrow")
    with pytest.raises(ImportError, match=r"agentgym-rl\[parquet\]"):
        load_qa(path)


# -- 3. the turn budget -----------------------------------------------------------------------
class _CountingRetriever:
    """Wraps the real retriever and counts the searches that reach it."""

    def __init__(self, inner: Any):
        self.inner, self.calls = inner, 0

    def search(self, query: str, k: int) -> Any:
        self.calls += 1
        return self.inner.search(query, k)


@pytest.mark.parametrize("protocol", ["agentgym", "search-r1"])
def test_no_retrieval_on_the_final_turn(wiki: Path, tmp_path: Path, cache_dir: Path, protocol: str) -> None:
    """Search-R1's max_turns=2 (two search turns, then an answer-only turn) is max_turns=3 here."""
    data = _write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    env = SearchEnv(data_path=str(data), corpus_path=str(wiki), cache_dir=str(cache_dir), max_turns=3,
                    protocol=protocol)
    env.retriever = counting = _CountingRetriever(env.retriever)
    env.reset(options={"task": 0})
    for turn in (1, 2):
        obs, _, terminated, truncated, info = env.step("<search> Moses brother </search>")
        assert "<information>" in obs and not (terminated or truncated) and counting.calls == turn
    obs, reward, terminated, truncated, info = env.step("<search> Aaron </search>")
    assert counting.calls == 2 and info["search_skipped"] and obs == "" and truncated and reward == 0.0
    assert env.queries == ["Moses brother", "Moses brother"]
    env.reset(options={"task": 0})
    env.step("<search> Moses brother </search>")
    env.step("<search> Moses brother </search>")
    _, reward, terminated, _, _ = env.step("<answer> Aaron </answer>")  # the final turn may answer
    assert terminated and reward == 1.0


# -- 4. protocol="search-r1" ------------------------------------------------------------------
# (turn, what Search-R1 does with it: ("search", query) / ("answer", reward's answer) / ("invalid",))
PROTOCOL_CASES = [
    ("<search> Moses brother </search>", ("search", "Moses brother")),
    ("<think>hmm</think>\n<search>Moses brother</search> trailing text <answer>Aaron</answer>",
     ("search", "Moses brother")),  # text after </search> is ignored
    ("<search> Moses brother <answer>Aaron</answer>", ("answer", "Aaron")),  # no </search>: the answer
    ("<search></search>", ("search", "")),  # an empty query is searched
    ("<search>\n  multi\nline  \n</search>", ("search", "multi\nline")),  # DOTALL, stripped, newline kept
    ("<answer></answer>", ("answer", "")),
    ("<answer> Aaron </answer> then <search>Moses</search>", ("answer", "Aaron")),  # first action wins
    ("<answer>Moses</answer><answer>Aaron</answer><search>x</search>", ("answer", "Aaron")),  # reward: last
    ("<answer>Aaron</answer><answer>Moses</answer>", ("answer", "Aaron")),  # cut at the first </answer>
    ("<answer>A<answer>Aaron</answer>", ("answer", "A<answer>Aaron")),
    ("<search >Moses</search>", ("invalid",)),  # exactly <search>
    ("<SEARCH>Moses</SEARCH>", ("invalid",)),
    ("<search>Moses", ("invalid",)),
    ("Aaron", ("invalid",)),
    ("", ("invalid",)),
    ("</search><search>Moses</search>", ("invalid",)),  # cut right after the first </search>
]


@pytest.fixture()
def r1_env(wiki: Path, tmp_path: Path, cache_dir: Path) -> SearchEnv:
    data = _write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    return SearchEnv(data_path=str(data), corpus_path=str(wiki), cache_dir=str(cache_dir), topk=2,
                     protocol="search-r1", max_turns=6)


@pytest.mark.parametrize(("turn", "expected"), PROTOCOL_CASES)
def test_search_r1_tag_rules(r1_env: SearchEnv, turn: str, expected: tuple[str, ...]) -> None:
    r1_env.reset(options={"task": 0})
    obs, reward, terminated, truncated, info = r1_env.step(turn)
    if expected[0] == "invalid":
        assert obs == INVALID and info["parse_error"] and info["void"] and not terminated and reward == 0.0
    elif expected[0] == "search":
        assert r1_env.queries == [expected[1]] and not terminated
        assert obs.startswith("\n\n<information>") and obs.endswith("</information>\n\n")
        assert info["tool_calls"] == [{"name": "search", "arguments": {"query": expected[1]}}]
    else:
        assert terminated and obs == "" and info["answer"] == expected[1]
        assert reward == (1.0 if expected[1] in ("Aaron", "Aharon") else 0.0)


def test_search_r1_invalid_message_and_cut() -> None:
    assert INVALID == ("\nMy previous action is invalid. If I want to search, I should put the query between "
                       "<search> and </search>. If I want to give the final answer, I should put the answer "
                       "between <answer> and </answer>. Let me try again.\n")
    assert cut_turn("a</answer>b</search>c") == "a</answer>b</search>"
    assert cut_turn("a</answer>b</answer>") == "a</answer>"


def test_search_r1_information_block(r1_env: SearchEnv) -> None:
    r1_env.reset(options={"task": 0})
    obs, *_, info = r1_env.step("<search>Yankovic parodies</search>")
    # _passages2string(...).strip(): the first line (quotes kept) as title, other lines as they are.
    assert obs == ('\n\n<information>Doc 1(Title: ""Weird Al" Yankovic") Alfred Matthew "Weird Al" Yankovic is '
                   "an American singer.\nHe is known for parodies.</information>\n\n")
    start, end = info["retrieved_spans"][0]
    assert obs[start:end].startswith("<information>") and obs[start:end].endswith("</information>")
    obs, *_ = r1_env.step("<search>zebra stripes</search>")  # a blank line inside the text stays
    assert obs == ('\n\n<information>Doc 1(Title: "Zebra crossing") A zebra crossing is a pedestrian crossing.'
                   "\n\nIt has white stripes.</information>\n\n")
    obs, *_ = r1_env.step("<search>brother Aaron Moses</search>")  # two documents, numbered, one per line
    assert obs.count("(Title: ") == 2 and '\nDoc 2(Title: "' in obs and obs.startswith('\n\n<information>Doc 1(')
    obs, *_ = r1_env.step("<search>qqqzzz</search>")  # nothing found: an empty block
    assert obs == "\n\n<information></information>\n\n"


def test_search_r1_observation_cap_by_tokens(wiki: Path, tmp_path: Path, cache_dir: Path) -> None:
    pytest.importorskip("transformers")
    from agentgym.trainers.tiny import train_tokenizer

    tokenizer = train_tokenizer([r["contents"] for r in WIKI_ROWS] * 20, vocab_size=300)
    tokenizer.save_pretrained(tmp_path / "tok")
    data = _write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    kwargs = {"data_path": str(data), "corpus_path": str(wiki), "cache_dir": str(cache_dir), "topk": 6,
              "protocol": "search-r1"}
    whole_env = SearchEnv(**kwargs)
    whole_env.reset(options={"task": 0})
    whole = whole_env.step("<search>Aaron Moses zebra kestrel Yankovic</search>")[0]
    capped_env = SearchEnv(**kwargs, tokenizer=str(tmp_path / "tok"), max_obs_tokens=12)
    capped_env.reset(options={"task": 0})
    capped = capped_env.step("<search>Aaron Moses zebra kestrel Yankovic</search>")[0]
    ids = tokenizer(whole, add_special_tokens=False)["input_ids"]
    assert len(ids) > 12 and capped == tokenizer.decode(ids[:12]) and whole.startswith(capped)
    assert len(tokenizer(capped, add_special_tokens=False)["input_ids"]) <= 12
    # The whole observation is cut (not each document): the first document survives whole.
    roomy = SearchEnv(**kwargs, tokenizer=str(tmp_path / "tok"), max_obs_tokens=10_000)
    roomy.reset(options={"task": 0})
    assert roomy.step("<search>Aaron Moses zebra kestrel Yankovic</search>")[0] == whole
    chars = SearchEnv(**kwargs, max_obs_chars=200)  # no tokenizer: characters of the whole observation
    chars.reset(options={"task": 0})
    assert chars.step("<search>Aaron Moses zebra kestrel Yankovic</search>")[0] == whole[:200]


def test_unknown_protocol_raises(wiki: Path, tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    with pytest.raises(ValueError, match="protocol"):
        SearchEnv(data_path=str(data), corpus_path=str(wiki), protocol="searchr1")


# -- the prompt (issue 21, item 8) ---------------------------------------------------------------
# Search-R1's scripts/data_process/nq_search.py, template "base": its make_prefix(dp) text, with the
# question stripped and given a "?" by their process_fn. Written out here, character for character.
SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. After reasoning, if you find you lack some knowledge, you can call a search engine by "
    "<search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge "
    "needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. "
    "For example, <answer> Beijing </answer>. Question: who was the brother of moses?\n"
)


def test_make_prefix_is_search_r1s_template() -> None:
    assert make_prefix("who was the brother of moses?") == SEARCH_R1_PROMPT
    assert make_prefix("  who was the brother of moses \n") == SEARCH_R1_PROMPT  # stripped, "?" added


class _Recorder(Policy):
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    async def act(self, messages: list[dict[str, Any]], env: Any) -> Completion:
        self.seen.append([dict(m) for m in messages])
        return Completion("<answer> Aaron </answer>")


def test_search_r1_prompt_is_one_user_message(r1_env: SearchEnv) -> None:
    obs, _ = r1_env.reset(options={"task": 0})
    assert r1_env.system_prompt is None and obs == SEARCH_R1_PROMPT
    policy = _Recorder()
    item = WorkItem(task_index=0, member=0, seed=0, group_id="g", traj_id="t")
    r1_env.tasks = r1_env.tasks[:1]  # seed 0 must pick this question
    traj = asyncio.run(run_episode(r1_env, policy, item, env_id="agentgym/Search-v0"))
    assert policy.seen[0] == [{"role": "user", "content": SEARCH_R1_PROMPT}]
    assert traj.outcome == 1.0


def test_agentgym_protocol_keeps_its_system_prompt(wiki: Path, tmp_path: Path, cache_dir: Path) -> None:
    data = _write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    env = SearchEnv(data_path=str(data), corpus_path=str(wiki), cache_dir=str(cache_dir))
    obs, _ = env.reset(options={"task": 0})
    assert env.system_prompt and obs == "Question: who was the brother of moses?\n"
