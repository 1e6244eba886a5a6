"""The cascade's learned answer check: P(the large tier's answer would be better) for a
conversation and the small tier's answer, from cheap signals (gateway/router/README.md,
"The answer verifier"). Serving is numpy only, plus the router's MiniLM embedder when the
artifact uses the `embedding` signal group; training lives in `lab/verifier_train.py`.

Signal groups (each measured alone in the README):
- logprob: mean and minimum token log-probability, mean entropy over the returned top
  log-probabilities (where the upstream returns them: llama.cpp does);
- agreement: a second sampled small answer agrees with the first (same final number or
  option letter, else word overlap); optional, it costs a second small call;
- length: answer length, and answer length against the prompt's;
- hedging: refusal and hedging cues;
- format: what the prompt asks for (math, multiple choice, code) and whether the answer has
  it: a final number; arithmetic `a op b = c` steps that hold; one option letter; a code block
  that parses with `ast` as Python;
- math_check: does a math answer fit its question: the share of the question's numbers it uses,
  numbers it introduces from nowhere, whether its final number is its last step's result or one
  of the question's numbers, the final number's size against the question's, whether it names
  the unit, money or percent asked for;
- choice_check: which option a multiple-choice answer picked (first, last, longest, its words'
  overlap with the question against the other options');
- code_check: the shape of a Python answer (a `return`, functions defined and used, loops,
  imports, lines, a usage example, a function name from the prompt's words);
- embedding: the MiniLM embedding of the answer and its cosine with the prompt's.
"""

import ast
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.conversation import parse
from gateway.router.featurize import embedding_text
from gateway.router.heuristic import router_view
from gateway.router.resources import ARTIFACTS_DIR

F64 = npt.NDArray[np.float64]
DEFAULT_VERIFIER = "verifier-v1"
VIEW_CHARS = 32 * 1024
TOP_LOGPROBS = 5  # what the cascade asks the small tier for when the verifier reads entropy

GROUPS: dict[str, tuple[str, ...]] = {
    "logprob": ("lp_present", "lp_mean", "lp_min", "lp_entropy", "lp_low_share"),
    "agreement": ("agree_present", "agree"),
    "length": ("log_answer_chars", "log_length_ratio", "log_answer_lines", "truncated"),
    "hedging": ("refusal", "hedges", "asks_back"),
    "format": (
        "kind_math", "kind_choice", "kind_code", "final_number", "math_without_number",
        "final_not_integer", "final_negative", "final_marked", "arith_steps", "arith_wrong",
        "choice_letter", "choice_without_letter", "code_block", "python_parses",
        "code_not_python",
    ),
    "math_check": (
        "q_numbers_used", "foreign_share", "foreign_any", "final_is_last_result",
        "final_in_question", "final_log_ratio", "final_in_body", "steps_per_number",
        "asked_unit_restated", "money_restated", "percent_used",
    ),
    "choice_check": ("mc_first", "mc_last", "mc_len_rank", "mc_longest", "mc_overlap"),
    "code_check": (
        "code_return", "code_defs", "code_lines", "code_loops", "code_imports", "code_example",
        "code_calls_def", "code_share", "code_print", "code_name_match",
    ),
}  # fmt: skip
EMBEDDING_GROUP = "embedding"
KINDS = ("kind_math", "kind_choice", "kind_code")


def with_interactions(x: F64, columns: Sequence[str]) -> F64:
    """The signals, then the signals times each kind of prompt (math, multiple choice, code,
    other): a wrong arithmetic step or a missing option letter means something else per kind."""
    kinds = np.stack([x[:, columns.index(k)] for k in KINDS], axis=1)
    kinds = np.concatenate([kinds, 1.0 - kinds.sum(axis=1, keepdims=True)], axis=1)
    return np.concatenate([x, *(x * kinds[:, [j]] for j in range(kinds.shape[1]))], axis=1)


