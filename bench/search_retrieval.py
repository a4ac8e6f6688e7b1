"""BM25 retrieval over the generated KB: index build, cache load, queries/s and latency.

    .venv/bin/python bench/search_retrieval.py [--sizes 10000 100000] [--queries 2000] [--k 3]

For each corpus size: time to generate the KB, build the index (fresh cache dir), load it back
from the disk cache, then queries/s and p50/p99 latency of single queries (the env's path: one
query per step) for the gold hop queries of the KB's tasks. Also the same queries through
``agentgym serve-retriever``'s server on loopback, to show the HTTP overhead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from agentgym.envs.search.data import generate_kb
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    for size in args.sizes:
        bench(size, args.queries, args.k)


if __name__ == "__main__":
    main()
