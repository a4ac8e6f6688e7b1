"""One retry policy for every HTTP client in agentgym: the OpenAI-compatible policy, the HTTP
retriever and the vLLM server client.

Transient failures are retried: 429 and 5xx answers, dropped connections and timeouts (any
``httpx.TransportError``). Backoff is exponential from ``wait_min``, capped at ``wait_max``, plus
up to ``wait_min`` of random jitter so that many rollouts failing together do not retry in
lock-step; a ``Retry-After`` header lengthens the wait (up to ``wait_max``). Any other answer goes
back to the caller at once: a 4xx cannot succeed on a second try. When the attempts run out the
caller gets an :class:`~agentgym.errors.InfraError` (a dead server is never the agent's fault),
with the last error as its ``__cause__``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from agentgym.errors import InfraError

__all__ = ["RETRYABLE", "AsyncClientPerLoop", "HTTPRetry", "TransientHTTPError", "error_message", "raise_for_transient",
           "retry_after"]

logger = logging.getLogger(__name__)


class TransientHTTPError(Exception):
    """A 429 or 5xx answer: transient, worth another attempt (internal to a retry loop)."""

    def __init__(self, status_code: int, message: str, retry_after: float | None):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.retry_after = retry_after


RETRYABLE = (httpx.TransportError, TransientHTTPError)  # TransportError covers timeouts and drops


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds; None when absent or an HTTP date (rare from inference servers)."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI/new vLLM ``{"error": {"message"}}``, old vLLM
    ``{"object": "error", "message"}``, FastAPI ``{"detail"}``, else the raw body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])
    return response.text[:500]


def raise_for_transient(response: httpx.Response) -> httpx.Response:
    """Raise :class:`TransientHTTPError` for a 429 or 5xx answer; return any other unchanged."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientHTTPError(status, error_message(response), retry_after(response))
    return response


@dataclass(frozen=True)
class HTTPRetry:
    """``max_retries`` retries after the first attempt; waits as in the module docstring."""

    max_retries: int = 4
    wait_min: float = 0.5
    wait_max: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.wait_min < 0 or self.wait_max < self.wait_min:
            raise ValueError(f"need max_retries >= 0 and 0 <= wait_min <= wait_max, got {self}")

    def wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential(multiplier=self.wait_min, max=self.wait_max) + wait_random(0, self.wait_min)
        delay = backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientHTTPError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return min(delay, self.wait_max)

    def tenacity_kwargs(self, what: str) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` around a callable that raises
        :data:`RETRYABLE` errors; ``what`` names the endpoint in log lines."""

        def log(state: RetryCallState) -> None:  # one warning per incident; each further try at debug level
            error = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            level = logging.WARNING if state.attempt_number == 1 else logging.DEBUG
            logger.log(level, "%s: %s: %s; retry %d/%d in %.2fs", what, type(error).__name__, error,
                       state.attempt_number, self.max_retries, sleep)

        return {"stop": stop_after_attempt(self.max_retries + 1), "wait": self.wait,
                "retry": retry_if_exception_type(RETRYABLE), "before_sleep": log, "reraise": True}

    def gave_up(self, what: str, error: BaseException) -> InfraError:
        return InfraError(f"{what}: no answer after {self.max_retries + 1} attempts; "
                          f"last error: {type(error).__name__}: {error}")

    def call(self, send: Callable[[], httpx.Response], what: str) -> httpx.Response:
        """``send()`` until it gives a non-transient answer, which is returned (4xx included)."""
        try:
            return Retrying(**self.tenacity_kwargs(what))(lambda: raise_for_transient(send()))
        except RETRYABLE as e:
            raise self.gave_up(what, e) from e

    async def acall(self, send: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
        """Async twin of :meth:`call`."""

        async def attempt() -> httpx.Response:
            return raise_for_transient(await send())

        try:
            return await AsyncRetrying(**self.tenacity_kwargs(what))(attempt)
        except RETRYABLE as e:
            raise self.gave_up(what, e) from e


class AsyncClientPerLoop:
    """One pooled ``httpx.AsyncClient`` per event loop: connections belong to the loop that opened
    them, so a new loop (e.g. repeated ``asyncio.run``) gets a fresh pool; the old one cannot be
    closed from there and is left to the GC."""

    def __init__(self, **client_kwargs: Any):
        self._kwargs = client_kwargs
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = httpx.AsyncClient(**self._kwargs), loop
        return self._client

    async def aclose(self) -> None:
        """Close the pool if the running loop opened it; idempotent, and a later :meth:`get` opens a new one."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()
