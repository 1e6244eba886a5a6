"""What each `frugal router` subcommand does (argument parsing lives in cli.py)."""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gateway.router import artifact as artifacts
from gateway.router.lab.calibrate import calibrate
from gateway.router.lab.report import format_comparison, format_report
from gateway.router.resources import ARTIFACTS_DIR


def _options(args: argparse.Namespace) -> Any:
    from gateway.router.lab.trainer import Options

    sets = [s for s in args.sets.split(",") if s]
    opts = Options(data_dir=args.data, sets=sets, logs=args.logs, n_boot=args.boot,
                   use_cache=not args.no_cache,
                   neighbours=bool(getattr(args, "neighbours", False)))  # fmt: skip
    opts.variant = getattr(args, "embedder", opts.variant)
    opts.difficulty_weight = _difficulty_weight(args)
    if args.max_tokens:
        opts.max_tokens = args.max_tokens
    return opts


def _difficulty_weight(args: argparse.Namespace) -> float:
    """`--difficulty-weight` if given, else the one the artifact of `--name` records (so that
    `train` and `eval` reproduce that artifact), else 0."""
    given = getattr(args, "difficulty_weight", None)
    if given is not None:
        return float(given)
    name = getattr(args, "name", None) or artifacts.DEFAULT_NAME
    try:
        meta = artifacts.load(name, getattr(args, "out", None) or ARTIFACTS_DIR).meta
    except FileNotFoundError:
        return 0.0
    return float(meta.get("model", {}).get("difficulty_weight", 0.0))


def train_cmd(args: argparse.Namespace) -> int:
    if args.logs and not args.retrain:
        return _adapt_cmd(args)
    from gateway.router.lab.trainer import train

    name = args.name or artifacts.DEFAULT_NAME
    art = train(_options(args), name, args.out or ARTIFACTS_DIR, args.compare)
    print(format_report(art.meta["evaluation"]))
    if "comparison" in art.meta:
        print(
            "\nmodel comparison (out-of-fold APGR):\n" + format_comparison(art.meta["comparison"])
        )
    print(f"\nwrote {artifacts.paths(art.name, args.out or ARTIFACTS_DIR)[1]} "
          f"({art.meta['train_seconds']} s)")  # fmt: skip
    return 0


def _adapt_cmd(args: argparse.Namespace) -> int:
    from gateway.router.lab.adaptation import format_in_domain, train_adapted

    out = args.out or ARTIFACTS_DIR
    art = train_adapted(args.logs, args.name or "adapted", out, args.prior, args.boot,
                        not args.no_cache, use_public=args.public_experts)  # fmt: skip
    rows = art.meta["data"]["rows"]
    print(f"in-domain, {rows} labelled rows (nested 5-fold out-of-fold; 95% bootstrap CI):")
    print(format_in_domain(art.meta))
    print(f"\nwrote {artifacts.paths(art.name, out)[1]} ({art.meta['train_seconds']} s)")
    return 0


def protocol_cmd(args: argparse.Namespace) -> int:
    from gateway.router.lab import protocol
    from gateway.router.lab.trainer import Options, load_corpus

    sets = [s for s in args.sets.split(",") if s]
    corpus = load_corpus(Options(data_dir=args.data, sets=sets))
    if args.priors:
        return priors_cmd(corpus, args)
    ns = [int(n) for n in args.ns.split(",") if n]
    result = protocol.run(corpus, sets, ns, args.seeds, args.boot,
                          log=lambda line: print(line, file=sys.stderr),
                          use_public=args.public_experts, prior_kind=args.prior,
                          variant=args.adapter_variant)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(protocol.format_table(result))
    print(f"({result['seconds']} s)")
    return 0


