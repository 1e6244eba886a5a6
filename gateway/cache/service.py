"""The cache stage of the pipeline: look up (exact, then semantic), coalesce identical misses,
store complete answers, answer hits at no cost. Never raises into a request: a slow or broken
cache is a miss, with a warning and a metric (see `health`)."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway import tokens
from gateway.cache import guard, replay
from gateway.cache.assemble import Assembler
from gateway.cache.coalesce import Flights
from gateway.cache.entry import Entry, complete, decode
from gateway.cache.health import Health
from gateway.cache.key import exact_key, scope_pattern
from gateway.cache.local import LocalEntries
from gateway.cache.partition import last_user_turn, partition
from gateway.cache.policy import Policy, resolve
from gateway.cache.settings import CacheSettings
from gateway.call import Call
from gateway.config import Settings
from gateway.pricing import usd
from gateway.providers.base import Endpoint
from gateway.usage import Usage

if TYPE_CHECKING:
    from gateway.cache.semantic import SemanticIndex  # redis-py: only when semantic is on

log = logging.getLogger("frugal.cache")


@dataclass(slots=True)
class Probe:
    """A semantic lookup's inputs, kept to index the answer after a miss."""

    partition: str
    text: str
    vec: bytes


@dataclass(slots=True)
class Lookup:
    key: str | None = None  # None: this request neither reads nor writes the cache
    policy: Policy | None = None
    model: str | None = None  # the model keyed on: the route decision's first candidate
    write: bool = False
    entry: Entry | None = None  # set on a hit
    leader: bool = False  # the one in-flight request identical requests wait for
    handed_off: bool = False  # a stream settles the flight itself, when it ends
    probe: Probe | None = None


