"""BM25 (with its disk cache), the /retrieve server and the HTTP client, over real loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from agentgym.core import InfraError
from agentgym.envs.search.data import Doc, KnowledgeBase, generate_kb
from agentgym.envs.search.retrievers import BM25Retriever, HTTPRetriever, Retriever, tokenize
from agentgym.envs.search.server import RetrieverServer

DOCS = [
    Doc("a", "Vel Dara", "Vel Dara is a city in Tarvenia. The mayor of Vel Dara is Tavi Melkor."),
    Doc("b", "Tarvenia", "Tarvenia is a country. The capital of Tarvenia is Vel Dara."),
    Doc("c", "Tavi Melkor", "Tavi Melkor was born in Quorath. Tavi Melkor studied optics."),
    Doc("d", "Quorath", "Quorath is a small city in Brellia."),
]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> BM25Retriever:
    return BM25Retriever(DOCS, cache_dir=tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def served(small: BM25Retriever):
    with RetrieverServer(small, default_topk=2) as server:
        yield server


def test_tokenize() -> None:
    assert tokenize("Who was the FOUNDER of Korvan-Systems?") == ["founder", "korvan", "systems"]


def test_bm25_search(small: BM25Retriever) -> None:
    assert isinstance(small, Retriever)
    docs = small.search("where was Tavi Melkor born", 2)
    assert docs[0].id == "c" and docs[0].score > 0 and len(docs) == 2
    assert [d.id for d in small.search("Quorath", 10)] == ["d", "c"]  # only real hits, k clamps
    assert small.search("the of", 3) == [] and small.search("zyzzyva", 3) == []
    assert small.batch_search(["Tarvenia capital", "", "optics"], 1) == [
        [DOCS[1]], [], [DOCS[2]]
    ]
    assert asyncio.run(small.asearch("Quorath", 1)) == [DOCS[3]]


def test_bm25_cache_reuse(kb: KnowledgeBase, tmp_path: Path) -> None:
    first = BM25Retriever(kb.docs, cache_dir=tmp_path)
    assert not first.loaded_from_cache
    files = sorted(first.path.iterdir())
    assert files and first.path.parent == tmp_path / "bm25"
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    second = BM25Retriever(kb.docs, cache_dir=tmp_path)
    assert second.loaded_from_cache and second.path == first.path
    assert {f: f.stat().st_mtime_ns for f in sorted(second.path.iterdir())} == mtimes  # nothing rewritten
    query = kb.tasks[0].hops[0].query
    assert second.search(query, 3) == first.search(query, 3)
    changed = BM25Retriever(kb.docs[:-1], cache_dir=tmp_path)  # another corpus, another key
    assert not changed.loaded_from_cache and changed.path != first.path
    assert [p.name for p in (tmp_path / "bm25").iterdir() if p.name.startswith(".")] == []  # no temp dirs left


def test_bm25_shared(kb: KnowledgeBase, cache_dir: Path) -> None:
    assert BM25Retriever.shared(kb.docs, cache_dir=cache_dir) is BM25Retriever.shared(kb.docs, cache_dir=cache_dir)


def test_http_round_trip(small: BM25Retriever, served: RetrieverServer) -> None:
    remote = HTTPRetriever(served.url.removesuffix("/retrieve"))  # the server root works too
    queries = ["Tavi Melkor", "capital of Tarvenia", "", "nothing matches zyzzyva"]
    for k in (1, 3):
        assert remote.batch_search(queries, k) == small.batch_search(queries, k)
        assert [[d.score for d in r] for r in remote.batch_search(queries, k)] == [
            [d.score for d in r] for r in small.batch_search(queries, k)
        ]
    assert asyncio.run(remote.abatch_search(queries, 2)) == small.batch_search(queries, 2)
    assert remote.batch_search([], 3) == []
    remote.close()


def test_server_contract(served: RetrieverServer) -> None:
    """The exact Search-R1 shapes: with scores, without, and the topk default."""
    body = httpx.post(served.url, json={"queries": ["Quorath"], "topk": 1, "return_scores": True}).json()
    assert body == {"result": [[{"document": {"id": "d", "contents": DOCS[3].contents},
                                 "score": pytest.approx(body["result"][0][0]["score"])}]]}
    plain = httpx.post(served.url, json={"queries": ["Quorath", "Tarvenia"]}).json()["result"]
    assert [len(r) for r in plain] == [2, 2] and plain[0][0] == {"id": "d", "contents": DOCS[3].contents}
    root = served.url.removesuffix("/retrieve")
    assert httpx.get(root + "/health").json() == {"status": "ok", "docs": 4}
    # Whole numbers in any JSON form, as Search-R1's pydantic model reads them.
    for topk in (1, 1.0, "1", " 1 "):
        result = httpx.post(served.url, json={"queries": ["Quorath"], "topk": topk}).json()["result"]
        assert [len(r) for r in result] == [1], topk
    bad_topks = [{"queries": ["x"], "topk": k} for k in (1.5, "1.5", "three", [1], {"k": 1}, -1)]
    for bad in ({"queries": "x"}, {"queries": [1]}, {"queries": ["x"], "topk": 1000}, [1], None, *bad_topks):
        response = httpx.post(served.url, json=bad)
        assert response.status_code == 400 and "error" in response.json()
    assert httpx.post(served.url, content=b"{not json").status_code == 400
    assert httpx.post(root + "/nope", json={}).status_code == 404
    assert httpx.get(root + "/retrieve").status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_down_is_infra_error() -> None:
    remote = HTTPRetriever(f"http://127.0.0.1:{_free_port()}/retrieve", retries=1, backoff=0.01)
    with pytest.raises(InfraError, match="no answer after 2 attempts.*ConnectError"):
        remote.search("x", 3)
    with pytest.raises(InfraError):
        asyncio.run(remote.asearch("x", 3))


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted (status, body)."""

    script: list[tuple[int, bytes]] = []
    calls = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        status, body = self.script.pop(0) if self.script else (500, b"{}")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Scripted.calls = 0
    yield server, _Scripted
    server.shutdown()
    server.server_close()


