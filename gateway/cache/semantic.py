"""The semantic index: Redis with RediSearch vector search (FT.CREATE ... VECTOR).

Each document is one answer: the partition it belongs to (a hash of everything but the last
user turn, so only requests identical apart from that turn can match), its scope (team or
shared, for purges), the last user turn's text and embedding, and the encoded entry. A lookup
asks for the nearest document in the same partition (a KNN query pre-filtered by partition);
the caller applies the threshold and the false-hit guard."""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis

from gateway.cache.settings import SemanticSettings
from gateway.router.model_thread import run_model

log = logging.getLogger("frugal.cache")
DOC_PREFIX = "frugal:sem:v1:"


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    similarity: float
    text: str
    entry: bytes


class SemanticIndex:
    def __init__(self, client: Any, cfg: SemanticSettings, embedder: Embedder, dim: int) -> None:
        self._r = client
        self._cfg = cfg
        self._embedder = embedder
        self._dim = dim

    @classmethod
    async def open(cls, url: str, cfg: SemanticSettings, embedder: Embedder) -> "SemanticIndex":
        """Connect and create the index if needed; raises when Redis or RediSearch is missing."""
        client = aioredis.Redis.from_url(
            url, socket_timeout=max(cfg.timeout_ms / 1000, 1.0), socket_connect_timeout=2.0
        )
        dim = int(embedder.embed(["dimension probe"]).shape[1])
        index = cls(client, cfg, embedder, dim)
        try:
            await index._create()
        except Exception:
            await client.aclose()
            raise
        return index

    async def _create(self) -> None:
        try:
            await self._r.execute_command("FT.INFO", self._cfg.index)
            return
        except aioredis.ResponseError as e:
            if "unknown command" in str(e).lower():
                raise RuntimeError("this Redis has no RediSearch module (FT.* commands)") from e
        await self._r.execute_command(
            "FT.CREATE", self._cfg.index, "ON", "HASH", "PREFIX", "1", DOC_PREFIX, "SCHEMA",
            "partition", "TAG", "scope", "TAG", "vec", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32",
            "DIM", str(self._dim), "DISTANCE_METRIC", "COSINE",
        )  # fmt: skip

    async def embed(self, text: str) -> bytes:
        """The text's L2-normalised embedding as float32 bytes (computed off the event loop)."""
        vec = await run_model(self._embedder.embed, [text])
        return np.asarray(vec[0], dtype=np.float32).tobytes()

    async def nearest(self, partition: str, vec: bytes) -> Candidate | None:
        reply = await self._r.execute_command(
            "FT.SEARCH", self._cfg.index, f"(@partition:{{{partition}}})=>[KNN 1 @vec $v AS dist]",
            "PARAMS", "2", "v", vec, "RETURN", "3", "dist", "text", "entry",
            "SORTBY", "dist", "DIALECT", "2", "LIMIT", "0", "1",
        )  # fmt: skip
        doc = _first_doc(reply)
        if doc is None or not {"dist", "text", "entry"} <= doc.keys():
            return None
        return Candidate(1.0 - float(_s(doc["dist"])), _s(doc["text"]), bytes(doc["entry"]))

    async def add(
        self, partition: str, scope: str, text: str, vec: bytes, entry: bytes, ttl_s: int
    ) -> None:
        doc = hashlib.sha256(f"{partition}\0{text}".encode()).hexdigest()
        key = f"{DOC_PREFIX}{scope}:{doc}"
        mapping = {"partition": partition, "scope": scope, "text": text, "vec": vec, "entry": entry}
        async with self._r.pipeline(transaction=True) as p:
            p.hset(key, mapping=mapping)
            p.expire(key, ttl_s)
            await p.execute()

    async def purge(self, scope: str) -> int:
        n = 0
        async for k in self._r.scan_iter(match=f"{DOC_PREFIX}{scope}:*", count=500):
            n += int(await self._r.delete(k))
        return n

    async def close(self) -> None:
        await self._r.aclose()


def _first_doc(reply: Any) -> dict[str, Any] | None:
    """The first document's fields from an FT.SEARCH reply (RESP3 map or RESP2 array)."""
    if isinstance(reply, dict):
        results = reply.get(b"results") or reply.get("results") or []
        if not results:
            return None
        attrs = results[0].get(b"extra_attributes") or results[0].get("extra_attributes") or {}
        return {_s(k): v for k, v in attrs.items()}
    if not reply or int(reply[0]) == 0 or len(reply) < 3:
        return None
    fields = reply[2]
    return {_s(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
