"""``agentgym serve-retriever``: serve a local BM25 index under Search-R1's ``/retrieve`` contract.

Standard library only (``ThreadingHTTPServer``), so the server adds no dependency and starts in
well under a second once the index is cached. Endpoints:

* ``POST /retrieve`` — ``{"queries": [...], "topk": k, "return_scores": bool}`` →
  ``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}`` (without scores, each
  item is the document itself), exactly as ``search_r1/search/retrieval_server.py`` answers;
* ``GET /health`` — ``{"status": "ok", "docs": N}``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import typer

from .retrievers import BM25Retriever, Retriever

__all__ = ["RetrieverServer", "serve_retriever"]

MAX_BODY = 8 << 20
MAX_QUERIES = 4096
MAX_TOPK = 100


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — quiet by default
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 — http.server's naming
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok", "docs": self.server.num_docs})
        else:
            self._send(404, {"error": f"no such endpoint {self.path}; use POST /retrieve"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/retrieve":
            self._send(404, {"error": f"no such endpoint {self.path}; use POST /retrieve"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._send(413, {"error": f"request body over {MAX_BODY} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"null")
            queries, topk, with_scores = _validate(request, self.server.default_topk)
        except ValueError as e:
            self._send(400, {"error": str(e)})
            return
        results = self.server.retriever.batch_search(queries, topk)
        payload = [
            [{"document": d.to_json(), "score": d.score} if with_scores else d.to_json() for d in docs]
            for docs in results
        ]
        self._send(200, {"result": payload})


def _validate(request: Any, default_topk: int) -> tuple[list[str], int, bool]:
    if not isinstance(request, dict):
        raise ValueError('the body must be a JSON object {"queries": [...], "topk": k, "return_scores": bool}')
    queries = request.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError('"queries" must be a list of strings')
    if len(queries) > MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries per request")
    topk = _whole_number(request.get("topk")) or default_topk  # Search-R1 falls back to its default on 0/null
    if not 0 < topk <= MAX_TOPK:
        raise ValueError(f'"topk" must be an integer in 1..{MAX_TOPK}')
    return queries, topk, bool(request.get("return_scores", False))


def _whole_number(value: Any) -> int:
    """``topk`` as Search-R1's server (pydantic, ``Optional[int]``) reads it: an int, a whole
    float such as ``3.0``, or a string of an integer such as ``"3"``; ``None`` is 0 (the default)."""
    if value is None:
        return 0
    if isinstance(value, int):  # bools too, as pydantic's lax mode reads them
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f'"topk" must be a whole number, got {value!r}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], retriever: Retriever, default_topk: int, verbose: bool):
        self.retriever, self.default_topk, self.verbose = retriever, default_topk, verbose
        self.num_docs = len(getattr(retriever, "docs", ()))
        super().__init__(address, _Handler)


class RetrieverServer:
    """A ``/retrieve`` server around any retriever; ``port=0`` picks a free port.

    ``with RetrieverServer(r) as server: HTTPRetriever(server.url)`` runs it in a thread
    (tests, notebooks); :meth:`serve_forever` blocks (the CLI).
    """

    def __init__(self, retriever: Retriever, *, host: str = "127.0.0.1", port: int = 0,
                 default_topk: int = 3, verbose: bool = False):
        self._server = _Server((host, port), retriever, default_topk, verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/retrieve"

    def start(self) -> RetrieverServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="retriever-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> RetrieverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_retriever(
    corpus: Path = typer.Option(
        None, help="Search-R1-style corpus, JSONL or parquet ({'id', 'contents'}, returned verbatim); "
        "default: the generated KB.",
        exists=True, dir_okay=False,
    ),
    kb_docs: int = typer.Option(3000, help="Documents in the generated KB (when no --corpus).", min=40),
    kb_seed: int = typer.Option(0, help="Seed of the generated KB (when no --corpus)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 inside a container)."),
    port: int = typer.Option(8001, help="Port (Search-R1 uses 8000, which vLLM also defaults to)."),
    topk: int = typer.Option(3, help="Documents per query when a request gives no topk.", min=1, max=MAX_TOPK),
    cache_dir: Path = typer.Option(None, help="BM25 index cache [default: $AGENTGYM_CACHE or ~/.cache/agentgym]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Serve a BM25 index over HTTP with Search-R1's /retrieve contract (for remote envs)."""
    from .data import generate_kb, load_corpus

    docs = load_corpus(corpus) if corpus else generate_kb(kb_docs, kb_seed).docs
    retriever = BM25Retriever(docs, cache_dir=cache_dir)
    server = RetrieverServer(retriever, host=host, port=port, default_topk=topk, verbose=verbose)
    source = "cache" if retriever.loaded_from_cache else "a fresh build"
    typer.echo(f"serving {len(docs)} documents (index from {source}) at {server.url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
