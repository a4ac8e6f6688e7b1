"""Search data: documents, tasks, a generated multi-hop knowledge base, and JSONL loaders.

The generated KB is about fictional entities whose names are built from syllables, so no
model can answer from memory: it has to search. Entities (people, cities, countries,
companies, universities, inventions) are linked by functional relations (born_in,
founded_by, located_in, invented_by, ...); a question walks 1–3 relations from a start
entity ("In which city was the founder of Korvan Systems born?"), and its task records the
gold hop chain: for each hop a search query that finds the document stating the fact.

Users bring their own data as Search-R1 / FlashRAG / NQ / HotpotQA-style JSONL
or parquet (:func:`load_qa`) and Search-R1-style corpora (:func:`load_corpus`).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.records import read_rows

__all__ = ["Doc", "Hop", "KnowledgeBase", "Task", "generate_kb", "load_corpus", "load_qa"]


@dataclasses.dataclass(frozen=True)
class Doc:
    """A retrievable passage. ``contents`` is Search-R1's ``"title"\\ntext`` convention.

    ``title`` and ``text`` are for display (the title without its quotes). A document read
    from a ``contents`` string keeps that string verbatim in ``raw``, and ``contents`` returns
    it byte for byte (quoted titles, multi-line text and all), as Search-R1's server does.
    """

    id: str
    title: str
    text: str
    score: float | None = dataclasses.field(default=None, compare=False)
    raw: str | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def contents(self) -> str:
        if self.raw is not None:
            return self.raw
        return f"{self.title}\n{self.text}" if self.title else self.text

    @classmethod
    def from_contents(cls, id: str, contents: str, score: float | None = None) -> Doc:
        """Split ``contents`` into title (first line, quotes stripped) and text; keep it whole in ``raw``."""
        title, sep, text = contents.partition("\n")
        return cls(str(id), title.strip().strip('"') if sep else "", text if sep else title, score, contents)

    def with_score(self, score: float) -> Doc:
        return dataclasses.replace(self, score=score)

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "contents": self.contents}


@dataclasses.dataclass(frozen=True)
class Hop:
    """One step of a gold reasoning chain: a query that retrieves ``doc_id``, which states
    the fact leading to ``entity``."""

    query: str
    doc_id: str
    entity: str

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Task:
    """A question with gold answer aliases and (for generated tasks) its hop chain."""

    id: str
    question: str
    answers: tuple[str, ...]
    hops: tuple[Hop, ...] = ()


@dataclasses.dataclass(frozen=True)
class KnowledgeBase:
    docs: tuple[Doc, ...]
    tasks: tuple[Task, ...]


# -- the generator ----------------------------------------------------------------------------
_SYLLABLES = (
    "ka ren tho vel mar dus qui bri zan lo fen gor ath ish mel tav kor van sel rud "
    "pim dra yo nes bal kru sho vim tek lan orm hal zir ek ul brum cas dor fi gal "
    "hes jun kel mos nir op pra quel ros sta tin ur ves wyl xan yar zeb ald bern cor"
).split()
_COMPANY_SUFFIX = ("Systems", "Works", "Industries", "Holdings", "Labs", "Group", "Dynamics", "Foundry")
_INVENTION_SUFFIX = ("scope", "graph", "meter", "tron", "phone", "lith", "drive", "loom")
_COUNTRY_SUFFIX = ("ia", "land", "stan", "ora")
_FIELDS = ("chemistry", "optics", "engineering", "music", "cartography", "medicine", "linguistics", "trade")

# name: (subject type, object type, question, noun phrase, fact sentence, search query)
_RELATIONS: dict[str, tuple[str, str, str, str, str, str]] = {
    "born_in": ("person", "city", "In which city was {x} born?", "the birthplace of {x}",
                "{s} was born in {o}.", "{s} born"),
    "studied_at": ("person", "university", "Which university did {x} attend?", "the university attended by {x}",
                   "{s} studied at {o}.", "{s} studied at"),
    "university_city": ("university", "city", "In which city is {x}?", "the city that is home to {x}",
                        "{s} is located in the city of {o}.", "{s} city"),
    "city_country": ("city", "country", "In which country is {x}?", "the country of {x}",
                     "{s} is a city in {o}.", "{s} country"),
    "mayor": ("city", "person", "Who is the mayor of {x}?", "the mayor of {x}",
              "The mayor of {s} is {o}.", "mayor of {s}"),
    "capital": ("country", "city", "What is the capital of {x}?", "the capital of {x}",
                "The capital of {s} is {o}.", "capital of {s}"),
    "founded_by": ("company", "person", "Who founded {x}?", "the founder of {x}",
                   "{s} was founded by {o}.", "{s} founded by"),
    "headquartered_in": ("company", "city", "In which city is {x} headquartered?",
                         "the city where {x} is headquartered", "{s} is headquartered in {o}.",
                         "{s} headquartered"),
    "invented_by": ("invention", "person", "Who invented {x}?", "the inventor of {x}",
                    "{s} was invented by {o}.", "{s} invented by"),
    "made_by": ("invention", "company", "Which company manufactures {x}?", "the company that manufactures {x}",
                "{s} is manufactured by {o}.", "{s} manufactured by"),
}
_INVERSE = {("capital", "city_country")}  # "the country of the capital of X" is X
_ID_PREFIX = {"person": "P", "city": "C", "country": "N", "company": "O", "university": "U", "invention": "I"}
# Share of the documents per entity type (the rest of the mix follows from these).
_MIX = {"person": 0.36, "city": 0.2, "country": 0.04, "company": 0.16, "university": 0.08, "invention": 0.16}


@dataclasses.dataclass
class _Entity:
    type: str
    name: str
    aliases: tuple[str, ...]
    doc_id: str
    relations: dict[str, _Entity] = dataclasses.field(default_factory=dict)
    year: int = 0


class _Namer:
    """Unique syllable words: every entity gets a stem no other entity uses."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def word(self, min_syl: int = 2, max_syl: int = 3) -> str:
        while True:
            word = "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(min_syl, max_syl)))
            if word not in self.used and len(word) >= 4:
                self.used.add(word)
                return word.capitalize()


