import threading
from typing import Any

import pytest

from gateway.router import Scorer, load_scorer
from gateway.router.artifact import DEFAULT_NAME
from gateway.router.heuristic import HeuristicScorer

SHAPES: list[tuple[list[dict[str, Any]], bool]] = [
    ([{"role": "user", "content": "What is the capital of France?"}], False),
    ([{"role": "user", "content": [{"type": "text", "text": "Prove that sqrt(2) is irrational."}]}],
     False),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": None}], False),
    ([{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
      {"role": "tool", "content": "{\"t\": 21}"},
      {"role": "user", "content": "And tomorrow?"}], True),
    ([], False),
    ([{"role": "user", "content": "word " * 5000}], False),
]  # fmt: skip


def test_learned_scorer_satisfies_protocol(learned_scorer: Scorer) -> None:
    assert isinstance(learned_scorer.name, str)
    assert learned_scorer.blocking is True
    assert load_scorer(DEFAULT_NAME) is learned_scorer  # loaded once, shared
    assert load_scorer("default") is learned_scorer


@pytest.mark.parametrize(("messages", "tools"), SHAPES)
def test_learned_scorer_message_shapes(
    learned_scorer: Scorer, messages: list[dict[str, Any]], tools: bool
) -> None:
    score = learned_scorer.score(messages, tools)
    assert isinstance(score, float)
    assert 0.0 <= score <= 1.0


def test_harder_prompt_scores_higher(learned_scorer: Scorer) -> None:
    easy = learned_scorer.score([{"role": "user", "content": "Say hello."}])
    hard = learned_scorer.score([{"role": "user", "content": (
        "A train leaves at 3pm at 60 mph and another at 4pm at 80 mph from the same station. "
        "At what time does the second catch the first? Show each step of the calculation."
    )}])  # fmt: skip
    assert hard > easy


def test_thread_safe_and_deterministic(learned_scorer: Scorer) -> None:
    messages = [{"role": "user", "content": "Explain quicksort's worst case."}]
    expected = learned_scorer.score(messages)
    results: list[float] = []

    def work() -> None:
        results.extend(learned_scorer.score(messages) for _ in range(5))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx([expected] * 20, abs=1e-6)


def test_heuristic_still_available() -> None:
    assert isinstance(load_scorer("heuristic"), HeuristicScorer)
    with pytest.raises(ValueError, match="unknown router"):
        load_scorer("nope")


def test_semantic_cache_reuses_the_routers_embedding(learned_scorer) -> None:  # type: ignore[no-untyped-def]
    """The router embeds the last user turn; the semantic cache asks for the same text next,
    and must get it from the per-process memo instead of running the model again."""
    from gateway.cache.partition import last_user_turn
    from gateway.router.embedder import _MEMO, DEFAULT_VARIANT, MAX_TOKENS, resolve_model

    question = "How do I reverse a linked list in place, in C?"
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": question}]}  # fmt: skip
    learned_scorer.score(body["messages"], False)
    turn = last_user_turn(body)
    assert turn == question
    # the key the cache's default MiniLMEmbedder() looks up: same model, same token limit
    assert _MEMO.get((resolve_model(None, DEFAULT_VARIANT)[1], MAX_TOKENS, turn)) is not None


def test_blocking_scorers_run_on_the_model_threads_at_most_runs_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Concurrent decisions run the model at most FRUGAL_ROUTER_RUNS at a time, on the model
    threads (memory: each ONNX run in flight holds its own activations; model_thread.py)."""
    import asyncio
    import time

    from gateway.router import model_thread
    from gateway.router.model_thread import DEFAULT_RUNS, ENV, run_model, runs_from_env

    seen: list[str] = []
    running, peak = 0, 0
    lock = threading.Lock()

    def score() -> float:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            seen.append(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            running -= 1
        return 0.5

    async def many() -> list[float]:
        return await asyncio.gather(*(run_model(score) for _ in range(12)))

    assert asyncio.run(many()) == [0.5] * 12
    assert peak == DEFAULT_RUNS and all(n.startswith("frugal-model") for n in seen)
    assert model_thread._POOL._max_workers == DEFAULT_RUNS
    for raw, runs in (("3", 3), ("0", DEFAULT_RUNS), ("many", DEFAULT_RUNS), ("", DEFAULT_RUNS)):
        monkeypatch.setenv(ENV, raw)
        assert runs_from_env() == runs
