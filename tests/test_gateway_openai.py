"""The gateway through the official `openai` client, against the in-process fake upstream that
stands in for a hosted provider (real wire format, streaming included)."""

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.config import Settings
from gateway.keys import create_key
from tests.conftest import model_cfg
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, free_port

UPSTREAM_KEY_ENV = "FRUGAL_TEST_UPSTREAM_KEY"


def settings_for(upstream_url: str, policies: Path, **over: Any) -> Settings:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    fast = {"connect_s": 1, "read_s": 2}
    models = {
        "small-a": model_cfg(upstream_url, "fake-small", tier="small", api_key_env=UPSTREAM_KEY_ENV,
                             price={"input_per_mtok": "0.10", "output_per_mtok": "0.20"},
                             timeouts=fast),
        "large-a": model_cfg(upstream_url, "fake-large", tier="large", api_key_env=UPSTREAM_KEY_ENV,
                             price={"input_per_mtok": "2.00", "output_per_mtok": "8.00"},
                             timeouts=fast),
        "dead": model_cfg(dead, "dead", tier="medium", timeouts=fast),
        "embed-a": model_cfg(upstream_url, "fake-embed", kind="embedding",
                             api_key_env=UPSTREAM_KEY_ENV),
    }  # fmt: skip
    routes = {
        "auto": {"tiers": ["small", "large"], "threshold": 0.5},
        "deadfirst": {"tiers": ["medium", "large"], "threshold": 0.0},
        "always-large": {"tiers": ["small", "large"], "threshold": 0.0},
        "cascading": {"tiers": ["small", "large"], "threshold": 1.0, "cascade": {}},
        "shadowed": {
            "tiers": ["small", "large"],
            "threshold": 0.5,
            "shadow": {"router": "heuristic", "threshold": 0.0},
        },
    }
    cfg: dict[str, Any] = {
        "models": models, "routes": routes, "policies_dir": policies,
        "resilience": {"retries": 1, "backoff_s": 0.01, "cooldown_s": 30},
        "server": {"max_body_bytes": 64 * 1024},
    }  # fmt: skip
    cfg.update(over)
    return Settings(**cfg)


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    policies = tmp_path_factory.mktemp("policies")
    key = create_key(policies, "research")
    with GatewayServer(settings_for(fake_openai.url, policies)) as gw:
        yield gw.url, key
    mp.undo()


@pytest.fixture
def client(gateway: tuple[str, str], upstream: FakeOpenAI) -> openai.OpenAI:
    url, key = gateway
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


MSG = [{"role": "user", "content": "Say hello"}]


def test_chat_pinned_model_passes_fields_through(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    raw = client.chat.completions.with_raw_response.create(
        model="small-a", messages=MSG, tools=tools, tool_choice="auto",  # type: ignore[arg-type]
        response_format={"type": "json_object"}, seed=7, stop=["\n\n"], n=2, logprobs=True,
        extra_body={"top_k": 5, "vendor_option": {"a": 1}},
    )  # fmt: skip
    resp = raw.parse()
    sent = upstream.requests[-1]
    assert sent["model"] == "fake-small"
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["seed"], sent["stop"], sent["n"], sent["logprobs"]) == (7, ["\n\n"], 2, True)
    assert sent["top_k"] == 5 and sent["vendor_option"] == {"a": 1}
    assert resp.model == "small-a"
    assert len(resp.choices) == 2
    assert resp.choices[0].message.tool_calls is not None
    assert resp.choices[0].message.tool_calls[0].function.name == "lookup"
    assert resp.usage is not None and resp.usage.completion_tokens == 20
    h = raw.headers
    assert h["x-frugal-model"] == "small-a" and h["x-frugal-tier"] == "small"
    assert h["x-frugal-route"] == "pinned"
    # 5 prompt tokens x $0.10/M + 20 completion tokens x $0.20/M
    assert h["x-frugal-cost-usd"] == "0.0000045"
    assert len(h["x-request-id"]) >= 8