def _make_entities(num_docs: int, rng: random.Random) -> dict[str, list[_Entity]]:
    namer = _Namer(rng)
    first_names = [namer.word(2, 2) for _ in range(max(20, num_docs // 50))]
    counts = {t: max(2, round(num_docs * share)) for t, share in _MIX.items()}
    counts["person"] += num_docs - sum(counts.values())
    entities: dict[str, list[_Entity]] = {t: [] for t in _MIX}
    for etype, count in counts.items():
        for i in range(count):
            stem = namer.word(2, 4 if count > 20_000 else 3)
            if etype == "person":
                name, aliases = f"{rng.choice(first_names)} {stem}", (stem,)
            elif etype == "company":
                name, aliases = f"{stem} {rng.choice(_COMPANY_SUFFIX)}", (stem,)
            elif etype == "university":
                name, aliases = f"University of {stem}", (f"{stem} University",)
            elif etype == "invention":
                name, aliases = f"{stem}{rng.choice(_INVENTION_SUFFIX)}", ()
            elif etype == "country":
                name, aliases = f"{stem}{rng.choice(_COUNTRY_SUFFIX)}", ()
            else:
                name, aliases = stem, ()
            entity = _Entity(etype, name, (name, *aliases), f"{_ID_PREFIX[etype]}{i}", year=rng.randint(1700, 1990))
            entities[etype].append(entity)
    for city in entities["city"]:
        city.relations["city_country"] = rng.choice(entities["country"])
    for country in entities["country"]:
        own = [c for c in entities["city"] if c.relations["city_country"] is country]
        if not own:  # every country needs a capital inside it
            own = [rng.choice(entities["city"])]
            own[0].relations["city_country"] = country
        country.relations["capital"] = rng.choice(own)
    for etype, entity_list in entities.items():
        for entity in entity_list:
            for rel, (subject, obj, *_) in _RELATIONS.items():
                if subject == etype and rel not in entity.relations:
                    entity.relations[rel] = rng.choice(entities[obj])
    return entities


def _document(entity: _Entity, rng: random.Random) -> Doc:
    s = entity.name
    intro = {
        "person": f"{s} is a scholar of {rng.choice(_FIELDS)}, active from {entity.year}.",
        "city": f"{s} is a city of about {rng.randint(2, 900) * 1000} people, first recorded in {entity.year}.",
        "country": f"{s} is a country that declared independence in {entity.year}.",
        "company": f"{s} is a company in the {rng.choice(_FIELDS)} business, established in {entity.year}.",
        "university": f"{s} is a university known for {rng.choice(_FIELDS)}, opened in {entity.year}.",
        "invention": f"The {s} is a device for {rng.choice(_FIELDS)}, first shown in {entity.year}.",
    }[entity.type]
    facts = [_RELATIONS[rel][4].format(s=s, o=obj.name) for rel, obj in entity.relations.items()]
    rng.shuffle(facts)
    return Doc(entity.doc_id, s, " ".join([intro, *facts]))


def _walk(entities: dict[str, list[_Entity]], hops: int, rng: random.Random) -> tuple[_Entity, list[str]]:
    start_type = rng.choice(list(entities))
    chain: list[str] = []
    etype = start_type
    for _ in range(hops):
        previous = chain[-1] if chain else None
        rel = rng.choice([r for r, spec in _RELATIONS.items() if spec[0] == etype and (previous, r) not in _INVERSE])
        chain.append(rel)
        etype = _RELATIONS[rel][1]
    return rng.choice(entities[start_type]), chain


def _question(start: _Entity, chain: list[str]) -> tuple[str, tuple[Hop, ...], _Entity]:
    phrase, entity, hop_list = start.name, start, []
    for i, rel in enumerate(chain):
        _, _, question, noun, _, query = _RELATIONS[rel]
        target = entity.relations[rel]
        hop_list.append(Hop(query.format(s=entity.name), entity.doc_id, target.name))
        phrase = question.format(x=phrase) if i == len(chain) - 1 else noun.format(x=phrase)
        entity = target
    return phrase, tuple(hop_list), entity


@functools.lru_cache(maxsize=8)
def generate_kb(num_docs: int = 3000, seed: int = 0, hops: Sequence[int] = (1, 2, 3),
                num_tasks: int = 1000) -> KnowledgeBase:
    """A seeded fictional KB: ``num_docs`` documents (one per entity) and ``num_tasks``
    questions of the given hop counts, each with answer aliases and its gold hop chain.

    Same arguments ⇒ identical KB (cached in-process, so many envs share one).
    """
    if num_docs < 40:
        raise ValueError(f"num_docs must be at least 40, got {num_docs}")
    if not hops or any(h < 1 for h in hops):
        raise ValueError(f"hops must be positive hop counts, got {hops}")
    rng = random.Random(seed)
    entities = _make_entities(num_docs, rng)
    docs = tuple(_document(e, rng) for entity_list in entities.values() for e in entity_list)
    tasks, seen = [], set()
    while len(tasks) < num_tasks:
        start, chain = _walk(entities, rng.choice(list(hops)), rng)
        question, hop_chain, answer = _question(start, chain)
        if question in seen or any(a.lower() in question.lower() for a in answer.aliases):
            continue  # duplicates, and questions that contain their own answer
        seen.add(question)
        tasks.append(Task(f"kb{seed}-{len(tasks)}", question, answer.aliases, hop_chain))
    return KnowledgeBase(docs, tuple(tasks))


# -- loaders ----------------------------------------------------------------------------------
def _row_question(row: dict[str, Any]) -> Any:
    """``question``, else the last user message of verl's ``prompt`` (chat messages), cut after
    its last ``Question:`` when Search-R1's prompt template wrote one."""
    if "question" in row:
        return row["question"]
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1].rpartition("Question:")[2]
    return None


def _row_answers(row: dict[str, Any]) -> Any:
    """``golden_answers`` / ``answers`` / ``answer``, else verl's ``reward_model.ground_truth.target``."""
    for key in ("golden_answers", "answers", "answer"):
        if key in row:
            return row[key]
    truth = (row.get("reward_model") or {}).get("ground_truth")
    return truth.get("target") if isinstance(truth, dict) else truth


def load_qa(path: str | Path) -> tuple[Task, ...]:
    """Questions from JSONL (plain or ``.gz``) or parquet (Search-R1's data files).

    Fields: ``question`` plus ``golden_answers`` (Search-R1 / FlashRAG, a list), ``answers`` or
    ``answer`` (NQ / HotpotQA, a string or list); rows carrying only what verl reads work too:
    the answers from ``reward_model.ground_truth.target`` and the question from ``prompt``.
    The id is ``id``, ``_id`` or ``extra_info.index``, else the row's position.
    """
    tasks = []
    for number, row in read_rows(path):
        question, answers = _row_question(row), _row_answers(row)
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(question, str) or not question.strip() or not isinstance(answers, list) or not answers:
            raise ValueError(f"{path}:{number}: needs 'question' and 'golden_answers' / 'answer' "
                             "(or verl's 'prompt' and 'reward_model.ground_truth.target')")
        index = (row.get("extra_info") or {}).get("index") if isinstance(row.get("extra_info"), dict) else None
        task_id = row.get("id", row.get("_id", index if index is not None else f"{Path(path).stem}-{number}"))
        tasks.append(Task(str(task_id), question.strip(), tuple(str(a) for a in answers)))
    return tuple(tasks)


def load_corpus(path: str | Path) -> tuple[Doc, ...]:
    """A Search-R1-style corpus (wiki-18's format): ``{"id", "contents"}`` rows with
    ``"title"\\ntext`` contents, kept verbatim (``{"id", "title", "text"}`` also works).
    JSONL, JSONL.gz or parquet."""
    docs = []
    for number, row in read_rows(path):
        doc_id = str(row.get("id", len(docs)))
        if isinstance(row.get("contents"), str):
            docs.append(Doc.from_contents(doc_id, row["contents"]))
        elif isinstance(row.get("text"), str):
            docs.append(Doc(doc_id, str(row.get("title", "")), row["text"]))
        else:
            raise ValueError(f"{path}:{number}: needs 'contents' (or 'title' and 'text')")
    return tuple(docs)
