"""Search-R1's exact turn protocol (``SearchEnv(protocol="search-r1")``).

Written from the behaviour of Search-R1's ``search_r1/llm_agent/generation.py`` and
``verl/utils/reward_score/qa_em.py``, so that a policy trained there sees the same text here:

* **the turn** is cut after the first ``</search>``, or if there is none after the first
  ``</answer>``; what follows is ignored;
* **the action** is the first ``<search>…</search>`` or ``<answer>…</answer>`` pair of the cut
  text, exactly those tags (``<search >`` does not open one), content stripped: so
  ``<search> q <answer>A</answer>`` answers ``A``, and ``<search></search>`` searches ``''``;
* **the reward's answer** is the last ``<answer>…</answer>`` of the cut turn (qa_em takes the
  last one; the earlier one of a Search-R1 prompt is its instructions' example), so
  ``<answer></answer>`` ends the episode with reward 0 unless a gold alias normalises to '';
* **the information block** is ``_passages2string`` stripped: ``Doc i(Title: <first line of
  contents>) <the other lines>`` per document, newlines kept, an empty block when nothing is
  found, wrapped as ``\\n\\n<information>…</information>\\n\\n``;
* **anything else** gets :data:`INVALID`, their message word for word;
* **the prompt** is one user message, :func:`make_prefix` of the question (their
  ``scripts/data_process`` template ``base``, the question stripped and ended with ``?`` as their
  preprocessing does), with no system message.

Their observation cap cuts the whole observation to ``max_obs_length`` tokens of the policy's
tokenizer; :class:`ObservationCap` does that with a tokenizer you name, or cuts characters
when none is given.
"""

from __future__ import annotations

import re
from typing import Any

from .data import Doc

__all__ = ["INVALID", "ObservationCap", "answer_for_reward", "cut_turn", "information", "make_prefix", "parse_turn"]

PREFIX = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you "
    "get new information. After reasoning, if you find you lack some knowledge, you can call a search engine "
    "by <search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge "
    "needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)

INVALID = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. "
    "Let me try again.\n"
)
_ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def make_prefix(question: str) -> str:
    """The whole first user message Search-R1 trains on: their instructions (typo "your want"
    included) and the question, stripped and ending in ``?`` as their NQ/HotpotQA preprocessing
    writes it into the parquet."""
    question = question.strip()
    if not question.endswith("?"):
        question += "?"
    return PREFIX.format(question=question)


def cut_turn(text: str) -> str:
    """The turn as Search-R1 keeps it: up to the first ``</search>``, else the first ``</answer>``."""
    for closing in ("</search>", "</answer>"):
        head, found, _ = text.partition(closing)
        if found:
            return head + found
    return text


def parse_turn(text: str) -> tuple[str | None, str]:
    """``("search" | "answer", content)`` of the first action of the cut turn, or ``(None, "")``."""
    match = _ACTION.search(cut_turn(text))
    return (match.group(1), match.group(2).strip()) if match else (None, "")


def answer_for_reward(text: str) -> str | None:
    """The last ``<answer>`` content of the cut turn, stripped (None when there is none)."""
    answers = _ANSWER.findall(cut_turn(text))
    return answers[-1].strip() if answers else None


def information(docs: list[Doc]) -> str:
    """The observation after a search: their passages string, stripped, in the information tags."""
    lines = []
    for i, doc in enumerate(docs, 1):
        title, _, text = doc.contents.partition("\n")
        lines.append(f"Doc {i}(Title: {title}) {text}\n")
    return f"\n\n<information>{''.join(lines).strip()}</information>\n\n"


class ObservationCap:
    """Cut a whole observation to ``max_tokens`` tokens of ``tokenizer`` (a Hugging Face name or
    directory, loaded with ``transformers.AutoTokenizer``, as verl loads the policy's), the
    way Search-R1 cuts ``next_obs_ids``; without a tokenizer, to ``max_chars`` characters."""

    def __init__(self, max_tokens: int, tokenizer: str | None, max_chars: int):
        self.max_tokens, self.name, self.max_chars = max_tokens, tokenizer, max_chars
        self._tokenizer: Any = None

    def __call__(self, observation: str) -> str:
        if self.name is None:
            return observation[: self.max_chars]
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer
            except ImportError as e:
                raise ImportError("a token cap needs transformers: pip install 'agentgym-rl[train]'") from e
            self._tokenizer = AutoTokenizer.from_pretrained(self.name)
        ids = self._tokenizer(observation, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_tokens:
            return observation
        return self._tokenizer.decode(ids[: self.max_tokens])
