"""A general difficulty target: how likely a prompt defeats models in general, not one pair.

Out of domain (a prompt set the public data never saw), what one pair's gain looked like on
the training sets transfers badly: the gated mixture trained on five sets and scored on the
sixth ranks near chance (MMLU below it). Whether a prompt is *hard* transfers better. The
target, per row, in 0..1:
- RouterBench rows: the share of its 11 models that fail the prompt (1 - mean score);
- the other public sets (two models recorded) and user logs: 1 - q_small, whether the small
  tier failed.
Set balancing (training.balanced_rows) still takes each set's base rate out, so the model
learns what ranks prompts by difficulty within a set.
"""

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.router.lab import public_data
from gateway.router.lab.examples import Example

F64 = npt.NDArray[np.float64]
RB_MODELS = (
    "WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2",
    "gpt-3.5-turbo-1106", "gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
)  # fmt: skip


def routerbench_failure(root: Path, name: str) -> dict[tuple[str, int], float]:
    """(sample_id, its occurrence) -> share of RouterBench's models (those with a score)
    failing the prompt. A few sample_ids occur twice (ARC-C: 7); occurrences count the rows
    `public_data.load_routerbench` keeps, in file order, as it reads them."""
    path = root / "routerdc/datasets/routerbench_zs" / public_data.RB_FILES[name]
    csv.field_size_limit(1 << 30)
    out: dict[tuple[str, int], float] = {}
    seen: Counter[str] = Counter()
    pair = (public_data.RB_SMALL, public_data.RB_LARGE)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            kept = [row.get(k, "") for k in pair] + [row.get(f"{k}|total_cost", "") for k in pair]
            if "" in kept:
                continue
            scores = [float(row[m]) for m in RB_MODELS if row.get(m, "") != ""]
            key = (row["sample_id"], seen[row["sample_id"]])
            seen[row["sample_id"]] += 1
            out[key] = 1.0 - sum(scores) / len(scores)
    return out


def targets(examples: Sequence[Example], root: Path | None = None) -> F64:
    """The difficulty target of every example (see the module's docstring)."""
    root = root or public_data.default_data_dir()
    tables = {
        name: routerbench_failure(root, name)
        for name in public_data.RB_FILES
        if any(e.dataset == name for e in examples)
    }
    out = np.empty(len(examples), dtype=np.float64)
    seen: Counter[tuple[str, str]] = Counter()
    for i, e in enumerate(examples):
        key = (e.group, seen[(e.dataset, e.group)])
        seen[(e.dataset, e.group)] += 1
        out[i] = tables.get(e.dataset, {}).get(key, 1.0 - e.q_small)
    return np.clip(out, 0.0, 1.0)
