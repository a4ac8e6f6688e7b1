"""BM25 retrieval over the generated KB: index build, cache load, queries/s and latency.

    .venv/bin/python bench/search_retrieval.py [--sizes 10000 100000] [--queries 2000] [--k 3]

For each corpus size: time to generate the KB, build the index (fresh cache dir), load it back
from the disk cache, then queries/s and p50/p99 latency of single queries (the env's path: one
query per step) for the gold hop queries of the KB's tasks. Also the same queries through
``agentgym serve-retriever``'s server on loopback, to show the HTTP overhead.

Then a wiki-18-style corpus (``--wiki-size`` documents, generated: quoted titles, some with
quotes inside, text over several lines, written as Search-R1's ``{"id", "contents"}`` JSONL):
load and build time, single queries over HTTP (q/s, p50), and a round-trip check that every
returned document's ``contents`` equals its stored row byte for byte.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from agentgym.envs.search.data import generate_kb, load_corpus
from agentgym.envs.search.retrievers import BM25Retriever, HTTPRetriever
from agentgym.envs.search.server import RetrieverServer


def _percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def bench(size: int, n_queries: int, k: int) -> None:
    t0 = time.perf_counter()
    kb = generate_kb(size, 0, (1, 2, 3), max(200, n_queries // 2))
    t1 = time.perf_counter()
    queries = [hop.query for task in kb.tasks for hop in task.hops][:n_queries]
    with tempfile.TemporaryDirectory() as cache:
        retriever = BM25Retriever(kb.docs, cache_dir=cache)
        t2 = time.perf_counter()
        loaded = BM25Retriever(kb.docs, cache_dir=cache)
        t3 = time.perf_counter()
        assert loaded.loaded_from_cache and not retriever.loaded_from_cache
        retriever.search(queries[0], k)  # warm up
        latencies = []
        for q in queries:
            s = time.perf_counter()
            retriever.search(q, k)
            latencies.append(time.perf_counter() - s)
        with RetrieverServer(retriever) as server:
            remote = HTTPRetriever(server.url)
            remote.search(queries[0], k)
            http = []
            for q in queries[:500]:
                s = time.perf_counter()
                remote.search(q, k)
                http.append(time.perf_counter() - s)
            remote.close()
    ms = 1000
    print(
        f"{size:>7} docs | generate {t1 - t0:6.2f} s | build {t2 - t1:6.2f} s | cache load {t3 - t2:5.2f} s | "
        f"single: {len(queries) / sum(latencies):7.0f} q/s, p50 {statistics.median(latencies) * ms:.2f} ms, "
        f"p99 {_percentile(latencies, 0.99) * ms:.2f} ms | "
        f"HTTP loopback p50 {statistics.median(http) * ms:.2f} ms"
    )


_SYLLABLES = "ka ren tho vel mar dus qui bri zan lo fen gor ath ish mel tav kor van sel rud pim dra yo nes".split()


def wiki_rows(size: int, seed: int = 0) -> list[dict[str, str]]:
    """wiki-18-shaped rows: ``"Title"`` (every 5th with quotes inside) then 1-4 lines of text over
    a 20,000-word vocabulary drawn with Zipf-like frequencies, as natural text is."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(25_000)})[:20_000]
    rng.shuffle(vocab)
    cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocab))))  # cumulative: bisect per draw
    rows = []
    for i in range(size):
        a, b = rng.choices(vocab, cum_weights=cum, k=2)
        title = f'""{a.title()}" {b.title()} {i}"' if i % 5 == 0 else f'"{a.title()} {b} {i}"'
        lines = [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(8, 30))) + "." for _ in range(rng.randint(1, 4))]
        rows.append({"id": str(i), "contents": title + "\n" + "\n".join(lines)})
    return rows


def bench_wiki(size: int, n_queries: int, k: int) -> None:
    rows = wiki_rows(size)
    stored = {r["id"]: r["contents"] for r in rows}
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wiki-18-style.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        t0 = time.perf_counter()
        docs = load_corpus(path)
        t1 = time.perf_counter()
        retriever = BM25Retriever(docs, cache_dir=tmp)
        t2 = time.perf_counter()
        picks = [rows[rng.randrange(size)]["contents"] for _ in range(n_queries)]
        queries = [" ".join(c.split("\n")[1].split()[:4]) for c in picks]
        returned, mismatched, latencies = 0, 0, []
        with RetrieverServer(retriever) as server, httpx.Client() as client:
            client.post(server.url, json={"queries": [queries[0]], "topk": k})
            for q in queries:
                s = time.perf_counter()
                body = client.post(server.url, json={"queries": [q], "topk": k, "return_scores": True}).json()
                latencies.append(time.perf_counter() - s)
                for item in body["result"][0]:
                    returned += 1
                    mismatched += item["document"]["contents"] != stored[item["document"]["id"]]
    print(
        f"wiki-18-style {size:>7} docs | load JSONL {t1 - t0:5.2f} s | build {t2 - t1:6.2f} s | "
        f"HTTP single: {len(queries) / sum(latencies):6.0f} q/s, p50 {statistics.median(latencies) * 1000:.2f} ms | "
        f"round trip: {returned - mismatched}/{returned} returned documents equal their stored rows"
    )
    assert mismatched == 0, "a returned document differs from its stored row"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--wiki-size", type=int, default=100_000, help="0 skips the wiki-18-style run")
    args = parser.parse_args()
    for size in args.sizes:
        bench(size, args.queries, args.k)
    if args.wiki_size:
        bench_wiki(args.wiki_size, args.queries, args.k)


if __name__ == "__main__":
    main()
