"""The public routing sets under `shared/routing-data/` as Examples (small = Mixtral-8x7B,
large = GPT-4-1106-preview, the RouteLLM pair, on every set).

- mmlu: RouteLLM's MMLU records, 57 subjects (the group), correctness 0/1.
- gsm8k: RouteLLM's GSM8K test records, correctness 0/1.
- mt_bench: 80 questions x 2 turns, GPT-4 judge score 1-10 rescaled to 0..1 ((s-1)/9); the
  second turn's messages hold the first turn and an assistant turn with no content.
- rb_arc, rb_mbpp, rb_winogrande: RouterBench 0-shot (RouterDC train split), correctness 0/1
  and real USD cost per call; small = mistralai/mixtral-8x7b-chat, large = gpt-4-1106-preview
  (the most expensive model there and the most accurate on ARC-C and Winogrande).
"""

import ast
import csv
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from gateway.router.lab.examples import Example

DATA_ENV = "FRUGAL_ROUTING_DATA"
SMALL, LARGE = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
RB_SMALL, RB_LARGE = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"
RB_FILES = {
    "rb_arc": "arc_challenge_train.csv",
    "rb_mbpp": "mbpp_train.csv",
    "rb_winogrande": "winograde_train.csv",
}
DATASETS = ("mmlu", "gsm8k", "mt_bench", *RB_FILES)


def default_data_dir() -> Path:
    """$FRUGAL_ROUTING_DATA, else `../shared/routing-data` next to the checkout."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[4] / "shared" / "routing-data"


def _user(text: str) -> tuple[dict[str, str | None], ...]:
    return ({"role": "user", "content": text},)


def _truth(value: str) -> float:
    return 1.0 if value.strip().lower() in ("true", "1", "1.0") else 0.0


def load_mmlu(root: Path) -> list[Example]:
    out: list[Example] = []
    for path in sorted((root / "routellm/routellm/evals/mmlu/responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                out.append(Example("mmlu", _user(row["prompt"]), _truth(row[SMALL]),
                                   _truth(row[LARGE]), group=subject))  # fmt: skip
    return out


def load_gsm8k(root: Path) -> list[Example]:
    path = root / "routellm/routellm/evals/gsm8k/gsm8k_responses.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Example("gsm8k", _user(r["prompt"]), _truth(r[SMALL]), _truth(r[LARGE]), group=str(i))
            for i, r in enumerate(csv.DictReader(handle))
        ]


def load_mt_bench(root: Path) -> list[Example]:
    base = root / "routellm/routellm/evals/mt_bench"
    questions = [json.loads(x) for x in (base / "question.jsonl").read_text().splitlines() if x]
    scores: dict[tuple[int, str, int], float] = {}
    for line in (base / "judgements.jsonl").read_text().splitlines():
        if line.strip():
            j = json.loads(line)
            scores[(j["question_id"], j["model"], j["turn"])] = (float(j["score"]) - 1.0) / 9.0
    out: list[Example] = []
    for q in questions:
        qid, turns = q["question_id"], q["turns"]
        for turn in (1, 2):
            msgs: tuple[dict[str, str | None], ...] = (
                _user(turns[0]) if turn == 1
                else (*_user(turns[0]), {"role": "assistant", "content": None}, *_user(turns[1]))
            )  # fmt: skip
            out.append(Example("mt_bench", msgs, scores[(qid, SMALL, turn)],
                               scores[(qid, LARGE, turn)], group=str(qid),
                               meta={"category": q["category"], "turn": turn}))  # fmt: skip
    return out


def load_routerbench(
    root: Path, name: str, small: str = RB_SMALL, large: str = RB_LARGE
) -> list[Example]:
    """A RouterBench set for a pair of its 11 models (default: the RouteLLM pair)."""
    path = root / "routerdc/datasets/routerbench_zs" / RB_FILES[name]
    csv.field_size_limit(1 << 30)
    out: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            cells = [row.get(k, "") for k in (small, large)]
            costs = [row.get(f"{k}|total_cost", "") for k in (small, large)]
            if "" in cells or "" in costs:
                continue
            turns = ast.literal_eval(row["prompt"])
            msgs = tuple({"role": "user", "content": str(t)} for t in turns)
            out.append(Example(name, msgs, float(cells[0]), float(cells[1]),
                               group=row["sample_id"], cost_small=float(costs[0]),
                               cost_large=float(costs[1])))  # fmt: skip
    return out


def load(name: str, root: Path | None = None) -> list[Example]:
    """One public set by name (see `DATASETS`)."""
    root = root or default_data_dir()
    if name == "mmlu":
        return load_mmlu(root)
    if name == "gsm8k":
        return load_gsm8k(root)
    if name == "mt_bench":
        return load_mt_bench(root)
    if name in RB_FILES:
        return load_routerbench(root, name)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def source_files(root: Path, names: Iterable[str] = DATASETS) -> list[Path]:
    """The files the named sets are read from (what the recorded data hash covers)."""
    files: list[Path] = []
    for name in names:
        if name == "mmlu":
            files += sorted((root / "routellm/routellm/evals/mmlu/responses").glob("mmlu_*.csv"))
        elif name == "gsm8k":
            files.append(root / "routellm/routellm/evals/gsm8k/gsm8k_responses.csv")
        elif name == "mt_bench":
            base = root / "routellm/routellm/evals/mt_bench"
            files += [base / "question.jsonl", base / "judgements.jsonl"]
        else:
            files.append(root / "routerdc/datasets/routerbench_zs" / RB_FILES[name])
    return files


def data_sha256(root: Path, names: Iterable[str] = DATASETS) -> str:
    """sha256 over (relative path, file bytes) of every source file, in a fixed order."""
    digest = hashlib.sha256()
    for path in source_files(root, names):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# Auxiliary training-only data (never evaluated): RouterDC split2_model7 prompts with the scores
# of seven ~7B models; "hardness" = 1 - their mean score. Only *train* files and single-split
# English sets; rows that duplicate an evaluation prompt are dropped by the caller (RouterDC's
# mmlu_train is drawn from the MMLU test questions RouteLLM evaluates).
AUX_DIR = "routerdc/datasets/split2_model7"
AUX_FILES = (
    "mmlu_train.json", "gsm8k-train.json", "arc_challenge_train.json", "arc_easy_train.json",
    "MATH_prealgebra.json", "mbpp.json", "humaneval_train.json",
)  # fmt: skip


def load_aux_hardness(root: Path | None = None) -> tuple[list[str], list[float]]:
    """(prompt texts, 7B-model hardness in 0..1) of the auxiliary files."""
    folder = (root or default_data_dir()) / AUX_DIR
    texts: list[str] = []
    hardness: list[float] = []
    for name in AUX_FILES:
        for record in json.loads((folder / name).read_text(encoding="utf-8")):
            text = str(record["question"]).removeprefix("Question:").removesuffix("\nAnswer:")
            scores = [float(v) for v in record["scores"].values()]
            texts.append(text.strip())
            hardness.append(1.0 - sum(scores) / len(scores))
    return texts, hardness