def test_http_retries_then_succeeds(scripted) -> None:
    server, handler = scripted
    ok = json.dumps({"result": [[{"document": {"id": "1", "contents": "T\nx"}, "score": 2.0}]]}).encode()
    handler.script = [(503, b"busy"), (200, ok)]
    remote = HTTPRetriever(f"http://127.0.0.1:{server.server_address[1]}", backoff=0.01)
    assert remote.search("q", 1) == [Doc("1", "T", "x")] and handler.calls == 2


def test_http_async_retries_429_and_reuses_one_client_per_loop(scripted) -> None:
    """The async twin shares the sync one's retry policy (agentgym.retry) and its client pool."""
    server, handler = scripted
    ok = json.dumps({"result": [[{"document": {"id": "1", "contents": "T\nx"}, "score": 2.0}]]}).encode()
    handler.script = [(429, b"slow down"), (200, ok), (200, ok)]
    remote = HTTPRetriever(f"http://127.0.0.1:{server.server_address[1]}", backoff=0.01)

    async def twice() -> list[list[Doc]]:
        first = await remote.asearch("q", 1)
        client = remote._aclients.get()
        second = await remote.asearch("q", 1)
        assert remote._aclients.get() is client
        await remote.aclose()
        return [first, second]

    assert asyncio.run(twice()) == [[Doc("1", "T", "x")]] * 2 and handler.calls == 3


def test_http_4xx_is_not_retried(scripted) -> None:
    server, handler = scripted
    handler.script = [(404, b"no such route")] * 3
    remote = HTTPRetriever(f"http://127.0.0.1:{server.server_address[1]}", retries=2, backoff=0.01)
    with pytest.raises(InfraError, match="HTTP 404"):
        remote.search("q", 1)
    assert handler.calls == 1


@pytest.mark.parametrize(
    "status_body",
    [
        (500, b"boom"),
        (404, b"not found"),
        (200, b"not json"),
        (200, b'{"results": []}'),
        (200, b'{"result": []}'),  # one query, zero result lists
        (200, b'{"result": [[{"document": 3}]]}'),
    ],
)
def test_http_bad_answers_are_infra_errors(scripted, status_body: tuple[int, bytes]) -> None:
    server, handler = scripted
    handler.script = [status_body] * 3
    remote = HTTPRetriever(f"http://127.0.0.1:{server.server_address[1]}/retrieve", retries=2, backoff=0.01)
    with pytest.raises(InfraError):
        remote.search("q", 1)


def test_http_accepts_other_document_shapes(scripted) -> None:
    """Search-R1's Lucene path returns {title, text, contents} without an id; without scores
    the items are the documents themselves."""
    server, handler = scripted
    lucene = {"result": [[{"document": {"title": "T", "text": "x", "contents": '"T"\nx'}, "score": 1.5}]]}
    plain = {"result": [[{"id": "9", "title": "U", "text": "y"}]]}
    handler.script = [(200, json.dumps(lucene).encode()), (200, json.dumps(plain).encode())]
    remote = HTTPRetriever(f"http://127.0.0.1:{server.server_address[1]}")
    [doc] = remote.search("q", 1)
    assert (doc.title, doc.text, doc.score) == ("T", "x", 1.5) and doc.id
    assert remote.search("q", 1) == [Doc("9", "U", "y")]


def test_serve_retriever_command(tmp_path: Path) -> None:
    """The Typer command as `agentgym serve-retriever` runs it: a real process on loopback."""
    port = _free_port()
    code = "import typer; from agentgym.envs.search.server import serve_retriever; typer.run(serve_retriever)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--kb-docs", "200", "--port", str(port), "--cache-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.05)
        assert health == {"status": "ok", "docs": 200}
        kb = generate_kb(200, 0)
        remote = HTTPRetriever(f"http://127.0.0.1:{port}")
        local = BM25Retriever(kb.docs, cache_dir=tmp_path)
        assert local.loaded_from_cache  # the server built and cached this very index
        query = kb.tasks[0].hops[0].query
        assert remote.search(query, 3) == local.search(query, 3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert b"serving 200 documents" in proc.stderr.read()
