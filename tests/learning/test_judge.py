"""The pairwise judge: both orders, position bias cancelled, ties and failures recorded."""

import asyncio

from gateway.learning import judge

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]


def scripted(*replies: str | Exception) -> tuple[judge.Ask, list[list[dict[str, str]]]]:
    seen: list[list[dict[str, str]]] = []
    queue = list(replies)

    async def ask(messages: list[dict[str, str]]) -> tuple[str, str]:
        seen.append(messages)
        reply = queue.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply, "0.001"

    return ask, seen


def run(ask: judge.Ask, reference: str | None = None) -> judge.Judgement:
    return asyncio.run(judge.judge(ask, MSGS, "four", "4", reference))


def test_both_orders_are_asked_with_the_rubric_and_the_answers_swapped() -> None:
    ask, seen = scripted("A is right. [[A]]", "B is right. [[B]]")
    got = run(ask)
    assert got.verdict == "small_better" and got.small_score == 1.0 and got.small_acceptable
    assert got.orders == ("small", "small")
    assert got.cost_usd == "0.002"
    first, second = (m[1]["content"] for m in seen)
    assert seen[0][0]["content"] == judge.RUBRIC
    assert first.index("four") < first.index("\n4") and second.index("\n4") < second.index("four")


def test_position_bias_cancels_to_a_tie() -> None:
    ask, _ = scripted("[[A]]", "[[A]]")  # the judge always picks the first answer
    got = run(ask)
    assert got.verdict == "tie" and got.small_score == 0.5 and got.small_acceptable


def test_large_better_in_both_orders_makes_the_small_answer_unacceptable() -> None:
    ask, _ = scripted("[[B]]", "[[A]]")
    got = run(ask)
    assert got.verdict == "large_better" and got.small_score == 0.0
    assert got.small_acceptable is False


def test_a_tie_and_a_large_win_lean_large() -> None:
    ask, _ = scripted("[[C]]", "[[A]]")
    got = run(ask)
    assert got.verdict == "large_better" and got.small_score == 0.25


def test_judge_failures_are_recorded_as_such() -> None:
    ask, _ = scripted("I cannot decide", "[[A]]")
    assert run(ask).verdict == "judge_failed"
    ask, _ = scripted("[[A]]", RuntimeError("upstream down"))
    got = run(ask)
    assert got.verdict == "judge_failed" and got.small_score is None
    assert got.small_acceptable is None and got.orders == ("small", "failed")


def test_the_last_verdict_mark_counts_and_a_reference_is_shown() -> None:
    assert judge.parse("maybe [[A]]... on reflection [[B]]") == "B"
    assert judge.parse("[[D]]") is None
    ask, seen = scripted("[[C]]", "[[C]]")
    run(ask, reference="4")
    assert "[Reference answer]\n4" in seen[0][1]["content"]