def test_chat_stream_with_usage(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    stream = client.chat.completions.create(
        model="small-a", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Frugal routes each prompt to the cheapest good model."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10
    assert chunks[-1].model_extra is not None
    assert chunks[-1].model_extra["x_frugal"]["cost_usd"] == "0.0000025"


def test_chat_stream_without_usage_has_no_empty_chunk(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="small-a", messages=MSG, stream=True
    ) as raw:
        assert raw.headers["x-frugal-cost-usd"] == "pending"
        assert raw.headers["content-type"].startswith("text/event-stream")
        chunks = list(raw.parse())
    assert all(c.choices for c in chunks), "a client reading choices[0] must never crash"
    assert all(c.usage is None for c in chunks)
    # The gateway still asked the upstream for usage, to account for the call.
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}


def test_route_auto_reports_score_and_reason(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.headers["x-frugal-route"] == "auto"
    assert raw.headers["x-frugal-tier"] == "small"
    assert float(raw.headers["x-frugal-route-score"]) < 0.5
    assert "threshold 0.5" in raw.headers["x-frugal-route-reason"]
    raw = client.chat.completions.with_raw_response.create(model="always-large", messages=MSG)
    assert raw.headers["x-frugal-tier"] == "large" and raw.headers["x-frugal-model"] == "large-a"


def test_completions_embeddings_and_models(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    c = client.completions.create(model="small-a", prompt="Once upon a time", max_tokens=8)
    assert c.choices[0].text and c.usage is not None
    s = client.completions.create(model="small-a", prompt="Once", stream=True)
    assert "".join(x.choices[0].text for x in s if x.choices)
    e = client.embeddings.create(model="embed-a", input=["a b", "c"])
    assert len(e.data) == 2 and e.usage.prompt_tokens == 3
    ids = {m.id: m for m in client.models.list().data}
    assert {"auto", "small-a", "large-a", "embed-a"} <= set(ids)
    assert ids["large-a"].model_extra is not None
    assert ids["large-a"].model_extra["frugal"]["tier"] == "large"


def test_retry_then_success(
    client: openai.OpenAI, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script.fail_next = 1
    upstream.script.fail_status = 503
    with caplog.at_level("INFO", logger="frugal"):
        raw = client.chat.completions.with_raw_response.create(model="small-a", messages=MSG)
    assert raw.parse().choices[0].message.content
    assert len(upstream.requests) == 2
    # Every attempt is logged with its outcome: the failure on its own, both in the request line.
    rid = raw.headers["x-request-id"]
    mine = [x for x in caplog.records if rid in x.getMessage()]
    assert any(x.levelname == "WARNING" and "model=small-a" in x.getMessage() for x in mine)
    lines = [x.getMessage() for x in mine if x.getMessage().startswith("request ")]
    assert len(lines) == 1
    assert "attempts=small-a#1:UpstreamError,small-a#2:ok" in lines[0]


def test_fallback_to_next_candidate(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="deadfirst", messages=MSG)
    assert raw.headers["x-frugal-model"] == "large-a"


def test_upstream_failure_is_502_naming_model(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script.fail_next = 5
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="small-a", messages=MSG)
    assert err.value.status_code == 502
    assert "small-a" in err.value.message
    assert len(upstream.requests) == 2  # one retry, pinned model: no fallback


def test_upstream_timeout_is_504(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script.delay_s = 3.0  # read timeout is 2 s
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="large-a", messages=MSG)
    assert err.value.status_code == 504
    assert "large-a" in err.value.message


def test_upstream_bad_request_passes_through_as_400(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script.fail_next = 1
    upstream.script.fail_status = 400
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="small-a", messages=MSG)
    assert "scripted failure" in err.value.message
    assert len(upstream.requests) == 1  # never retried


def test_mid_stream_failure_ends_with_error_event(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script.drop_after_chunks = 3
    stream = client.chat.completions.create(model="small-a", messages=MSG, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as err:
        for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "small-a" in str(err.value)
    assert "".join(got) == "Frugal routes"
    assert len(upstream.requests) == 1  # no retry after the first chunk reached the client


def test_missing_usage_is_estimated(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script.usage = False
    raw = client.chat.completions.with_raw_response.create(model="small-a", messages=MSG)
    assert raw.headers["x-frugal-usage-estimated"] == "true"
    usage = raw.parse().usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model="small-a", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.completion_tokens > 0


# --- errors, through plain HTTP so that we see exactly what a client gets -----------------


@pytest.fixture
def http(gateway: tuple[str, str]) -> Iterator[tuple[httpx.Client, str]]:
    url, key = gateway
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c, key


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    assert r.headers["x-request-id"]
    err: dict[str, Any] = body["error"]
    return err


def test_errors_are_openai_shaped(http: tuple[httpx.Client, str], upstream: FakeOpenAI) -> None:
    c, key = http
    auth = {"Authorization": f"Bearer {key}"}
    e = _error(c.post("/v1/chat/completions", content=b"{not json", headers=auth), 400)
    assert e["type"] == "invalid_request_error"
    e = _error(c.post("/v1/chat/completions", json={"model": "auto"}, headers=auth), 400)
    assert e["param"] == "messages"
    e = _error(c.post("/v1/chat/completions", json={"model": "auto", "messages": [
        {"role": "wizard", "content": "x"}]}, headers=auth), 400)  # fmt: skip
    assert e["param"] == "messages.0.role"
    hot = {"model": "auto", "messages": MSG, "temperature": 9}
    e = _error(c.post("/v1/chat/completions", json=hot, headers=auth), 400)
    assert e["param"] == "temperature"
    e = _error(c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG}), 401)
    e = _error(c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG},
                      headers={"Authorization": "Bearer frg_000000000000_wrong"}), 401)  # fmt: skip
    assert e["code"] == "invalid_api_key"
    e = _error(c.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MSG},
                      headers=auth), 404)  # fmt: skip
    assert e["code"] == "model_not_found" and e["param"] == "model"
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 70_000}]}
    e = _error(c.post("/v1/chat/completions", json=big, headers=auth), 413)
    e = _error(c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG,
                      "api_base": "http://evil.example/v1"}, headers=auth), 400)  # fmt: skip
    assert e["param"] == "api_base"
    e = _error(c.get("/v1/nothing-here", headers=auth), 404)
    e = _error(c.get("/v1/chat/completions", headers=auth), 405)
    assert upstream.requests == []


