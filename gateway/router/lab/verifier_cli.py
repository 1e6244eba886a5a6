"""The verifier's commands, plugged into `frugal router` (lab/cli.py calls `register`):

frugal router verifier train [--sets ...] [--labels FILE] [--name verifier-v1] [--boot N]
frugal router verifier eval                      # the figures recorded in the artifact
frugal router report --input labels.jsonl [--png FILE] [--html FILE] [--adapted PATH]
frugal router score ...        lines with "answer" (and "logprobs") use the verifier
frugal router calibrate --verifier NAME ...      the cascade's threshold for a goal
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gateway.router.verifier import DEFAULT_VERIFIER, load_verifier, verifier_path

Handler = Any


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", run: Handler) -> None:
    ver = sub.add_parser("verifier", help="train or show the cascade's answer verifier")
    vsub = ver.add_subparsers(dest="verifier_command", required=True)
    train = vsub.add_parser("train", help="cross-validate, fit and write a verifier artifact")
    train.add_argument("--data", type=Path, default=None, help="routing-data folder")
    train.add_argument("--sets", default="gsm8k,mt_bench,rb_arc,rb_mbpp,rb_winogrande",
                       help="public sets with recorded small answers")  # fmt: skip
    train.add_argument("--labels", type=Path, action="append", default=[],
                       help="your labels with small answers (JSONL; repeatable)")  # fmt: skip
    train.add_argument("--name", default=DEFAULT_VERIFIER, help="artifact name")
    train.add_argument("--out", type=Path, default=None, help="artifact folder")
    train.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for CIs")
    train.set_defaults(fn=run, router_handler=train_cmd)
    show = vsub.add_parser("eval", help="print the figures recorded in a verifier artifact")
    show.add_argument("--name", default=DEFAULT_VERIFIER, help="artifact name or .json path")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(fn=run, router_handler=eval_cmd)
    rep = sub.add_parser("report", help="the savings page: quality vs large share and dollars")
    rep.add_argument("--input", type=Path, required=True, help="labelled JSONL")
    rep.add_argument("--png", type=Path, default=None, help="write the picture here")
    rep.add_argument("--html", type=Path, default=None, help="write a page (picture + table)")
    rep.add_argument("--router", default="default", help="the shipped (or live) router")
    rep.add_argument("--adapted", default=None, help="an adapted router artifact (name or path)")
    rep.add_argument("--threshold", type=float, default=None, help="the router's threshold")
    rep.add_argument("--verifier", default=DEFAULT_VERIFIER, help="the cascade's verifier")
    rep.add_argument("--verifier-threshold", type=float, default=None,
                     help="the cascade's threshold (default: the artifact's)")  # fmt: skip
    rep.add_argument("--skip", type=float, default=0.1,
                     help="hybrid: share sent straight to large by the router")  # fmt: skip
    rep.add_argument("--boot", type=int, default=200, help="bootstrap resamples for the bands")
    rep.add_argument("--title", default="", help="a title above the sentence")
    rep.set_defaults(fn=run, router_handler=report_cmd)
    score = sub.choices["score"]
    score.add_argument("--verifier", default=DEFAULT_VERIFIER,
                       help="scores lines that carry an \"answer\"")  # fmt: skip
    score.set_defaults(router_handler=_with_answers(score.get_default("router_handler")))
    cal = sub.choices["calibrate"]
    cal.add_argument("--verifier", default=None,
                     help="calibrate this verifier's threshold (the cascade) instead")  # fmt: skip
    cal.add_argument("--mix", action="store_true",
                     help="with --verifier: the threshold of the mixed score (cascade.mix: "
                          "auto), the prompt router's and the verifier's")  # fmt: skip
    cal.set_defaults(router_handler=_or_verifier(cal.get_default("router_handler")))


def train_cmd(args: argparse.Namespace) -> int:
    from gateway.router.lab.verifier_train import train
    from gateway.router.resources import ARTIFACTS_DIR

    sets = [s for s in args.sets.split(",") if s]
    model, report = train(sets, args.data, args.labels, args.name, args.out or ARTIFACTS_DIR,
                          args.boot)  # fmt: skip
    print(format_report(report))
    print(f"\nwrote {(args.out or ARTIFACTS_DIR) / (args.name + '.json')} "
          f"(threshold {model.threshold:.4f}, {model.meta['train_seconds']} s)")  # fmt: skip
    return 0


def eval_cmd(args: argparse.Namespace) -> int:
    report = load_verifier(args.name).model.meta["evaluation"]
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def _ci(v: dict[str, float], pct: bool = False) -> str:
    if pct:
        return f"{v['value']:.1%} [{v['lo']:.1%}, {v['hi']:.1%}]"
    return f"{v['value']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"


def format_report(report: dict[str, Any]) -> str:
    lines = ["| set (n) | scheme | APGR | vs prompt | large share at 95% | cost at 95% vs "
             "all-large |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, e in report["sets"].items():
        for scheme, f in e["schemes"].items():
            diff = _ci(f["apgr_minus_prompt"]) if "apgr_minus_prompt" in f else "-"
            lines.append(f"| {name} ({e['n']}) | {scheme} | {_ci(f['apgr'])} | {diff} | "
                         f"{_ci(f['large_share_at_95'], True)} | "
                         f"{_ci(f['cost_fraction_at_95'], True)} |")  # fmt: skip
    groups = sorted({g for e in report["sets"].values() for g in e["signals"]})
    lines += ["", "| set | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for name, e in report["sets"].items():
        cells = [_ci(e["signals"][g]) if g in e["signals"] else "-" for g in groups]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _answer_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return lines


def _with_answers(prompt_only: Handler) -> Handler:
    def score_cmd(args: argparse.Namespace) -> int:
        from gateway.router.lab.cli_actions import read_prompts
        from gateway.router.lab.verifier_data import small_answer

        items = list(read_prompts(args.input))
        if not any(small_answer(r) is not None for *_, r in items):
            return int(prompt_only(args))
        verifier = load_verifier(args.verifier)
        need_prompt = [i for i, (*_, r) in enumerate(items) if small_answer(r) is None]
        prompt_scores: dict[int, float] = {}
        if need_prompt:
            from gateway.router.loading import load_scorer

            scorer = load_scorer(args.router)
            for i in need_prompt:
                prompt_scores[i] = scorer.score(items[i][1], items[i][2])
        with args.output.open("w", encoding="utf-8") as out:
            for i, (ident, messages, _tools, record) in enumerate(items):
                answer = small_answer(record)
                if answer is None:
                    line = {"id": ident, "score": prompt_scores[i]}
                else:
                    s = verifier.score(messages, answer, record.get("logprobs"),
                                       record.get("second_answer"))  # fmt: skip
                    line = {"id": ident, "score": s, "verifier": verifier.name}
                out.write(json.dumps(line) + "\n")
        print(f"scored {len(items)} lines ({len(items) - len(need_prompt)} with answers, "
              f"verifier {verifier.name}) -> {args.output}", file=sys.stderr)  # fmt: skip
        return 0

    return score_cmd


def _or_verifier(prompt_only: Handler) -> Handler:
    def calibrate_cmd(args: argparse.Namespace) -> int:
        if args.verifier is None:
            if args.mix:
                raise ValueError("--mix calibrates a verifier's mixed score: give --verifier")
            return int(prompt_only(args))
        from gateway.router.calibration import Calibration

        verifier = load_verifier(args.verifier)
        mix = verifier.mix if args.mix else None
        if args.mix and mix is None:
            raise ValueError(f"verifier {verifier.name} records no mix: retrain it with "
                             "`frugal router verifier train`")  # fmt: skip
        if args.input is None:
            recorded = mix.calibration if mix is not None else verifier.model.meta["calibration"]
            cal = Calibration.from_json(dict(recorded or {}))
            source = f"verifier {verifier.name} (public rows, out-of-fold)"
            source += f", mixed with {mix.router} at weight {mix.weight:g}" if mix else ""
        else:
            cal, source = _calibration_on(args.input, verifier, mix), str(args.input)
        if args.target_large_share is not None:
            goal = {"target_escalation_share": args.target_large_share}
            threshold = cal.threshold_for_share(args.target_large_share)
        else:
            share = cal.share_for_quality(args.quality_floor)
            goal = {"quality_floor": args.quality_floor, "escalation_share": share}
            threshold = cal.threshold_for_share(share)
        cascade: dict[str, Any] = {"verifier": verifier.name, "threshold": round(threshold, 6)}
        if mix is not None:
            cascade["mix"] = "auto"
        result = {**goal, "threshold": threshold, "verifier": verifier.name, "source": source,
                  "config": {"cascade": cascade}}  # fmt: skip
        print(json.dumps(result) if args.json else f"{threshold:.6f}")
        return 0

    return calibrate_cmd


def _calibration_on(path: Path, verifier: Any, mix: Any = None) -> Any:
    """The calibration of the verifier's scores (or, with `mix`, of the mixed scores, the
    prompts scored by the mix's router) on a labels file."""
    from gateway.router.lab.calibrate import calibrate
    from gateway.router.lab.examples import parse_log_record
    from gateway.router.lab.verifier_data import small_answer

    records = [r for r in _answer_lines(path) if small_answer(r) is not None]
    if not records:
        raise ValueError(f'{path}: no line has an "answer" (or answers.small) to verify')
    convs = [r.get("messages") or [{"role": "user", "content": r.get("prompt", "")}]
             for r in records]  # fmt: skip
    scores = np.array([verifier.score(m, small_answer(r), r.get("logprobs"))
                       for m, r in zip(convs, records, strict=True)])  # fmt: skip
    if mix is not None:
        from gateway.router.loading import load_scorer

        scorer = load_scorer(mix.router)
        routed = np.array([scorer.score(m, bool(r.get("tools"))) for m, r in
                           zip(convs, records, strict=True)])  # fmt: skip
        scores = mix.scores(routed, scores)
    labelled = None
    if all("acceptable" in r for r in records):
        ex = [parse_log_record(r, str(path)) for r in records]
        labelled = (scores, np.array([e.q_small for e in ex]), np.array([e.q_large for e in ex]))
    return calibrate(scores, None, labelled)


def report_cmd(args: argparse.Namespace) -> int:
    from gateway.router.lab.report_frontier import draw, read_rows, schemes_from_artifacts

    if args.png is None and args.html is None:
        raise ValueError("give --png FILE and/or --html FILE")
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError("the report draws with matplotlib: pip install -e '.[report]'") from None
    rows, records, out = read_rows(args.input)
    schemes = schemes_from_artifacts(
        rows, records, args.router, args.adapted, args.verifier, args.threshold,
        args.verifier_threshold, args.skip,
    )  # fmt: skip
    sentence = draw(schemes, out, args.png, args.html, args.title, args.boot)
    print(sentence)
    return 0


__all__ = ["register", "verifier_path"]