_REFUSAL = re.compile(
    r"^\s*(?:I'm sorry|I am sorry|Sorry|I apologi[sz]e|As an AI|I can(?:no|')t (?:help|assist|"
    r"answer|provide|do)|I(?: am|'m) (?:not able|unable) to)",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:I think|I believe|probably|possibly|perhaps|might be|may be|not sure|unsure|"
    r"it depends|unclear|cannot be determined|can't be determined|not enough information|"
    r"assuming|approximately|I'm not certain|it seems)\b",
    re.IGNORECASE,
)
_FINAL_MARK = re.compile(
    r"####|\\boxed|\b(?:the (?:final )?answer is|final answer|therefore|thus|in total)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_NUM = r"\(?\$?-?\d[\d,]*(?:\.\d+)?\)?"
_OP = "[-+*/x\u00d7\u00f7]"  # also the multiplication and division signs
_ARITH = re.compile(
    rf"((?:{_NUM}\s*{_OP}\s*)+{_NUM})\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\s*{_OP}\s*\d)"
)
# Every character an `_ARITH` match (or its lookahead) can read. `_ARITH` is quadratic in the
# length of a run of these characters, so it only ever sees runs that hold an `=` and are at
# most ARITH_PIECE long (longer runs are cut at their line ends; a line longer than that is not
# checked): the same matches as over the whole text for any answer a model writes, linear time
# for "1+1+1+..." or a megabyte of digits.
_ARITH_RUN = re.compile(r"[-+*/x\u00d7\u00f7\d,.()$=\s]+")
ARITH_PIECE = 200
_SIGNS = str.maketrans({"x": "*", "\u00d7": "*", "\u00f7": "/"})
_OPS = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__,
        ast.Div: float.__truediv__}  # fmt: skip
