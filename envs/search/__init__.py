"""Search-R1-style retrieval QA (agentgym/Search-v0).

Modules: ``env`` (the env), ``data`` (documents, tasks, the generated KB, JSONL / parquet
loaders), ``retrievers`` (BM25 and HTTP backends), ``server`` (``agentgym serve-retriever``),
``metrics`` (EM / F1), ``searchr1`` (Search-R1's exact protocol). Nothing heavy is imported here: ``bm25s`` loads on first use.
"""

from __future__ import annotations

__all__ = ["register_search_envs"]


def register_search_envs() -> None:
    """Register ``agentgym/Search-v0`` (idempotent)."""
    from agentgym.registry import register

    register(
        "agentgym/Search-v0",
        "agentgym.envs.search.env:SearchEnv",
        max_turns=6,
        description="Multi-hop retrieval QA, Search-R1 protocol (<search>/<answer>), generated fictional KB, BM25.",
    )
