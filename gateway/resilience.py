"""Retries with backoff, fallback to the next candidate, and cool-downs for failing models.

Never pay twice: another attempt (a retry, or a fallback to the next candidate) follows only an
error after which the upstream surely did not process the request: nothing was sent (connect
refused or timed out, TLS or proxy failure), or the upstream answered with an error status (429
and 5xx other than 504 are retried; 401/403/404 fall back without retry). An error after the
request was sent and before a complete answer (a read timeout, the attempt's deadline, a
connection dropped, an invalid or empty answer, a 504 from a gateway in front) may have been
processed and billed: it is marked `maybe_processed` and ends the request at once. One 4xx
falls back: a prompt the model's context cannot hold (`context_length_exceeded`) goes on to
the next candidate with a larger window (`windows`), without cooling the model. Nothing is
retried once a stream's first chunk has been handed to the client (the caller only asks us to
open streams). All attempts together end `HOLD_MARGIN_S` before the budget hold expires
(`window_s`, providers/deadline.py). Every attempt is logged with its outcome."""

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.capabilities import CONTEXT_EXCEEDED
from gateway.config import Resilience
from gateway.errors import UpstreamError, UpstreamRejected
from gateway.fault import upstream_at_fault
from gateway.providers.deadline import REQUEST_END
from gateway.telemetry.tracecontext import (
    UPSTREAM_TRACEPARENT,
    Trace,
    new_span_id,
    traceparent,
)

log = logging.getLogger("frugal.upstream")
T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    model: str
    number: int
    outcome: str
    ms: float
    started: float = 0.0  # time.perf_counter() when the attempt began
    span_id: int = 0  # the span id sent upstream in `traceparent` (0: none was sent)


class Cooldowns:
    """Models that failed recently are skipped until their cool-down ends (per replica)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._until: dict[str, float] = {}

    def cool(self, model: str) -> None:
        if self._seconds > 0:
            self._until[model] = time.monotonic() + self._seconds

    def failed(self, model: str, error: UpstreamError) -> None:
        """A request failed on `model`: cool it down only when the failure is the model's."""
        if upstream_at_fault(error):
            self.cool(model)

    def cooling(self, model: str) -> bool:
        until = self._until.get(model)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[model]
            return False
        return True


class Resilient:
    def __init__(
        self, cfg: Resilience, cooldowns: Cooldowns, window_s: float | None = None,
        windows: dict[str, int | None] | None = None,
    ) -> None:  # fmt: skip
        self._cfg = cfg
        self.cooldowns = cooldowns
        self._window_s = window_s  # how long a request's attempts may take, all together
        self.windows = windows or {}  # each model's context window (None: unknown)

    def _larger(self, model: str, floor: int | None) -> bool:
        """After a context overflow on a model with window `floor`: may `model` hold more?"""
        window = self.windows.get(model)
        return floor is None or (window is not None and window > floor)

    def order(self, candidates: list[str]) -> list[str]:
        """Candidates not cooling down, in order (all of them if every one is cooling)."""
        ready = [m for m in candidates if not self.cooldowns.cooling(m)]
        # When every candidate is cooling down, try them anyway rather than fail outright.
        return ready or list(candidates)

    async def _backoff(self, attempt: int) -> None:
        delay = min(self._cfg.backoff_s * (2**attempt), self._cfg.backoff_max_s)
        await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter

    async def call(
        self,
        candidates: list[str],
        attempt_fn: Callable[[str], Awaitable[T]],
        attempts: list[Attempt],
        request_id: str,
        trace: Trace | None = None,
    ) -> tuple[str, T]:
        """Try each candidate (with retries) until one answers; raise the last error. With a
        `trace`, each attempt is sent a `traceparent` naming its own span."""
        end = None if self._window_s is None else time.monotonic() + self._window_s
        end_token = REQUEST_END.set(end)
        try:
            return await self._call(candidates, attempt_fn, attempts, request_id, trace, end)
        finally:
            REQUEST_END.reset(end_token)

    async def _call(
        self,
        candidates: list[str],
        attempt_fn: Callable[[str], Awaitable[T]],
        attempts: list[Attempt],
        request_id: str,
        trace: Trace | None,
        end: float | None,
    ) -> tuple[str, T]:
        last: UpstreamError | None = None
        overflowed, floor = False, None  # after a context overflow: larger windows only
        for model in self.order(candidates):
            if overflowed and not self._larger(model, floor):
                continue
            for n in range(self._cfg.retries + 1):
                if last is not None and end is not None and time.monotonic() >= end:
                    raise last  # the budget hold would expire during another attempt
                t0 = time.perf_counter()
                span_id, token = 0, None
                if trace is not None:
                    span_id = new_span_id()
                    token = UPSTREAM_TRACEPARENT.set(traceparent(trace, span_id))
                try:
                    result = await attempt_fn(model)
                except UpstreamError as e:
                    self._log(attempts, request_id, model, n, t0, e, span_id)
                    last = e
                    if isinstance(e, UpstreamRejected) and e.code == CONTEXT_EXCEEDED:
                        overflowed, floor = True, self.windows.get(model)
                        break  # the request's fault (no cool-down); a larger window may hold it
                    if isinstance(e, UpstreamRejected) or e.maybe_processed:
                        self.cooldowns.failed(model, e)  # a timeout counts, a 4xx does not
                        raise
                    if not e.retryable or n == self._cfg.retries:
                        break
                    await self._backoff(n)
                    continue
                finally:
                    if token is not None:
                        UPSTREAM_TRACEPARENT.reset(token)
                self._log(attempts, request_id, model, n, t0, None, span_id)
                return model, result
            assert last is not None
            self.cooldowns.failed(model, last)
        assert last is not None
        raise last

    async def open_stream(
        self,
        candidates: list[str],
        open_fn: Callable[[str], AsyncIterator[dict[str, Any]]],
        attempts: list[Attempt],
        request_id: str,
        trace: Trace | None = None,
    ) -> tuple[str, dict[str, Any], AsyncIterator[dict[str, Any]]]:
        """Open a stream and read its first chunk, retrying and falling back until then."""

        async def first(model: str) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
            it = open_fn(model)
            try:
                chunk = await anext(it)
            except StopAsyncIteration:
                raise UpstreamError(  # it answered: it may have billed the prompt
                    f"model {model!r} sent an empty stream", model=model, retryable=False
                ).after_send() from None
            return chunk, it

        model, (chunk, it) = await self.call(candidates, first, attempts, request_id, trace)
        return model, chunk, it

    def _log(
        self,
        attempts: list[Attempt],
        request_id: str,
        model: str,
        n: int,
        t0: float,
        err: UpstreamError | None,
        span_id: int,
    ) -> None:
        ms = (time.perf_counter() - t0) * 1000
        outcome = "ok" if err is None else type(err).__name__
        attempts.append(Attempt(model, n + 1, outcome, ms, t0, span_id))
        # A success is already in the request's own line (attempts=N); failures stand out.
        level = logging.DEBUG if err is None else logging.WARNING
        if not log.isEnabledFor(level):
            return
        outcome = "ok" if err is None else f"{type(err).__name__}: {err.message}"
        log.log(
            level,
            "upstream attempt request_id=%s model=%s attempt=%d outcome=%s ms=%.1f",
            request_id, model, n + 1, outcome, ms,
        )  # fmt: skip
