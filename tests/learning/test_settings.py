"""A route's `learning:`: off by default, typed, unknown keys and unknown judges refused."""

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import Settings

MODELS = {
    "s": {"model": "s", "base_url": "http://127.0.0.1:1/v1", "tier": "small",
          "price": {"input_per_mtok": 0, "output_per_mtok": 0}},
    "l": {"model": "l", "base_url": "http://127.0.0.1:1/v1", "tier": "large",
          "price": {"input_per_mtok": 0, "output_per_mtok": 0}},
    "e": {"model": "e", "base_url": "http://127.0.0.1:1/v1", "kind": "embedding",
          "price": {"input_per_mtok": 0, "output_per_mtok": 0}},
}  # fmt: skip


def route(**learning: Any) -> Settings:
    r = {"tiers": ["small", "large"], "learning": learning} if learning else {"tiers": ["small"]}
    return Settings(models=MODELS, routes={"auto": r})


def test_off_unless_configured_and_defaults() -> None:
    assert route().routes["auto"].learning is None
    cfg = route(judge="l").routes["auto"].learning
    assert cfg is not None and cfg.sample_share == 0.0 and cfg.retention_days == 30


@pytest.mark.parametrize(
    ("learning", "words"),
    [
        ({"judge": "nope"}, "learning.judge"),
        ({"judge": "e"}, "not a chat model"),
        ({"sample_share": 1.5}, "sample_share"),
        ({"daily_budget_usd": "-1"}, "daily_budget_usd"),
        ({"sampel_share": 0.1}, "sampel_share"),
    ],
)
def test_mistakes_are_refused_by_name(learning: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        route(**learning)
