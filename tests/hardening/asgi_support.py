"""The gateway's ASGI app in-process (lifespan included) with httpx, against the fake upstream,
for the front-edge and fuzz tests (issue 12)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.config import Settings
from gateway.front import Front
from tests.conftest import model_cfg

UPSTREAM_KEY_ENV = "FRUGAL_TEST_UPSTREAM_KEY"
ADMIN_KEY = "admin-key-for-tests"


def settings_for(upstream_url: str, policies: Path, **over: Any) -> Settings:
    models = {
        "small-a": model_cfg(upstream_url, "fake-small", tier="small", api_key_env=UPSTREAM_KEY_ENV,
                             price={"input_per_mtok": "0.10", "output_per_mtok": "0.20"}),
        "large-a": model_cfg(upstream_url, "fake-large", tier="large", api_key_env=UPSTREAM_KEY_ENV,
                             price={"input_per_mtok": "2.00", "output_per_mtok": "8.00"}),
        "embed-a": model_cfg(upstream_url, "fake-embed", kind="embedding",
                             api_key_env=UPSTREAM_KEY_ENV),
    }  # fmt: skip
    cfg: dict[str, Any] = {
        "models": models,
        "routes": {"auto": {"tiers": ["small", "large"], "threshold": 0.5, "router": "default"}},
        "policies_dir": policies,
        "resilience": {"retries": 0, "backoff_s": 0.01, "cooldown_s": 1},
    }
    cfg.update(over)
    return Settings(**cfg)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Front, httpx.AsyncClient]]:
    """The app started (its lifespan run) and a client that calls it in-process."""
    front = create_app(settings)
    async with front.app.router.lifespan_context(front.app):
        transport = httpx.ASGITransport(app=front)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield front, client


def assert_openai_error(resp: httpx.Response) -> None:
    """A 4xx/5xx body is exactly the OpenAI error shape, without a traceback."""
    assert "Traceback" not in resp.text and 'File "' not in resp.text, resp.text[:300]
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