def test_upstream_secret_never_reaches_client(
    http: tuple[httpx.Client, str], upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, key = http
    upstream.api_key = "sk-a-different-key"  # the gateway's key is now refused upstream
    try:
        r = c.post("/v1/chat/completions", json={"model": "small-a", "messages": MSG},
                   headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    finally:
        upstream.api_key = "sk-upstream-secret-123"
    e = _error(r, 502)
    assert "small-a" in e["message"]
    assert "sk-upstream-secret-123" not in r.text and "sk-a-different" not in r.text


def test_health_and_readiness(http: tuple[httpx.Client, str]) -> None:
    c, _ = http
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["store"] == {"kind": "memory", "ok": True}
    assert body["upstreams"]["small-a"] == "ok" and body["upstreams"]["dead"] == "unreachable"


def test_client_disconnect_mid_stream_is_charged(
    http: tuple[httpx.Client, str], upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    c, key = http
    upstream.script.chunk_delay_s = 0.2
    body = {"model": "small-a", "messages": MSG, "stream": True}
    with caplog.at_level("INFO", logger="frugal.request"):
        with c.stream("POST", "/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
            lines = r.iter_lines()
            got = [line for line in (next(lines) for _ in range(4)) if line.startswith("data:")]
            assert got
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done = [
                x.getMessage()
                for x in caplog.records
                if "outcome=client_disconnected" in x.getMessage()
            ]
            if done:
                break
            time.sleep(0.05)
    assert done, "a disconnected stream must still be settled and recorded"
    line = done[0]
    assert "completion_tokens=0" not in line and "cost_usd=-" not in line
    assert "estimated=True" in line


def test_shadow_router_is_logged_never_acted_on(
    client: openai.OpenAI, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="frugal.route"):
        raw = client.chat.completions.with_raw_response.create(model="shadowed", messages=MSG)
    assert raw.headers["x-frugal-tier"] == "small"  # the live decision
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shadow ")]
    assert len(lines) == 1
    assert "live_tier=small" in lines[0] and "shadow_tier=large" in lines[0]
    assert "agree=False" in lines[0]


def test_cascade_escalates_a_failed_small_answer_and_costs_both(
    client: openai.OpenAI, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    ok = client.chat.completions.with_raw_response.create(model="cascading", messages=MSG)
    assert ok.headers["x-frugal-model"] == "small-a" and "x-frugal-cascade" not in ok.headers
    assert [r["model"] for r in upstream.requests] == ["fake-small"]
    upstream.reset()
    upstream.script.completion_tokens = 0  # an empty answer fails the cascade's check
    with caplog.at_level("INFO", logger="frugal.request"):
        raw = client.chat.completions.with_raw_response.create(model="cascading", messages=MSG)
    assert [r["model"] for r in upstream.requests] == ["fake-small", "fake-large"]
    h = raw.headers
    assert h["x-frugal-model"] == "large-a" and h["x-frugal-tier"] == "large"
    assert h["x-frugal-cascade"] == "escalated from small-a: empty"
    assert "cascade: small answer empty, escalated to large" in h["x-frugal-route-reason"]
    # 5 prompt tokens on each model: $0.10/M on small plus $2.00/M on large.
    assert Decimal(h["x-frugal-cost-usd"]) == Decimal("0.0000005") + Decimal("0.00001")
    rid = f"request request_id={h['x-request-id']} "  # other tests' late records are not ours
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(rid)]
    assert len(lines) == 2 and "outcome=cascade_escalated:empty" in lines[0]
    assert "model=small-a" in lines[0] and "model=large-a" in lines[1]
