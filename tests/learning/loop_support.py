"""Data and fakes for the label-loop test: real prompts from the public routing data, a
deployment whose small model is a maths specialist (the public prior says the opposite), and a
scripted judge that answers from each prompt's truth."""

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.servers import SHARED

MMLU = SHARED / "routing-data/routellm/routellm/evals/mmlu/responses"
SMALL_SAYS = "The small model's answer."
LARGE_SAYS = "The large model's answer."
MATH, RELIGION = "elementary_mathematics", "world_religions"
_ANSWER = re.compile(r"\[Assistant A's answer\]\n(.*?)\n\n\[Assistant B's answer\]", re.S)


def rows(subject: str, start: int, n: int) -> list[tuple[str, bool]]:
    """(prompt, GPT-4 was right) for `n` rows of an MMLU subject from row `start`."""
    with (MMLU / f"mmlu_{subject}.csv").open(encoding="utf-8") as handle:
        data = list(csv.reader(handle))[1:]
    return [(r[0], r[2] == "True") for r in data[start : start + n]]


def truth(subject: str, large_right: bool) -> str:
    """Which answer the deployment's judge prefers: the small model (a maths specialist) is as
    good as the large one on arithmetic; on world religions it fails where the large one is
    right (where both fail, a tie)."""
    if subject == MATH:
        return "tie"
    return "large" if large_right else "tie"


def prompts(start: int, n: int) -> list[tuple[str, str]]:
    """(prompt, truth) interleaved from both subjects."""
    out = []
    for (m, m_ok), (r, r_ok) in zip(rows(MATH, start, n), rows(RELIGION, start, n), strict=True):
        out += [(m, truth(MATH, m_ok)), (r, truth(RELIGION, r_ok))]
    return out


class Judge:
    """The fake upstream's `reply`: the fake small and large models answer with their name, the
    judge (model id fake-judge) by the script; prompts in `fail` get an unreadable verdict."""

    def __init__(self, script: dict[str, str], fail: set[str]) -> None:
        self.key = {self._k(p): t for p, t in script.items()}
        self.fail = {self._k(p) for p in fail}
        self.calls = 0
        self.seen: list[str] = []  # every judge prompt's user message

    @staticmethod
    def _k(text: str) -> str:
        return " ".join(text.split())[:120]

    def __call__(self, body: dict[str, Any]) -> str:
        model = body["model"]
        if model == "fake-small":
            return "" if "[empty]" in body["messages"][-1]["content"] else SMALL_SAYS
        if model == "fake-large":
            return LARGE_SAYS
        self.calls += 1
        content = body["messages"][-1]["content"]
        self.seen.append(content)
        question = content.split("[Conversation]\nuser: ", 1)[1]
        key = self._k(question)
        found = next((k for k in self.key if key.startswith(k)), None)
        if found is None or found in self.fail:
            return "I cannot tell."
        answer_a = _ANSWER.search(content)
        assert answer_a is not None
        small_is_a = answer_a.group(1) == SMALL_SAYS
        want = self.key[found]
        if want == "tie":
            return "Both are fine. [[C]]"
        return "[[A]]" if (want == "small") == small_is_a else "[[B]]"


def apgr(scores: list[float], labels: list[str]) -> float:
    from gateway.router.lab.metrics import Outcomes
    from gateway.router.lab.metrics import apgr as area

    q_small = np.array([0.0 if t == "large" else 1.0 for t in labels])
    return area(np.asarray(scores, dtype=np.float64), Outcomes(q_small, np.ones(len(labels))))


def config(fake_url: str, redis_url: str, policies: Path, key_env: str) -> dict[str, Any]:
    def model(upstream: str, tier: str, inp: str, out: str) -> dict[str, Any]:
        return {"provider": "openai", "model": upstream, "base_url": fake_url, "tier": tier,
                "api_key_env": key_env,
                "price": {"input_per_mtok": inp, "output_per_mtok": out},
                "timeouts": {"connect_s": 2, "read_s": 10}}  # fmt: skip

    return {
        "redis_url": redis_url,
        "policies_dir": str(policies),
        "models": {
            "small-a": model("fake-small", "small", "0.10", "0.20"),
            "large-a": model("fake-large", "large", "2.00", "8.00"),
            "judge-a": model("fake-judge", "medium", "1.00", "4.00"),
        },
        "routes": {
            "auto": {
                "tiers": ["small", "large"],
                "router": "default",
                "threshold": 0.4,
                "learning": {
                    "sample_share": 1.0,
                    "daily_budget_usd": "5.00",
                    "judge": "judge-a",
                    "retention_days": 7,
                },
            }
        },
        "resilience": {"retries": 1, "backoff_s": 0.01},
    }