def priors_cmd(corpus: Any, args: argparse.Namespace) -> int:
    from gateway.router.lab import priors

    result = priors.out_of_domain(corpus, n_boot=args.boot)
    print("N = 0 (fitted on the other sets, scored on the set):")
    print(priors.format_rows(result["sets"], result["n0"], result["versus_mixture"]))
    print(priors.format_nested(result))
    if args.in_domain:
        names = ("mixture", "difficulty C=0.0001", "mixture (difficulty)",
                 f"mixture + {priors.HYBRID_WEIGHT:g} x difficulty")  # fmt: skip
        result["in_domain"], result["in_domain_vs_mixture"] = priors.in_domain(
            corpus, names, args.boot
        )
        print("in-domain (5-fold out-of-fold on every set):")
        print(priors.format_rows(result["sets"], result["in_domain"]))
        print(priors.format_diffs(result["sets"], result["in_domain_vs_mixture"]))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    if args.recorded:
        report = artifacts.load(args.name).meta["evaluation"]
    else:
        from gateway.router.lab.trainer import evaluate, load_corpus

        report = evaluate(load_corpus(_options(args)), _options(args))[1]
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def read_prompts(path: Path) -> Iterator[tuple[Any, list[Mapping[str, Any]], bool, dict[str, Any]]]:
    """(id, messages, tools, record) per line: {"id", "messages"} or {"id", "prompt"}."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record.get("messages"), list):
                messages = record["messages"]
            elif isinstance(record.get("prompt"), str):
                messages = [{"role": "user", "content": record["prompt"]}]
            else:
                raise ValueError(f"{path}:{number}: needs `messages` (list) or `prompt` (string)")
            yield record.get("id", number), messages, bool(record.get("tools")), record


def _scores(router: str, path: Path) -> tuple[list[Any], list[float], list[dict[str, Any]]]:
    from gateway.router.learned import LearnedScorer
    from gateway.router.loading import load_scorer

    items = list(read_prompts(path))
    scorer = load_scorer(router)
    pairs = [(m, t) for _, m, t, _ in items]
    if isinstance(scorer, LearnedScorer):
        scores = scorer.score_many(pairs)
    else:
        scores = [scorer.score(m, t) for m, t in pairs]
    return [i for i, *_ in items], scores, [r for *_, r in items]


def score_cmd(args: argparse.Namespace) -> int:
    ids, scores, _ = _scores(args.router, args.input)
    with args.output.open("w", encoding="utf-8") as out:
        for ident, score in zip(ids, scores, strict=True):
            out.write(json.dumps({"id": ident, "score": score}) + "\n")
    print(f"scored {len(ids)} prompts -> {args.output}", file=sys.stderr)
    return 0


def _labelled(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray] | None:
    from gateway.router.lab.examples import parse_log_record

    if not records or not all("acceptable" in r for r in records):
        return None
    ex = [parse_log_record(r, "input") for r in records]
    return np.array([e.q_small for e in ex]), np.array([e.q_large for e in ex])


def _name(router: str) -> str:
    return artifacts.DEFAULT_NAME if router == "default" else router


def calibrate_cmd(args: argparse.Namespace) -> int:
    from gateway.router.loading import calibration

    if args.input is None:
        adapted = "adaptation" in artifacts.load(_name(args.router)).meta
        where = "its labels, out-of-fold" if adapted else "public sets"
        cal, source = calibration(args.router), f"artifact {args.router} ({where})"
    else:
        _, scores, records = _scores(args.router, args.input)
        s = np.asarray(scores, dtype=np.float64)
        labels = _labelled(records)
        cal = calibrate(s, None, None if labels is None else (s, *labels))
        source = str(args.input)
    if args.target_large_share is not None:
        goal = {"target_large_share": args.target_large_share}
        threshold = cal.threshold_for_share(args.target_large_share)
    else:
        share = cal.share_for_quality(args.quality_floor)
        goal = {"quality_floor": args.quality_floor, "large_share": share}
        threshold = cal.threshold_for_share(share)
    result = {**goal, "threshold": threshold, "router": args.router, "source": source}
    print(json.dumps(result) if args.json else f"{threshold:.6f}")
    return 0
