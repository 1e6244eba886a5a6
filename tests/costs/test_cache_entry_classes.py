"""A cache entry keeps the token classes, so a hit's "would have cost" (its savings) is priced
like the call that produced it; entries written before the classes decode with none."""

import orjson

from gateway.cache.entry import Entry, decode
from gateway.usage import Usage


def test_an_entry_keeps_the_token_classes() -> None:
    u = Usage(10_000, 100, cached_tokens=8_000, cache_write_tokens=500,
              cache_write_1h_tokens=200, reasoning_tokens=60)  # fmt: skip
    e = Entry("gpt-4.1", {"object": "chat.completion", "choices": []}, u, 1.0)
    back = decode(e.encode())
    assert back is not None and back.usage == u


def test_an_older_entry_decodes_without_classes() -> None:
    raw = orjson.dumps({"f": 1, "model": "m", "body": {}, "stored_at": 1.0,
                        "usage": [12, 3, False]})  # fmt: skip
    back = decode(raw)
    assert back is not None and back.usage == Usage(12, 3)
