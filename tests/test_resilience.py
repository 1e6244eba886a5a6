"""Retries, fallback and cool-downs, on scripted attempt functions."""

import pytest

from gateway.config import Resilience
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.resilience import Attempt, Cooldowns, Resilient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _resilient(retries: int = 2, cooldown_s: float = 60) -> Resilient:
    cfg = Resilience(retries=retries, backoff_s=0.001, backoff_max_s=0.002, cooldown_s=cooldown_s)
    return Resilient(cfg, Cooldowns(cooldown_s))


class Scripted:
    def __init__(self, plan: dict[str, list[Exception | str]]) -> None:
        self.plan = plan
        self.calls: list[str] = []

    async def __call__(self, model: str) -> str:
        self.calls.append(model)
        step = self.plan[model].pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def _down(model: str) -> UpstreamError:
    return UpstreamError("down", model=model, retryable=True)


async def test_retries_then_succeeds() -> None:
    fn = Scripted({"a": [_down("a"), UpstreamTimeout("slow", model="a"), "ok"]})
    attempts: list[Attempt] = []
    assert await _resilient().call(["a"], fn, attempts, "r1") == ("a", "ok")
    assert [x.outcome for x in attempts] == ["UpstreamError", "UpstreamTimeout", "ok"]


async def test_falls_back_and_cools_down_the_failed_model() -> None:
    r = _resilient(retries=1)
    fn = Scripted({"a": [_down("a"), _down("a")], "b": ["from b", "again b"]})
    assert await r.call(["a", "b"], fn, [], "r1") == ("b", "from b")
    assert fn.calls == ["a", "a", "b"]
    # "a" is cooling down: the next request goes straight to "b".
    assert await r.call(["a", "b"], fn, [], "r2") == ("b", "again b")
    assert fn.calls[-1] == "b" and fn.calls.count("a") == 2


async def test_non_retryable_moves_on_without_retrying() -> None:
    fn = Scripted({"a": [UpstreamError("auth", model="a", retryable=False)], "b": ["ok"]})
    assert await _resilient().call(["a", "b"], fn, [], "r") == ("b", "ok")
    assert fn.calls == ["a", "b"]


async def test_rejected_request_is_never_retried_or_rerouted() -> None:
    fn = Scripted({"a": [UpstreamRejected("bad", model="a", upstream_status=400)], "b": ["ok"]})
    with pytest.raises(UpstreamRejected):
        await _resilient().call(["a", "b"], fn, [], "r")
    assert fn.calls == ["a"]


async def test_all_fail_raises_the_last_error() -> None:
    fn = Scripted({"a": [_down("a")], "b": [UpstreamTimeout("slow", model="b")]})
    with pytest.raises(UpstreamTimeout):
        await _resilient(retries=0).call(["a", "b"], fn, [], "r")


async def test_everything_cooling_is_tried_anyway() -> None:
    r = _resilient(retries=0)
    r.cooldowns.cool("a")
    fn = Scripted({"a": ["ok"]})
    assert await r.call(["a"], fn, [], "r") == ("a", "ok")


def test_cooldown_expires() -> None:
    c = Cooldowns(0.0)
    c.cool("a")
    assert not c.cooling("a")
