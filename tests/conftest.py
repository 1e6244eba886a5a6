import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import SHARED, STORIES, LlamaServer, RedisServer

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
os.environ.setdefault("CUSTOM_TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key="sk-upstream-secret-123").start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai.reset()
    yield fake_openai
    fake_openai.reset()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop, pause or restart."""
    server = RedisServer().start()
    yield server
    if server.process is not None:
        server.stop()


@pytest.fixture(scope="session")
def llama_chat() -> Iterator[LlamaServer]:
    server = LlamaServer(STORIES, "stories-chat").wait()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_embed() -> Iterator[LlamaServer]:
    server = LlamaServer(STORIES, "stories-embed", embeddings=True, parallel=1).wait()
    yield server
    server.stop()


def model_cfg(url: str, upstream_id: str, **kw: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"provider": "openai", "model": upstream_id, "base_url": url}
    cfg["price"] = {"input_per_mtok": "0", "output_per_mtok": "0"}  # free unless a test says
    cfg.update(kw)
    return cfg