class ResponseCache:
    def __init__(
        self, cfg: CacheSettings, store: Any, models: Mapping[str, list[str]],
        semantic: "SemanticIndex | None",
    ) -> None:  # fmt: skip
        self.cfg = cfg
        self._store = store
        self._models = models
        self.semantic = semantic
        self.health = Health(cfg.timeout_ms / 1000)
        self.flights = Flights(cfg.coalesce_wait_s)

    @classmethod
    async def start(cls, settings: Settings, store: Any) -> "ResponseCache":
        cfg = settings.cache
        models = {n: [n, m.provider, m.model, m.base_url or ""] for n, m in settings.models.items()}
        if getattr(store, "kind", None) == "memory":  # in process: a bounded LRU of its own
            store = LocalEntries(cfg.max_entries, cfg.max_bytes)
        semantic = None
        if cfg.enabled and cfg.semantic.enabled:
            semantic = await _open_semantic(cfg, settings.redis_url)
        log.info(
            "cache %s: store=%s ttl_s=%d coalesce=%s semantic=%s",
            "on" if cfg.enabled else "off", getattr(store, "kind", "?"), cfg.ttl_s, cfg.coalesce,
            "on" if semantic else "off",
        )  # fmt: skip
        return cls(cfg, store, models, semantic)

    async def close(self) -> None:
        if self.semantic is not None:
            await self.semantic.close()

    async def purge(self, scope: str) -> dict[str, int]:
        """Delete every entry of a scope (a team's, or the shared one). Admin path only."""
        keys = await self._store.keys(scope_pattern(scope))
        exact = await self._store.delete(*keys) if keys else 0
        semantic = await self.semantic.purge(scope) if self.semantic is not None else 0
        return {"exact": int(exact), "semantic": semantic}

    def stats(self) -> dict[str, Any]:
        out = {"counts": dict(self.health.counts), "in_flight": len(self.flights),
               "semantic": self.semantic is not None}  # fmt: skip
        if isinstance(self._store, LocalEntries):
            out["local"] = self._store.stats()
        return out

    # --- stage 6: lookup ------------------------------------------------------------------

    async def lookup(self, call: Call) -> Lookup:
        """Stage 6: a hit sets `entry`; a miss may make this request the flight's leader."""
        read, write = call.cache_read, call.cache_write
        policy = self._policy(call)
        if policy is None:
            return Lookup()
        if not write or self._uncacheable_sampling(call.body, policy):
            call.cache = "bypass"
            call.extra_headers["x-frugal-cache-reason"] = "no-store" if not write else "sampling"
            return Lookup()
        assert call.decision is not None
        model = call.decision.candidates[0]
        try:
            key = exact_key(call.body, self._identity(call, model), policy.scope)
        except (TypeError, ValueError) as e:  # e.g. a number orjson cannot write
            self.health.failed("key", "error", str(e))
            call.cache = "bypass"
            return Lookup()
        lk = Lookup(key=key, policy=policy, model=model, write=True)
        if not read:
            call.cache = "bypass"
            call.extra_headers["x-frugal-cache-reason"] = "no-cache"
            return lk
        lk.entry = await self._exact(key)
        if lk.entry is None and policy.coalesce:
            if self.flights.lead(key):
                lk.leader = True
            else:
                lk.entry = await self.flights.follow(key)
                if lk.entry is not None:
                    call.extra_headers["x-frugal-cache-coalesced"] = "true"
        semantic = False
        if lk.entry is None and policy.semantic:
            lk.entry = await self._semantic(lk, call)
            semantic = lk.entry is not None
        if lk.entry is not None:
            self.settle(lk, lk.entry)
        call.cache = "miss" if lk.entry is None else "semantic-hit" if semantic else "hit"
        self.health.counts[call.cache] += 1
        return lk

    def _identity(self, call: Call, model: str) -> list[str]:
        """The model keyed on, and the client's API when a translator bridged it (an answer
        stored for one API is never replayed to another)."""
        identity = self._models[model]
        return identity if call.api is None else [*identity, call.api.value]

    def _policy(self, call: Call) -> Policy | None:
        if call.endpoint is Endpoint.embeddings or call.decision is None:
            return None
        policy = resolve(self.cfg, call.principal.team, str(call.body.get("model")))
        return policy if policy.enabled else None

    @staticmethod
    def _uncacheable_sampling(body: Mapping[str, Any], policy: Policy) -> bool:
        """Sampling (temperature absent or > 0, no seed) is cached only where policy allows."""
        if policy.cache_sampling or body.get("seed") is not None:
            return False
        t = body.get("temperature")
        return t is None or (isinstance(t, int | float) and t > 0)

    async def _exact(self, key: str) -> Entry | None:
        raw = await self.health.guarded("get", self._store.get(key))
        return decode(raw) if raw else None

    async def _semantic(self, lk: Lookup, call: Call) -> Entry | None:
        text = last_user_turn(call.body)
        if self.semantic is None or text is None or lk.model is None or lk.policy is None:
            return None
        part = partition(call.body, self._identity(call, lk.model), lk.policy.scope)
        t = self.cfg.semantic.timeout_ms / 1000
        vec = await self.health.guarded("embed", self.semantic.embed(text), t)
        if vec is None:
            return None
        lk.probe = Probe(part, text, vec)
        cand = await self.health.guarded("semantic_search", self.semantic.nearest(part, vec), t)
        if cand is None or cand.similarity < self.cfg.semantic.threshold:
            return None
        why = guard.reason_to_reject(text, cand.text)
        if why is not None:
            self.health.counts["semantic_guard_rejects"] += 1
            log.info("semantic candidate rejected (%s) similarity=%.3f", why, cand.similarity)
            return None
        return decode(cand.entry)

    # --- stage 10: store ------------------------------------------------------------------

    def settle(self, lk: Lookup, entry: Entry | None) -> None:
        """Hand the leader's answer (or None) to the identical requests waiting for it."""
        if lk.leader and lk.key is not None:
            lk.leader = False
            self.flights.settle(lk.key, entry)

    def release(self, lk: Lookup) -> None:
        """End of the non-streamed path (also on errors): waiters never hang on a leader."""
        if not lk.handed_off:
            self.settle(lk, None)

    async def store(self, lk: Lookup, call: Call, body: dict[str, Any]) -> None:
        """Store a non-streamed answer if it is complete, then release any waiters."""
        entry = None
        if lk.key is not None and call.model and call.usage is not None and complete(body):
            entry = Entry(call.model, _without_usage(body), call.usage, time.time())
            await self._save(lk, call, entry)
        self.settle(lk, entry)

    def capture(
        self, lk: Lookup, call: Call, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        """Wrap a stream's remaining chunks: once it has ended normally, store the whole answer.
        An aborted, failed or truncated stream is never stored."""
        if lk.key is None:
            return rest
        lk.handed_off = True
        return self._capturing(lk, call, first, rest)

    async def _capturing(
        self, lk: Lookup, call: Call, first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        chat = call.endpoint is Endpoint.chat
        asm = Assembler(chat)
        asm.feed(first)
        entry = None
        try:
            async for chunk in rest:
                asm.feed(chunk)
                yield chunk
            body = asm.body()
            # Completions' logprobs are not reassembled: such a stream is never stored.
            if complete(body) and call.model and (chat or not call.body.get("logprobs")):
                usage = asm.usage or _estimate(call, body)
                entry = Entry(call.model, body, usage, time.time())
                await self._save(lk, call, entry)
        finally:
            self.settle(lk, entry)
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _save(self, lk: Lookup, call: Call, entry: Entry) -> None:
        assert lk.key is not None and lk.policy is not None
        if not lk.write or entry.model != lk.model:
            return  # a fallback's answer is not stored under the first candidate's key
        raw = entry.encode()
        if len(raw) > lk.policy.max_entry_bytes:
            self.health.counts["too_large"] += 1
            return
        ttl = lk.policy.ttl_s
        await self.health.guarded("set", self._store.set(lk.key, raw, ttl))
        self.health.counts["stored"] += 1
        if self.semantic is not None and lk.probe is not None:
            p = lk.probe
            t = self.cfg.semantic.timeout_ms / 1000
            await self.health.guarded(
                "semantic_add", self.semantic.add(p.partition, lk.policy.scope, p.text, p.vec,
                                                  raw, ttl), t,
            )  # fmt: skip

    # --- answering a hit --------------------------------------------------------------------

    def replay(self, call: Call, entry: Entry, include_usage: bool) -> AsyncIterator[bytes]:
        """A hit for a streaming request, as a proper SSE stream."""
        assert call.model is not None
        extra = {"cost_usd": "0", "cache": call.cache}
        return replay.stream(entry, call.request_id, call.model, include_usage, extra)

    @staticmethod
    def credit(call: Call) -> None:
        """A hit costs nothing; `call.cost` (set by `charge`) is what it would have cost."""
        saved = call.cost or Decimal(0)
        call.cost = Decimal(0)
        call.extra_headers["x-frugal-cache-saved-usd"] = usd(saved)


def _without_usage(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("usage", "x_frugal")}


def _estimate(call: Call, body: dict[str, Any]) -> Usage:
    if call.endpoint is Endpoint.chat:
        prompt = tokens.count_messages(call.body["messages"])
    else:
        prompt = tokens.count_prompt(call.body.get("prompt"))
    text = "".join(
        str((c.get("message") or {}).get("content") or "") + str(c.get("text") or "")
        for c in body.get("choices") or ()
    )
    return Usage(prompt, tokens.count_text(text), estimated=True)


async def _open_semantic(cfg: CacheSettings, redis_url: str | None) -> "SemanticIndex | None":
    url = cfg.semantic.redis_url or redis_url
    if not url:
        log.warning("semantic cache unavailable: no Redis configured "
                    "(set cache.semantic.redis_url or redis_url); exact cache only")  # fmt: skip
        return None
    try:
        from gateway.cache.semantic import SemanticIndex
        from gateway.router.embedder import MiniLMEmbedder

        embedder = await asyncio.to_thread(MiniLMEmbedder, None, None, cfg.semantic.embed_threads)
        index = await SemanticIndex.open(url, cfg.semantic, embedder)
    except Exception as e:
        log.warning("semantic cache unavailable (%s: %s); exact cache only", type(e).__name__, e)
        return None
    log.info("semantic cache on: index=%s threshold=%.2f", cfg.semantic.index,
             cfg.semantic.threshold)  # fmt: skip
    return index
