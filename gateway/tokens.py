"""Token counting with tiktoken, loaded once. Used to estimate usage an upstream did not report
and, later, the worst-case cost of a request before it is sent."""

import logging
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import tiktoken

from gateway.router.heuristic import text_of

log = logging.getLogger("frugal")
ENCODING = "o200k_base"
_PER_MESSAGE = 3  # OpenAI's chat format overhead per message
_PRIMING = 3


def configure(cache_dir: str | None) -> None:
    """Point tiktoken at a folder of BPE files (needed offline). Call before the first count."""
    if cache_dir:
        os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
        # litellm overwrites TIKTOKEN_CACHE_DIR on import unless this is set.
        os.environ.setdefault("CUSTOM_TIKTOKEN_CACHE_DIR", cache_dir)


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding | None:
    """The BPE, or None when it cannot be loaded (offline without TIKTOKEN_CACHE_DIR): counts
    then fall back to ~4 characters a token, and a warning says so once."""
    try:
        enc = tiktoken.get_encoding(ENCODING)
    except Exception as e:
        log.warning(
            "tiktoken cannot load %s (%s): token estimates use ~4 characters per token; "
            "set TIKTOKEN_CACHE_DIR to a folder holding its BPE file",
            ENCODING, type(e).__name__,
        )  # fmt: skip
        return None
    # The Python copy of the 200k merge ranks is only read to pickle the encoding; the Rust
    # encoder holds its own. Dropping it saves ~23 MB per worker process.
    enc._mergeable_ranks = {}
    return enc


def count_text(text: str) -> int:
    if not text:
        return 0
    enc = encoding()
    if enc is None:
        return max(1, len(text) // 4)
    return len(enc.encode(text, disallowed_special=()))


def count_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    n = _PRIMING
    for m in messages:
        n += _PER_MESSAGE + count_text(text_of(m.get("content")))
        for call in m.get("tool_calls") or ():
            if isinstance(call, Mapping):
                fn = call.get("function") or {}
                n += count_text(str(fn.get("name", ""))) + count_text(str(fn.get("arguments", "")))
    return n


def count_prompt(prompt: Any) -> int:
    """Tokens of a /v1/completions `prompt` (a string or a list of strings)."""
    if isinstance(prompt, str):
        return count_text(prompt)
    if isinstance(prompt, list):
        return sum(count_text(p) for p in prompt if isinstance(p, str))
    return 0
