"""Errors on the bridged endpoints: Anthropic's shape on the Messages endpoints (with the type
Anthropic gives each status, a spent budget as `billing_error`), OpenAI's on Responses."""

from gateway.apis.bridge import error_body
from gateway.errors import InsufficientQuota, RateLimited, UpstreamTimeout
from gateway.providers.base import Endpoint


def test_anthropic_error_types() -> None:
    quota = InsufficientQuota("Team 'a' has spent its daily budget.")
    assert error_body(Endpoint.messages, quota.status, quota.body()) == {
        "type": "error",
        "error": {"type": "billing_error", "message": "Team 'a' has spent its daily budget."},
    }
    limited = RateLimited("Slow down.")
    assert error_body(Endpoint.messages, 429, limited.body())["error"]["type"] == "rate_limit_error"
    timeout = UpstreamTimeout("model 'x' timed out", model="x")
    assert (
        error_body(Endpoint.count_tokens, 504, timeout.body())["error"]["type"] == "timeout_error"
    )


def test_responses_keep_the_openai_shape() -> None:
    quota = InsufficientQuota("spent")
    assert error_body(Endpoint.responses, 429, quota.body()) == quota.body()