_MATH_PROMPT = re.compile(
    r"\b(?:how (?:many|much)|calculate|compute|what is the (?:total|sum|difference|product)|"
    r"solve|percent|(?<!\d)\d+\s*[-+*/]\s*\d)",  # starts at a number's first digit: linear
    re.IGNORECASE,
)
# One line's option letter; blank space before it may not cross a line end (that made the
# search quadratic on a run of newlines).
_OPTIONS = re.compile(r"^[^\S\n]*\(?([A-E])[).:]\s", re.MULTILINE)
# Each optional part takes its own trailing space: three `\s*` in a row (the pattern as trained)
# split a run of N spaces O(N^2) ways before failing (37 ms for 200 characters).
_LETTER = re.compile(
    r"^\W*\(?([A-E])\b[).:]?|\b(?:answer|option)\s*(?:is\s*)?(?::\s*)?\(?([A-E])\b"
)
_CODE_PROMPT = re.compile(
    r"\b(?:write (?:a|an) (?:python )?(?:function|program|script|class)|python|def |implement)",
    re.IGNORECASE,
)
_BLOCK = re.compile(r"```([A-Za-z0-9_+-]*)\s*\n(.*?)(?:```|$)", re.DOTALL)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def final_number(text: str) -> float | None:
    """The answer's final number (after `####` when present), commas and `$` removed."""
    tail = text.rsplit("####", 1)[-1] if "####" in text else text
    found = _NUMBER.findall(tail)
    if not found:
        return None
    try:
        value = float(found[-1].replace(",", "").replace("$", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None  # 400 digits are no answer, and not inf


def choice_letter(text: str) -> str | None:
    match = _LETTER.search(text.strip()[:200])
    if match is None:
        return None
    return match.group(1) or match.group(2)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def _arith_pieces(text: str) -> list[str]:
    """The runs of `_ARITH_RUN` characters that hold an `=`, each at most ARITH_PIECE long."""
    pieces: list[str] = []
    for run in _ARITH_RUN.findall(text):
        if "=" not in run:
            continue
        if len(run) <= ARITH_PIECE:
            pieces.append(run)
        else:
            pieces += [ln for ln in run.split("\n") if "=" in ln and len(ln) <= ARITH_PIECE]
    return pieces


def _arith_steps(text: str) -> list[tuple[str, str]]:
    return [step for piece in _arith_pieces(text) for step in _ARITH.findall(piece)]


def _arith(text: str) -> tuple[int, int]:
    """(checked, wrong) among the answer's arithmetic steps `expression = number` (chains such
    as `3 + 4 * 2 = 11` whole; 1% tolerance; unbalanced or odd expressions are skipped)."""
    checked = wrong = 0
    for expr, result in _arith_steps(text[:20_000]):
        clean = re.sub(r"[$,]", "", expr).translate(_SIGNS)
        try:
            value = _evaluate(ast.parse(clean, mode="eval").body)
            z = float(result.replace(",", ""))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
            continue
        checked += 1
        if abs(value - z) > max(0.01 * abs(value), 0.011):
            wrong += 1
    return checked, wrong


def _python(text: str) -> tuple[float, float, float]:
    """(has a code block, a block parses as Python, a block is in another language)."""
    blocks = _BLOCK.findall(text)
    if not blocks:
        return 0.0, 0.0, 0.0
    parses = other = 0.0
    for lang, code in blocks:
        if lang and lang.lower() not in ("python", "py", "python3"):
            other = 1.0
            continue
        try:
            ast.parse(code)
            parses = 1.0
        except (SyntaxError, ValueError):
            pass
    return 1.0, parses, other


def _logprob_values(logprobs: Any) -> tuple[list[float], list[list[float]]]:
    """Token log-probabilities and each token's top alternatives, from an OpenAI `logprobs`
    object (chat `content`, or completions `token_logprobs`/`top_logprobs`) or a plain list."""
    if isinstance(logprobs, list):
        return [float(v) for v in logprobs if isinstance(v, int | float)], []
    if not isinstance(logprobs, Mapping):
        return [], []
    values: list[float] = []
    tops: list[list[float]] = []
    content = logprobs.get("content")
    if isinstance(content, list):
        for t in content:
            if isinstance(t, Mapping) and isinstance(t.get("logprob"), int | float):
                values.append(float(t["logprob"]))
                alts = t.get("top_logprobs")
                if isinstance(alts, list) and alts:
                    tops.append([float(a["logprob"]) for a in alts if isinstance(a, Mapping)
                                 and isinstance(a.get("logprob"), int | float)])  # fmt: skip
    elif isinstance(logprobs.get("token_logprobs"), list):
        values = [float(v) for v in logprobs["token_logprobs"] if isinstance(v, int | float)]
        for alt in logprobs.get("top_logprobs") or ():
            if isinstance(alt, Mapping):
                tops.append([float(v) for v in alt.values() if isinstance(v, int | float)])
    return values, tops


def _entropy(top: list[float]) -> float:
    """Entropy over the top alternatives plus the rest of the mass as one outcome."""
    probs = [math.exp(v) for v in top]
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log(p) for p in [*probs, rest] if p > 1e-12)


def _agreement(answer: str, second: str, kind_math: bool, kind_choice: bool) -> float:
    if kind_math:
        a, b = final_number(answer), final_number(second)
        if a is not None and b is not None:
            return float(abs(a - b) < 1e-9)
    if kind_choice:
        a2, b2 = choice_letter(answer), choice_letter(second)
        if a2 is not None and b2 is not None:
            return float(a2 == b2)
    wa, wb = _words(answer), _words(second)
    return len(wa & wb) / max(1, len(wa | wb))


# --- does the answer fit its question (math_check, choice_check, code_check) -------------

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "hundred": 100, "thousand": 1000,
    "dozen": 12, "twice": 2, "double": 2, "triple": 3, "thrice": 3, "half": 0.5,
    "quarter": 0.25, "third": 3, "fourth": 4, "fifth": 5, "once": 1,
    "hour": 60, "hours": 60, "minute": 60, "minutes": 60, "day": 24, "days": 24, "week": 7,
    "weeks": 7, "month": 12, "months": 12, "year": 12, "years": 12,
}  # fmt: skip
# Constants an answer may bring in without the question stating them.
_COMMON = {0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 12.0, 24.0, 30.0, 52.0, 60.0, 100.0,
           365.0, 1000.0, 0.5, 0.25, 0.01}  # fmt: skip
_PLAIN_NUMBER = re.compile(r"(?<![\w.])\$?(\d[\d,]{0,30}(?:\.\d{1,12})?|\.\d{1,12})")
_RESULT = re.compile(r"=\s*\$?(-?\d[\d,]{0,30}(?:\.\d{1,12})?)")
_PERCENT = re.compile(r"(\d[\d,]{0,30}(?:\.\d{1,12})?)\s*(?:%|percent)")
_HOW_MANY = re.compile(r"how (?:many|much) ([a-z]+)")
_MONEY = re.compile(r"\$|\bdollars?\b|\bcents?\b")
MAX_NUMBERS = 400  # numbers read per text; pairs of the question's first 30


