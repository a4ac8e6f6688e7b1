"""``agentgym/Search-v0``: multi-turn retrieval QA with Search-R1's protocol.

Each turn the model writes ``<search>query</search>`` (the env answers with the top-k documents
inside ``<information>…</information>``, role ``tool``) or ``<answer>…</answer>`` (the episode
ends; reward = exact match or F1 against the gold aliases, computed on the model's own answer
text only). Anything else — no tag, two tags, an empty query, an unclosed tag, a huge action —
gets a readable ``parse_error`` observation and the episode goes on. ``void`` marks turns that
were neither a search nor an answer. Generation stops after ``</search>`` or ``</answer>``
(``stop_sequences``), as in Search-R1, so the model never writes past its one action.

**Turn budget.** Search-R1's ``max_turns=N`` allows N turns that may search, then one final
turn that may only answer; that is ``max_turns=N+1`` here. A search on the last turn is not run
(``info["search_skipped"]``; its results could never be read) and the episode ends truncated.

**Protocols.** ``protocol="agentgym"`` (default) is stricter than Search-R1 and says why a turn
is invalid: exactly one action per turn (Search-R1 silently takes the first), no empty query,
``<search >`` accepted, each document cut to an equal share of ``max_obs_chars`` (so one long
document cannot crowd out the others), titles shown without their quotes, the invalid-action
message names the problem, and the shared action rule of every built-in env applies
(:func:`agentgym.parsers.extract_action`: reasoning dropped, one ``<action>`` block or an
``Action:`` prefix unwrapped). ``protocol="search-r1"`` is Search-R1's exactly (see
:mod:`.searchr1`): the prompt (one user message, :func:`.searchr1.make_prefix`, no system
message), their tag rules (no reasoning stripping: a ``<search>`` inside ``<think>`` counts, as
there), answer extraction, information block and invalid-action message, and the whole
observation cut to ``max_obs_tokens`` tokens of ``tokenizer`` (their ``max_obs_length``;
without a tokenizer, to ``max_obs_chars`` characters).

``info["retrieved_spans"]`` lists ``[start, end)`` character offsets of the ``<information>``
block in the observation, so trainers can mask retrieved text out of the loss.

**state_key (GiGPO anchors).** Reset gives ``"start"``. After a search the key is
``"<sorted doc ids> | <sorted unique query tokens>"``, the tokens being the retriever's
(lowercase, punctuation and stopwords dropped). Design:

* exact mode: two rollouts that asked the same thing up to case, word order and stopwords
  ("founder of Korvan" / "Korvan founder?") *and* got the same documents share an anchor;
* similarity mode (``difflib`` ratio ≥ 0.9, as GiGPO uses for search): doc ids come first and
  are short and fixed-width per type, so the same documents with a slightly reworded query
  stay above the threshold, while swapping one of k documents drops well below it — the
  documents are what the agent now knows, so they dominate the key;
* the key ignores earlier turns (like GiGPO's observation anchors); the question is implied,
  because anchors are only compared within a group of rollouts of the same task;
* an invalid turn leaves the agent's knowledge unchanged, so the key stays what it was.
"""

from __future__ import annotations

from typing import Any

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import TagParser, extract_action

from . import searchr1
from .data import Doc, KnowledgeBase, Task, generate_kb, load_corpus, load_qa
from .metrics import exact_match, f1_score
from .retrievers import BM25Retriever, HTTPRetriever, Retriever, tokenize

__all__ = ["SYSTEM_PROMPT", "SearchEnv", "format_docs"]

SYSTEM_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every "
    "time you get new information. After reasoning, if you find you lack some knowledge, you can call a "
    "search engine by <search> query </search> and it will return the top searched results between "
    "<information> and </information>. You can search as many times as you want. If you find no further "
    "external knowledge needed, you can directly provide the answer inside <answer> and </answer>, "
    "without detailed illustrations. For example, <answer> Beijing </answer>."
)
INVALID = (
    "\nMy previous action is invalid: {error}. If I want to search, I should put the query between "
    "<search> and </search>. If I want to give the final answer, I should put the answer between "
    "<answer> and </answer>. Let me try again.\n"
)
MAX_QUERY_CHARS = 512
PROTOCOLS = ("agentgym", "search-r1")


