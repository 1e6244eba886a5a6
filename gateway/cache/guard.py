"""The false-hit guard: embeddings put a question near its opposite ("with eggs" / "without
eggs", "Austria" / "Australia", "10 miles to km" / "10 km to miles"), so a semantic candidate
above the similarity threshold is served only if these also agree, in order:

- numbers (digits and number words: "3" == "three"), negations ("not", "no", "n't", "without",
  "never", ... and un-/im-/il-/ir- words), units and currencies, names (capitalised words
  that do not start a sentence, acronyms, words with digits or symbols such as "C++");
- no pair of opposites ("increase"/"decrease", "before"/"after", "pros"/"cons", ...) where
  one side has one word and the other side the other;
- the content words do not differ by exactly one word swapped for another ("python" ->
  "ruby", "cats" -> "rabbits"): that is how entity swaps in lower case look.

It rejects some true paraphrases (e.g. "big" -> "large"): a missed hit costs one upstream call,
a false hit serves a wrong answer."""

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from gateway.cache import guard_words as W

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+#'\-]*|\$?\d[\d,]*(?:\.\d+)?%?|\$|%")
_SENTENCE_END = re.compile(r"[.!?]\s+|\n")


@dataclass(frozen=True, slots=True)
class Signature:
    numbers: tuple[str, ...]
    negations: int
    units: tuple[str, ...]
    names: tuple[str, ...]
    words: frozenset[str]
    content: tuple[str, ...]


def _expand(text: str) -> str:
    text = text.replace("\u2019", "'")
    text = re.sub(r"\b(can)'t\b", r"\1 not", text, flags=re.I)
    text = re.sub(r"\bwon't\b", "will not", text, flags=re.I)
    return re.sub(r"n't\b", " not", text, flags=re.I)


def _number(tok: str) -> str | None:
    low = tok.lower()
    if low in W.NUMBER_WORDS:
        return W.NUMBER_WORDS[low]
    m = re.fullmatch(r"\$?(\d[\d,]*(?:\.\d+)?)(?:%|st|nd|rd|th)?", low)
    return m.group(1).replace(",", "") if m else None


def _names(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        toks = _TOKEN.findall(sentence)
        for i, tok in enumerate(toks):
            odd = any(c.isdigit() for c in tok[1:]) or "+" in tok or "#" in tok
            capital = tok[0].isupper() and i > 0 and tok != "I"
            acronym = len(tok) > 1 and tok.isupper()
            if (capital or acronym or odd) and _number(tok) is None:
                out.append(tok.lower().removesuffix("'s"))
    return tuple(out)


@lru_cache(maxsize=4096)
def signature(text: str) -> Signature:
    text = _expand(text)
    toks = [t.lower() for t in _TOKEN.findall(text)]
    words = [t.strip("'") for t in toks]
    numbers = tuple(n for t in words if (n := _number(t)) is not None)
    negations = sum(1 for w in words if w in W.NEGATIONS or W.negated_adjective(w))
    units = tuple(W.UNITS[w] for w in words if w in W.UNITS)
    content = tuple(W.stem(w) for w in words if w not in W.STOPWORDS and _number(w) is None)
    return Signature(numbers, negations, units, _names(text), frozenset(words), content)


def _opposites(a: Signature, b: Signature) -> bool:
    for x, y in W.OPPOSITES:
        if (x in a.words and y in b.words and y not in a.words and x not in b.words) or (
            y in a.words and x in b.words and x not in a.words and y not in b.words
        ):
            return True
    return False


def _one_word_swap(a: Signature, b: Signature) -> bool:
    ops = [
        op
        for op in difflib.SequenceMatcher(a=a.content, b=b.content, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    return (
        len(ops) == 1
        and ops[0][0] == "replace"
        and ops[0][2] - ops[0][1] == 1 == (ops[0][4] - ops[0][3])
    )


def reason_to_reject(query: str, candidate: str) -> str | None:
    """Why `candidate`'s answer must not serve `query`, or None when the guard finds nothing."""
    a, b = signature(query), signature(candidate)
    if a.numbers != b.numbers:
        return "numbers differ"
    if a.negations != b.negations:
        return "negation differs"
    if a.units != b.units:
        return "units differ"
    if a.names != b.names:
        return "names differ"
    if _opposites(a, b):
        return "opposite words"
    if _one_word_swap(a, b):
        return "one content word swapped"
    return None
