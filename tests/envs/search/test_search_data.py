"""The generated KB and the JSONL loaders."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from agentgym.envs.search.data import Doc, KnowledgeBase, generate_kb, load_corpus, load_qa


def test_generated_kb_shape(kb: KnowledgeBase) -> None:
    assert len(kb.docs) == 1500 and len(kb.tasks) == 1000
    ids = [d.id for d in kb.docs]
    assert len(set(ids)) == len(ids)
    titles = [d.title for d in kb.docs]
    assert len(set(titles)) == len(titles)  # every entity has its own name
    hops = Counter(len(t.hops) for t in kb.tasks)
    assert set(hops) == {1, 2, 3} and min(hops.values()) > 250
    assert len({t.question for t in kb.tasks}) == len(kb.tasks)
    by_id = {d.id: d for d in kb.docs}
    for task in kb.tasks:
        assert task.answers and not any(a.lower() in task.question.lower() for a in task.answers)
        for hop in task.hops:  # each hop's document states the fact leading to the next entity
            assert hop.entity in by_id[hop.doc_id].text
        assert task.hops[-1].entity == task.answers[0]


def test_generated_kb_aliases_and_determinism(kb: KnowledgeBase) -> None:
    people = [t for t in kb.tasks if t.question.startswith("Who ")]
    assert people and all(len(t.answers) == 2 and t.answers[0].endswith(t.answers[1]) for t in people)
    again = generate_kb.__wrapped__(1500, 0, (1, 2, 3), 1000)
    assert again == kb
    other = generate_kb.__wrapped__(1500, 1, (1, 2, 3), 1000)
    assert other.docs != kb.docs


def test_generated_kb_hops_and_validation() -> None:
    only_two = generate_kb(200, 3, (2,), 50)
    assert {len(t.hops) for t in only_two.tasks} == {2}
    with pytest.raises(ValueError):
        generate_kb(10, 0)
    with pytest.raises(ValueError):
        generate_kb(200, 0, (0,))


def test_doc_contents_convention() -> None:
    doc = Doc.from_contents("7", '"Vel Dara"\nA city.\nSecond line.')
    assert (doc.title, doc.text) == ("Vel Dara", "A city.\nSecond line.")
    assert Doc.from_contents("8", "no title").contents == "no title"
    assert Doc("1", "T", "x").to_json() == {"id": "1", "contents": "T\nx"}


def test_load_qa(tmp_path: Path) -> None:
    rows = [
        {"id": "nq-1", "question": "who?", "golden_answers": ["A", "B"]},  # Search-R1 / FlashRAG
        {"_id": "hp-2", "question": "what?", "answer": "C"},  # HotpotQA
        {"question": "where?", "answers": ["D"]},  # NQ-style, no id
    ]
    path = tmp_path / "qa.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")
    tasks = load_qa(path)
    assert [(t.id, t.question, t.answers) for t in tasks] == [
        ("nq-1", "who?", ("A", "B")), ("hp-2", "what?", ("C",)), ("qa.jsonl-3", "where?", ("D",))
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no answer"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_qa(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="not JSON"):
        load_qa(bad)


def test_load_corpus(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        json.dumps({"id": "0", "contents": '"Paris"\nParis is the capital of France.'}) + "\n"
        + json.dumps({"id": 1, "title": "Lyon", "text": "Lyon is a city."}) + "\n"
        + json.dumps({"contents": "untitled"}) + "\n"
    )
    docs = load_corpus(path)
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("0", "Paris", "Paris is the capital of France."), ("1", "Lyon", "Lyon is a city."), ("2", "", "untitled")
    ]
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="contents"):
        load_corpus(path)