def _numbers(text: str) -> list[float]:
    out = []
    for m in _PLAIN_NUMBER.findall(text)[:MAX_NUMBERS]:
        try:
            out.append(float(m.replace(",", "")))
        except ValueError:
            continue
    return out


def _key(x: float) -> float:
    return round(x, 4)


def _math_check(prompt: str, answer: str, final: float | None) -> dict[str, float]:
    """Does a math answer fit its question (GROUPS["math_check"])."""
    given = _numbers(prompt)
    known = {_key(x) for x in given}
    known |= {float(_NUMBER_WORDS[w]) for w in re.findall(r"[a-z]+", prompt.lower()[-4000:])
              if w in _NUMBER_WORDS}  # fmt: skip
    known |= {_key(float(p.replace(",", "")) / 100) for p in _PERCENT.findall(prompt)}
    results = {_key(x) for x in _numbers(" ".join(_RESULT.findall(answer)))}
    pairs = sorted(known)[:30]
    derived = {_key(f(a, b)) for a in pairs for b in pairs
               for f in (float.__add__, float.__mul__, float.__sub__)}  # fmt: skip
    derived |= {_key(a / b) for a in pairs for b in pairs if b}
    used = _numbers(answer)
    used_keys = {_key(x) for x in used}
    foreign = [x for x in used if _key(x) not in known and _key(x) not in results
               and x not in _COMMON and _key(x) not in derived]  # fmt: skip
    distinct = {_key(x) for x in given}
    steps = _RESULT.findall(answer)
    last = _numbers(steps[-1])[-1:] if steps else []
    body = answer.rsplit("####", 1)[0]
    top = max((abs(x) for x in given), default=1.0)
    question = re.split(r"(?<=[.!])\s+", prompt.strip()[-600:].lower())[-1]
    asked = _HOW_MANY.search(question)
    lines = [ln for ln in answer.strip().splitlines() if ln.strip() and "####" not in ln]
    closing = lines[-1].lower() if lines else ""
    return {
        "q_numbers_used": len(distinct & used_keys) / len(distinct) if distinct else 1.0,
        "foreign_share": len(foreign) / max(1, len(used)),
        "foreign_any": float(bool(foreign)),
        "final_is_last_result": float(final is not None and bool(last)
                                      and _key(final) == _key(last[0])),
        "final_in_question": float(final is not None and _key(final) in distinct),
        "final_log_ratio": 0.0 if final is None else max(-5.0, min(5.0, math.log10(
            abs(final) + 1) - math.log10(top + 1))),
        "final_in_body": float(final is not None and _key(abs(final)) in
                               {_key(x) for x in _numbers(body)}),
        "steps_per_number": math.log1p(len(steps)) - math.log1p(len(distinct)),
        "asked_unit_restated": float(asked is not None and asked.group(1) in closing),
        "money_restated": float(bool(_MONEY.search(prompt)) and bool(_MONEY.search(closing))),
        "percent_used": float(bool(_PERCENT.search(prompt)) and ("%" in answer
                                                                 or "percent" in answer)),
    }  # fmt: skip


_OPTION_TEXT = re.compile(r"^[^\S\n]*\(?([A-E])[).:][^\S\n]*(.*)$", re.MULTILINE)
_LONG_WORD = re.compile(r"[a-z]{4,}")


def _choice_check(prompt: str, letter: str | None) -> dict[str, float]:
    """Which option the answer picked, among the prompt's last question's options."""
    out = dict.fromkeys(GROUPS["choice_check"], 0.0)
    options: dict[str, str] = {}
    for key, text in _OPTION_TEXT.findall(prompt):
        if key == "A":  # a few-shot prompt: the last question's options count
            options = {}
        options[key] = text.strip()
    if letter is None or letter not in options or len(options) < 2:
        return out
    keys = sorted(options)
    lengths = {k: len(v) for k, v in options.items()}
    head = prompt[: prompt.rfind(f"\n{keys[0]})")].rsplit("\n\n", 1)[-1].lower()
    stem = set(_LONG_WORD.findall(head))

    def overlap(text: str) -> float:
        words = set(_LONG_WORD.findall(text.lower()))
        return len(words & stem) / max(1, len(words))

    others = [overlap(options[k]) for k in keys if k != letter]
    out.update(
        mc_first=float(letter == keys[0]), mc_last=float(letter == keys[-1]),
        mc_len_rank=sum(lengths[letter] > v for v in lengths.values()) / (len(keys) - 1),
        mc_longest=float(lengths[letter] == max(lengths.values())),
        mc_overlap=overlap(options[letter]) - sum(others) / len(others),
    )  # fmt: skip
    return out