def format_docs(docs: list[Doc], max_chars: int) -> str:
    """Search-R1's passage format (``Doc i(Title: t) text``), each doc cut to an equal share of
    ``max_chars`` so that one long document cannot crowd out the others."""
    if not docs:
        return "No documents found."
    share = max(1, max_chars // len(docs))
    lines = []
    for i, doc in enumerate(docs, 1):
        line = f"Doc {i}(Title: {doc.title}) {doc.text}".replace("\n", " ")
        lines.append(line if len(line) < share else line[: max(0, share - 2)] + "…")
    return "\n".join(lines)


class SearchEnv(TextEnv):
    """Multi-hop retrieval QA (Search-R1 protocol) over a generated KB or user data.

    Data: the generated fictional KB by default (``kb_docs``, ``kb_seed``, ``hops``,
    ``num_tasks``), or ``data_path`` (questions, JSONL or parquet) with ``corpus_path`` (corpus) or
    a remote ``retriever_url``. Retrieval: local BM25 by default, or ``retriever_url`` (any
    Search-R1 ``/retrieve`` server, e.g. ``agentgym serve-retriever``). ``metric`` is ``em``
    or ``f1``; ``max_obs_chars`` caps an observation; ``max_action_chars`` rejects huge actions.
    ``protocol`` is ``"agentgym"`` or ``"search-r1"`` (with ``max_obs_tokens`` and ``tokenizer``:
    see the module doc).
    """

    system_prompt = SYSTEM_PROMPT
    threaded_async = True  # retrieval may block on the network

    def __init__(
        self,
        *,
        kb_docs: int = 3000,
        kb_seed: int = 0,
        hops: list[int] | tuple[int, ...] = (1, 2, 3),
        num_tasks: int = 1000,
        data_path: str | None = None,
        corpus_path: str | None = None,
        retriever_url: str | None = None,
        topk: int = 3,
        metric: str = "em",
        max_obs_chars: int = 3000,
        max_action_chars: int = 20_000,
        protocol: str = "agentgym",
        max_obs_tokens: int = 500,
        tokenizer: str | None = None,
        cache_dir: str | None = None,
        max_turns: int | None = 6,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if metric not in ("em", "f1"):
            raise ValueError(f"metric must be 'em' or 'f1', got {metric!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        if protocol == "search-r1":
            self.system_prompt = None  # Search-R1's instructions are in the one user message
        self.cap = searchr1.ObservationCap(max_obs_tokens, tokenizer, max_obs_chars)
        if topk < 1 or max_obs_chars < 200:
            raise ValueError("topk must be ≥ 1 and max_obs_chars ≥ 200")
        self.metric, self.topk, self.max_obs_chars = metric, topk, max_obs_chars
        corpus: tuple[Doc, ...] = ()
        if data_path is not None:
            self.tasks = load_qa(data_path)
            if corpus_path is None and retriever_url is None:
                raise ValueError("data_path needs a corpus: pass corpus_path (local BM25) or retriever_url")
            if corpus_path is not None:
                corpus = load_corpus(corpus_path)
        else:
            kb: KnowledgeBase = generate_kb(kb_docs, kb_seed, tuple(hops), num_tasks)
            self.tasks, corpus = kb.tasks, kb.docs
        if not self.tasks:
            raise ValueError("no tasks")
        self._task_index = {t.id: i for i, t in enumerate(self.tasks)}
        self.num_tasks = len(self.tasks)
        self.retriever: Retriever = (
            HTTPRetriever(retriever_url) if retriever_url else BM25Retriever.shared(corpus, cache_dir=cache_dir)
        )
        self.parser = TagParser({"search": "query"}, "answer", max_chars=max_action_chars)
        self.stop_sequences = self.parser.stop_sequences
        self.task: Task = self.tasks[0]
        self.queries: list[str] = []
        self.state_key = "start"

    def _pick(self, options: dict[str, Any]) -> Task:
        choice = options.get("task")
        if choice is None:
            return self.tasks[self.pool_index(len(self.tasks))]
        if isinstance(choice, Task):
            return choice
        if isinstance(choice, str) and choice in self._task_index:
            return self.tasks[self._task_index[choice]]
        if isinstance(choice, int) and 0 <= choice < len(self.tasks):
            return self.tasks[choice]
        raise ValueError(f"options['task'] must be a task index, id or Task, got {choice!r}")

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.task = self._pick(options)
        self.queries, self.state_key = [], "start"
        info = {
            "task_id": self.task.id,
            "question": self.task.question,
            "gold_answers": list(self.task.answers),
            "hops": [h.to_json() for h in self.task.hops],
            "num_hops": len(self.task.hops),
            "state_key": self.state_key,
        }
        if self.protocol == "search-r1":
            return searchr1.make_prefix(self.task.question), info
        return f"Question: {self.task.question}\n", info

    def _last_turn(self) -> bool:
        """Search-R1's final turn: answer only, nothing is retrieved (see the module doc)."""
        return self.max_turns is not None and self.turn >= self.max_turns

    def _step(self, action: str) -> StepResult:
        if self.protocol == "search-r1":
            return self._step_search_r1(action)
        extracted = extract_action(action, max_chars=self.parser.max_chars)
        if extracted.error is not None:
            return self._invalid(str(extracted.error))
        parsed = self.parser.parse(extracted.text)
        if parsed.kind == "answer":
            return self._answer(parsed.answer or "")
        if parsed.kind == "tool_call":
            query = " ".join(parsed.tool_calls[0].arguments["query"].split())
            if len(query) > MAX_QUERY_CHARS:
                return self._invalid(f"the search query is {len(query)} characters; keep it under {MAX_QUERY_CHARS}")
            return self._search(query)
        error = str(parsed.error) if parsed.error else "found no <search>…</search> or <answer>…</answer>"
        return self._invalid(error)

    def _step_search_r1(self, action: str) -> StepResult:
        kind, content = searchr1.parse_turn(action)
        if kind == "answer":
            return self._answer(searchr1.answer_for_reward(action) or "")
        if kind == "search":
            return self._search(content)
        error = "found no <search>…</search> or <answer>…</answer>"
        return searchr1.INVALID, 0.0, False, False, {"parse_error": error, "void": True, "state_key": self.state_key}

    def _answer(self, answer: str) -> StepResult:
        em, f1 = exact_match(answer, self.task.answers), f1_score(answer, self.task.answers)
        self.state_key = "answered"
        info = {"answer": answer, "em": em, "f1": f1, "state_key": self.state_key, "success": em == 1.0}
        return "", em if self.metric == "em" else f1, True, False, info

    def _invalid(self, error: str) -> StepResult:
        info = {"parse_error": error, "void": True, "state_key": self.state_key}
        return INVALID.format(error=error[:300]), 0.0, False, False, info

    def _search(self, query: str) -> StepResult:
        call = {"tool_calls": [{"name": "search", "arguments": {"query": query}}], "state_key": self.state_key}
        if self._last_turn():  # the episode is cut after this turn: its results would never be read
            return "", 0.0, False, False, {**call, "search_skipped": True}
        docs = self.retriever.search(query, self.topk)  # InfraError propagates: never scored as 0
        self.queries.append(query)
        if self.protocol == "search-r1":
            full = searchr1.information(docs)  # "\n\n" + block + "\n\n"
            obs = self.cap(full)
            block_len = max(0, min(len(full) - 4, len(obs) - 2))
        else:
            budget = self.max_obs_chars - len("\n\n<information></information>\n\n")
            block = f"<information>{format_docs(docs, budget)}</information>"
            obs, block_len = f"\n\n{block}\n\n", len(block)
        ids = [d.id for d in docs]
        self.state_key = f"{' '.join(sorted(ids))} | {' '.join(sorted(set(tokenize(query))))}"
        info = {
            **call,
            "role": "tool",
            "retrieved_spans": [[2, 2 + block_len]],
            "retrieved_ids": ids,
            "state_key": self.state_key,
        }
        return obs, 0.0, False, False, info

    def expert_action(self) -> str:
        """The reference policy: search each gold hop's query in turn, then answer.

        Tasks without a hop chain (user data) are answered directly.
        """
        done = set(self.queries)
        for hop in self.task.hops:
            if " ".join(hop.query.split()) not in done:
                return f"<search> {hop.query} </search>"
        return f"<answer> {self.task.answers[0]} </answer>"

    def close(self) -> None:
        if isinstance(self.retriever, HTTPRetriever):
            self.retriever.close()
