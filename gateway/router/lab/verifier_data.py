"""Labelled (conversation, small answer) rows for the answer verifier.

Public sets that record the small model's (Mixtral-8x7B's) answer next to both models' grades:
- gsm8k: RouteLLM's GSM8K records (`<model>_response` columns);
- mt_bench: the answers quoted in RouteLLM's GPT-4 judgements (turn 2 gets Mixtral's own
  first answer as the assistant turn);
- rb_arc, rb_mbpp, rb_winogrande: RouterBench 0-shot `<model>|model_response`.
MMLU's records hold only correctness (no answers), so it has no verifier rows.

User labels: the router's log format (`lab/examples.py`) with the small answer as
`"answers": {"small": "..."}` (or `"answer"`), optionally `"logprobs"` (OpenAI's object or a
list of token log-probabilities) and `"second_answer"`.

Costs: RouterBench records real USD per call; elsewhere each call is priced from its tokens
(o200k/cl100k via `gateway.tokens`) at RouterBench's Mixtral rate and GPT-4-1106's list
price (`PRICES`), the prompt once per call and each model's own recorded answer as output.
"""

import ast
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway import tokens
from gateway.router.lab import public_data
from gateway.router.lab.examples import Example, parse_log_record

VERIFIER_SETS = ("gsm8k", "mt_bench", "rb_arc", "rb_mbpp", "rb_winogrande")
# USD per million tokens (input, output): Mixtral-8x7B at RouterBench's rate, GPT-4-1106-preview.
PRICES = {"small": (0.6, 0.6), "large": (10.0, 30.0)}


@dataclass(frozen=True, slots=True)
class AnswerRow:
    example: Example  # costs always set
    answer: str  # the small model's answer
    logprobs: Any = None
    second: str | None = None


def _usd(tier: str, prompt: str, answer: str) -> float:
    cin, cout = PRICES[tier]
    return (cin * tokens.count_text(prompt) + cout * tokens.count_text(answer)) / 1e6


def _priced(e: Example, prompt: str, small: str, large: str) -> Example:
    return replace(e, cost_small=_usd("small", prompt, small), cost_large=_usd("large", prompt,
                   large))  # fmt: skip


def load_gsm8k(root: Path) -> list[AnswerRow]:
    path = root / "routellm/routellm/evals/gsm8k/gsm8k_responses.csv"
    examples = public_data.load_gsm8k(root)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for e, r in zip(examples, rows, strict=True):
        small = r[f"{public_data.SMALL}_response"]
        large = r[f"{public_data.LARGE}_response"]
        out.append(AnswerRow(_priced(e, r["prompt"], small, large), small.strip()))
    return out


def _mt_answers(text: str, turn: int) -> list[str]:
    if turn == 1:
        start = text.index("[The Start of Assistant's Answer]") + 33
        return [text[start : text.index("[The End of Assistant's Answer]")].strip()]
    parts = text.split("### Assistant A:")[1:]
    return [p.split("### User:")[0].split("<|The End of Assistant A")[0].strip() for p in parts]


def load_mt_bench(root: Path) -> list[AnswerRow]:
    base = root / "routellm/routellm/evals/mt_bench"
    answers: dict[tuple[int, str, int], list[str]] = {}
    for line in (base / "judgements.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            j = json.loads(line)
            answers[(j["question_id"], j["model"], j["turn"])] = _mt_answers(
                j["user_prompt"], j["turn"]
            )
    out = []
    for e in public_data.load_mt_bench(root):
        qid, turn = int(e.group), int(e.meta["turn"])
        small = answers[(qid, public_data.SMALL, turn)]
        large = answers[(qid, public_data.LARGE, turn)]
        msgs = e.messages
        if turn == 2:  # the assistant turn the small model really wrote
            msgs = (msgs[0], {"role": "assistant", "content": small[0]}, msgs[2])
        prompt = "\n".join(str(m.get("content") or "") for m in msgs)
        priced = _priced(replace(e, messages=msgs), prompt, small[-1], large[-1])
        out.append(AnswerRow(priced, small[-1]))
    return out


def load_routerbench(root: Path, name: str) -> list[AnswerRow]:
    path = root / "routerdc/datasets/routerbench_zs" / public_data.RB_FILES[name]
    csv.field_size_limit(1 << 30)
    by_id: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            cell = row.get(f"{public_data.RB_SMALL}|model_response", "")
            if cell:
                parsed = ast.literal_eval(cell)
                by_id[row["sample_id"]] = str(parsed[-1] if isinstance(parsed, list) else parsed)
    return [
        AnswerRow(e, by_id[e.group].strip())
        for e in public_data.load_routerbench(root, name)
        if e.group in by_id
    ]


def load(name: str, root: Path | None = None) -> list[AnswerRow]:
    root = root or public_data.default_data_dir()
    if name == "gsm8k":
        return load_gsm8k(root)
    if name == "mt_bench":
        return load_mt_bench(root)
    if name in public_data.RB_FILES:
        return load_routerbench(root, name)
    raise ValueError(f"no recorded small answers for {name!r}; sets: {', '.join(VERIFIER_SETS)}")


def read_labels(path: Path, dataset: str = "logs") -> list[AnswerRow]:
    """User labels with the small answer (module docstring); rows without one are skipped."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            answer = small_answer(record)
            if answer is None:
                continue
            e = parse_log_record(record, f"{path}:{number}", dataset)
            prompt = "\n".join(str(m.get("content") or "") for m in e.messages)
            if e.cost_small is None or e.cost_large is None:
                large = (record.get("answers") or {}).get("large") or answer
                e = _priced(e, prompt, answer, str(large))
            second = record.get("second_answer")
            out.append(AnswerRow(e, answer, record.get("logprobs"),
                                 second if isinstance(second, str) else None))  # fmt: skip
    return out


def small_answer(record: dict[str, Any]) -> str | None:
    answers = record.get("answers")
    if isinstance(answers, dict) and isinstance(answers.get("small"), str):
        return str(answers["small"])
    answer = record.get("answer")
    return answer if isinstance(answer, str) else None


def load_all(names: Sequence[str], root: Path | None = None) -> list[AnswerRow]:
    return [row for name in names for row in load(name, root)]