def _code_check(prompt: str, answer: str) -> dict[str, float]:
    """The shape of the answer's Python (its untagged or python-tagged blocks)."""
    out = dict.fromkeys(GROUPS["code_check"], 0.0)
    code = "\n".join(c for lang, c in _BLOCK.findall(answer)
                     if not lang or lang.lower() in ("python", "py", "python3"))  # fmt: skip
    if not code:
        return out
    try:
        nodes = list(ast.walk(ast.parse(code)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        nodes = []
    funcs = [n.name for n in nodes if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    funcs = funcs[:20]  # each is looked up in the code once
    returns = any(isinstance(n, ast.Return) for n in nodes)
    words = set(re.findall(r"[a-z]{3,}", prompt.lower()))
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    out.update(
        code_return=float(returns), code_defs=math.log1p(len(funcs)),
        code_lines=math.log1p(len(lines)),
        code_loops=math.log1p(len(re.findall(r"\b(?:for|while)\b", code))),
        code_imports=float(bool(re.search(r"^\s*(?:import|from)\s", code, re.MULTILINE))),
        code_example=float(">>>" in answer or "print(" in code or "assert" in code),
        code_calls_def=float(any(f in code.split(f"def {f}", 1)[-1] for f in funcs)),
        code_share=len(code) / max(1, len(answer)),
        code_print=float("print(" in code and not returns),
        code_name_match=max((len(set(f.lower().split("_")) & words) / len(f.split("_"))
                             for f in funcs), default=0.0),
    )  # fmt: skip
    return out


def signals(
    messages: Sequence[Mapping[str, Any]],
    answer: str,
    logprobs: Any = None,
    second: str | None = None,
    finish_reason: str | None = None,
) -> dict[str, float]:
    """Every scalar signal of GROUPS for one (conversation, small answer). The checks read at
    most a 32 KiB head and tail of the answer (the lengths are the true ones)."""
    chars = len(answer)
    if chars > VIEW_CHARS:
        answer = answer[: VIEW_CHARS * 3 // 4] + "\n" + answer[-VIEW_CHARS // 4 :]
    conv = parse(messages)
    prompt = router_view(conv.core or conv.system)  # a bounded head and tail of client text
    out: dict[str, float] = {}
    values, tops = _logprob_values(logprobs)
    out["lp_present"] = float(bool(values))
    out["lp_mean"] = sum(values) / len(values) if values else 0.0
    out["lp_min"] = max(min(values), -20.0) if values else 0.0
    out["lp_entropy"] = sum(_entropy(t) for t in tops) / len(tops) if tops else 0.0
    out["lp_low_share"] = sum(v < -2.3 for v in values) / len(values) if values else 0.0
    options = set(_OPTIONS.findall(prompt))
    kind_choice = len(options) >= 2
    kind_code = not kind_choice and bool(_CODE_PROMPT.search(prompt))
    kind_math = not kind_choice and not kind_code and bool(_MATH_PROMPT.search(prompt))
    out["agree_present"] = float(second is not None)
    out["agree"] = 0.0 if second is None else _agreement(answer, second, kind_math, kind_choice)
    out["log_answer_chars"] = math.log1p(chars)
    out["log_length_ratio"] = math.log((chars + 1) / (conv.last_user_chars + 1))
    out["log_answer_lines"] = math.log1p(answer.count("\n"))
    out["truncated"] = float(finish_reason == "length")
    out["refusal"] = float(bool(_REFUSAL.match(answer)))
    out["hedges"] = min(len(_HEDGE.findall(answer)), 5) / 5.0
    out["asks_back"] = float(answer.rstrip().endswith("?"))
    final = final_number(answer)
    has_number = final is not None
    steps, wrong = _arith(answer)
    letter = choice_letter(answer)
    block, parses, other = _python(answer)
    out.update(
        kind_math=float(kind_math), kind_choice=float(kind_choice), kind_code=float(kind_code),
        final_number=float(has_number), math_without_number=float(kind_math and not has_number),
        final_not_integer=float(final is not None and abs(final - round(final)) > 1e-9),
        final_negative=float(final is not None and final < 0),
        final_marked=float(bool(_FINAL_MARK.search(answer[-2000:]))),
        arith_steps=math.log1p(steps), arith_wrong=float(min(wrong, 3)),
        choice_letter=float(letter is not None and (not options or letter in options)),
        choice_without_letter=float(kind_choice and (letter is None or letter not in options)),
        code_block=block, python_parses=parses,
        code_not_python=float(kind_code and (other > 0 or (block > 0 and parses == 0))),
    )  # fmt: skip
    for group in ("math_check", "choice_check", "code_check"):
        out.update(dict.fromkeys(GROUPS[group], 0.0))
    if kind_math:
        out.update(_math_check(prompt, answer, final))
    if kind_choice:
        out.update(_choice_check(prompt, letter))
    if kind_code:
        out.update(_code_check(prompt, answer))
    return out


def logit(p: F64) -> F64:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0 - 1e-9)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Mix:
    """The cascade's mixed check (`cascade.mix`): sigmoid(w x z(logit(router score)) +
    (1 - w) x z(logit(verifier score))), z standardised with the out-of-fold scores of the
    public rows; the router is the prompt router it was fitted for (lab/verifier_mix.py). The
    result ranks like the weighted sum; it is no probability."""

    router: str  # the prompt router (artifact name) whose scores were standardised
    weight: float  # the fitted weight (`mix: auto`)
    router_mean: float
    router_std: float
    verifier_mean: float
    verifier_std: float
    threshold: float  # the fitted weight's threshold (quality floor 0.95, out-of-fold)
    thresholds: Mapping[str, float] | None = None  # per grid weight ("0.35": ...)
    calibration: Mapping[str, Any] | None = None  # the fitted weight's

    def with_weight(self, weight: float, recorded: bool = False) -> "Mix":
        """This mix at another weight (`recorded`: with that weight's recorded threshold)."""
        threshold = self.threshold_for(weight) if recorded else self.threshold
        return Mix(self.router, weight, self.router_mean, self.router_std, self.verifier_mean,
                   self.verifier_std, threshold, self.thresholds)  # fmt: skip

    def at(self, threshold: float) -> "Mix":
        return Mix(self.router, self.weight, self.router_mean, self.router_std,
                   self.verifier_mean, self.verifier_std, threshold, self.thresholds,
                   self.calibration)  # fmt: skip

    def threshold_for(self, weight: float) -> float:
        """The recorded threshold of a weight (the fitted one's, or one on the 0.05 grid)."""
        if abs(weight - self.weight) < 1e-9:
            return self.threshold
        found = (self.thresholds or {}).get(f"{weight:.2f}")
        if found is None or abs(round(weight, 2) - weight) > 1e-9:
            raise ValueError(f"no recorded threshold for mix weight {weight:g} (recorded: "
                             f"{', '.join(sorted(self.thresholds or {}))})")  # fmt: skip
        return float(found)

    def scores(self, router: F64, verifier: F64) -> F64:
        zr = (logit(router) - self.router_mean) / (self.router_std + 1e-9)
        zv = (logit(verifier) - self.verifier_mean) / (self.verifier_std + 1e-9)
        z = self.weight * zr + (1.0 - self.weight) * zv
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def score(self, router: float, verifier: float) -> float:
        return float(self.scores(np.array([router]), np.array([verifier]))[0])

    def to_json(self) -> dict[str, Any]:
        return {"router": self.router, "weight": self.weight, "router_mean": self.router_mean,
                "router_std": self.router_std, "verifier_mean": self.verifier_mean,
                "verifier_std": self.verifier_std, "threshold": self.threshold,
                "thresholds": dict(self.thresholds or {}),
                "calibration": dict(self.calibration or {})}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Mix":
        return cls(str(data["router"]), float(data["weight"]), float(data["router_mean"]),
                   float(data["router_std"]), float(data["verifier_mean"]),
                   float(data["verifier_std"]), float(data["threshold"]),
                   {str(k): float(v) for k, v in (data.get("thresholds") or {}).items()},
                   dict(data.get("calibration") or {}))  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifierModel:
    """A logistic regression over standardised signals (and, optionally, the embeddings)."""

    name: str
    groups: tuple[str, ...]
    columns: tuple[str, ...]  # scalar signal names, in weight order
    mean: F64  # standardisation of every input column (signals, then embedding columns)
    scale: F64
    weights: F64  # len(columns) [+ 385 with the embedding group]
    bias: float
    threshold: float  # the recorded default (see the artifact's calibration)
    meta: dict[str, Any]
    interactions: bool = False  # signals x kind of prompt (`with_interactions`)

    @property
    def uses_embedding(self) -> bool:
        return EMBEDDING_GROUP in self.groups

    @property
    def uses_logprobs(self) -> bool:
        """The model reads log-probabilities (a non-zero weight on them): ask for them."""
        c = len(self.columns)
        copies = 5 if self.interactions else 1
        lp = [j * c + i for j in range(copies) for i, name in enumerate(self.columns)
              if name in GROUPS["logprob"]]  # fmt: skip
        return bool(lp) and bool(np.any(self.weights[lp] != 0))

    def row(self, sig: Mapping[str, float]) -> F64:
        return np.array([sig[c] for c in self.columns], dtype=np.float64)

    def predict(self, rows: F64, embedding: F64 | None = None) -> F64:
        """P(large better) per row of raw signals; `embedding` rows are [answer (384),
        cosine with the prompt] when the model uses them."""
        x = with_interactions(rows, self.columns) if self.interactions else rows
        x = x if embedding is None else np.concatenate([x, embedding], axis=1)
        z = ((x - self.mean) / self.scale) @ self.weights + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "groups": list(self.groups), "columns": list(self.columns),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias, "threshold": self.threshold,
                "interactions": self.interactions, "meta": self.meta}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VerifierModel":
        return cls(str(data["name"]), tuple(data["groups"]), tuple(data["columns"]),
                   np.asarray(data["mean"], dtype=np.float64),
                   np.asarray(data["scale"], dtype=np.float64),
                   np.asarray(data["weights"], dtype=np.float64), float(data["bias"]),
                   float(data["threshold"]), dict(data.get("meta", {})),
                   bool(data.get("interactions", False)))  # fmt: skip


class Verifier:
    """Scores (conversation, answer). Thread-safe; `blocking` when it runs the embedder."""

    def __init__(self, model: VerifierModel) -> None:
        self.model = model
        self.name = model.name
        self.blocking = model.uses_embedding
        mix = model.meta.get("mix")
        self.mix = Mix.from_json(mix) if isinstance(mix, Mapping) else None  # `cascade.mix`
        self._embedder: Any = None
        if model.uses_embedding:
            from gateway.router.embedder import MiniLMEmbedder, threads_from_env

            spec = model.meta.get("embedder", {})
            self._embedder = MiniLMEmbedder(threads=threads_from_env(),
                                            max_tokens=int(spec.get("max_tokens", 256)),
                                            variant=str(spec.get("variant", "dq8")))  # fmt: skip

    def score(
        self,
        messages: Sequence[Mapping[str, Any]],
        answer: str,
        logprobs: Any = None,
        second: str | None = None,
        finish_reason: str | None = None,
    ) -> float:
        sig = signals(messages, answer, logprobs, second, finish_reason)
        row = self.model.row(sig)[None, :]
        emb = None
        if self._embedder is not None:
            prompt = embedding_text(parse(messages))
            vectors = np.asarray(self._embedder.embed([prompt]), dtype=np.float64)[0]
            ans = np.asarray(self._embedder.embed([answer]), dtype=np.float64)[0]
            emb = np.concatenate([ans, [float(ans @ vectors)]])[None, :]
        return float(self.model.predict(row, emb)[0])


_lock = threading.Lock()
_loaded: dict[str, Verifier] = {}


def verifier_path(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return path
    return ARTIFACTS_DIR / f"{name}.json"


def load_verifier(name: str = DEFAULT_VERIFIER) -> Verifier:
    """A verifier artifact by name (in the router's artifacts folder) or path; loaded once."""
    with _lock:
        if name not in _loaded:
            path = verifier_path(name)
            if not path.is_file():
                known = sorted(p.stem for p in ARTIFACTS_DIR.glob("verifier-*.json"))
                raise ValueError(f"unknown verifier {name!r}; known: {', '.join(known)}")
            data = json.loads(path.read_text(encoding="utf-8"))
            _loaded[name] = Verifier(VerifierModel.from_json(data))
        return _loaded[name]
