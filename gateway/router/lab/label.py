"""`frugal router label`: label past prompts offline. Each prompt is sent to the route's small
and large tier and the two answers go to the judge (both orders, gateway/learning/judge.py);
each result is appended to the output as a user-log line (gateway/router/README.md, "Your own
logs") plus the answers, the verdict and the costs (prompts the judge gave no verdict for go to
`<output>.failed` and are tried again by the next run). A cost estimate is printed before anything
is sent (and confirmed, or `--yes`); a progress line runs on stderr; prompts whose id is already
in the output are skipped, so an interrupted run resumes where it stopped."""

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway import pricing, tokens
from gateway.config import TIER_ORDER, ModelConfig, Settings, load_settings
from gateway.errors import UpstreamError
from gateway.learning import judge
from gateway.learning.calls import body_for
from gateway.learning.labels import acceptable
from gateway.providers.base import Endpoint, Provider
from gateway.providers.registry import build_provider
from gateway.router.heuristic import text_of
from gateway.usage import Usage

RUBRIC_TOKENS = 250  # the judge's rubric and framing, roughly


@dataclass(frozen=True)
class Plan:
    small: str
    large: str
    judge: str


def plan(settings: Settings, route: str, judge_model: str | None) -> Plan:
    if route not in settings.routes:
        raise ValueError(f"no route {route!r} in the configuration")
    r = settings.routes[route]
    judge_model = judge_model or (r.learning.judge if r.learning else None)
    if not judge_model or judge_model not in settings.models:
        raise ValueError("name a judge model: --judge MODEL, or the route's `learning.judge`")

    def first(tier: Any) -> str:
        for n, m in settings.models.items():
            if m.tier == tier and m.kind == "chat":
                return n
        raise ValueError(f"no chat model of tier {tier.value}")

    low = min(r.tiers, key=TIER_ORDER.__getitem__)
    high = max(r.tiers, key=TIER_ORDER.__getitem__)
    if low == high:
        raise ValueError(f"route {route!r} has one tier: nothing to compare")
    return Plan(first(low), first(high), judge_model)


def read_input(path: Path) -> list[tuple[str, list[Mapping[str, Any]], dict[str, Any]]]:
    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if isinstance(rec.get("messages"), list):
                msgs = rec["messages"]
            elif isinstance(rec.get("prompt"), str):
                msgs = [{"role": "user", "content": rec["prompt"]}]
            else:
                raise ValueError(f"{path}:{number}: needs `messages` (list) or `prompt` (string)")
            out.append((str(rec.get("id", number)), msgs, rec))
    return out


def failed_path(output: Path) -> Path:
    """Where prompts without a verdict (judge failures) are written: `<output>.failed`."""
    return output.with_name(output.name + ".failed")


def done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError):
                continue  # a line cut short by an interruption: labelled again
    return ids


def _rate(price: Any, prompt: int, output: int) -> Decimal:
    return pricing.cost(Usage(prompt, output), price)


def estimate(
    settings: Settings, p: Plan, todo: list[tuple[str, list[Mapping[str, Any]], dict[str, Any]]],
    out_tokens: int, cap: int,
) -> dict[str, Decimal]:  # fmt: skip
    """Expected USD by model (answers of `out_tokens`), and the worst case (`cap` tokens)."""
    m = settings.models
    est = {"small": Decimal(0), "large": Decimal(0), "judge": Decimal(0), "worst": Decimal(0)}
    for _, msgs, _ in todo:
        n = tokens.count_messages(msgs)
        judge_in = n + 2 * out_tokens + RUBRIC_TOKENS
        est["small"] += _rate(m[p.small].price, n, out_tokens)
        est["large"] += _rate(m[p.large].price, n, out_tokens)
        est["judge"] += 2 * _rate(m[p.judge].price, judge_in, 150)
        est["worst"] += _rate(m[p.small].price, n, cap) + _rate(m[p.large].price, n, cap)
        est["worst"] += 2 * _rate(m[p.judge].price, n + 2 * cap + RUBRIC_TOKENS, cap)
    est["total"] = est["small"] + est["large"] + est["judge"]
    return est


class Progress:
    """One line on stderr: done/total, failures, spend, rate."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.spent = Decimal(0)
        self.started = time.monotonic()

    def step(self, cost: Decimal, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        self.spent += cost
        width = 30
        filled = int(width * self.done / max(1, self.total))
        rate = self.done / max(1e-9, time.monotonic() - self.started)
        spent = pricing.usd(self.spent.quantize(Decimal("0.0001")))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"failed {self.failed} ${spent} {rate:.1f}/s")  # fmt: skip
        sys.stderr.flush()


async def _ask(provider: Provider, cfg: ModelConfig, body: dict[str, Any], cap: int
               ) -> tuple[str, Decimal]:  # fmt: skip
    sent = body_for(body, cfg, cap)
    for attempt in range(3):
        try:
            done = await provider.complete(Endpoint.chat, sent)
            break
        except UpstreamError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
    choices = done.body.get("choices") or [{}]
    text = text_of(((choices[0] or {}).get("message") or {}).get("content"))
    usage = done.usage or Usage(tokens.count_messages(sent.get("messages") or []),
                                tokens.count_text(text), estimated=True)  # fmt: skip
    return text, pricing.cost(usage, cfg.price, pricing.served_tier(usage, sent))


async def label_all(
    settings: Settings, p: Plan, todo: list[tuple[str, list[Mapping[str, Any]], dict[str, Any]]],
    output: Path, concurrency: int, cap: int,
) -> Progress:  # fmt: skip
    providers = {n: build_provider(n, settings.models[n]) for n in {p.small, p.large, p.judge}}
    progress = Progress(len(todo))
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(ident: str, msgs: list[Mapping[str, Any]], rec: dict[str, Any]) -> None:
        async with gate:
            body = {"messages": msgs, **({"tools": rec["tools"]} if rec.get("tools") else {})}
            try:
                (small, c_small), (large, c_large) = await asyncio.gather(
                    _ask(providers[p.small], settings.models[p.small], body, cap),
                    _ask(providers[p.large], settings.models[p.large], body, cap),
                )
            except UpstreamError as e:
                progress.step(Decimal(0), True)
                print(f"\n{ident}: a tier failed: {e}", file=sys.stderr)
                return
            judge_cost = Decimal(0)

            async def ask_judge(m: list[dict[str, str]]) -> tuple[str, str]:
                nonlocal judge_cost
                text, c = await _ask(providers[p.judge], settings.models[p.judge],
                                     {"messages": m, "temperature": 0}, cap)  # fmt: skip
                judge_cost += c
                return text, str(c)

            ref = rec.get("expected")
            verdict = await judge.judge(ask_judge, msgs, small, large,
                                        ref if isinstance(ref, str) else None)  # fmt: skip
            label = {"source": "paired", "small_score": verdict.small_score}
            pair = acceptable(label)
            line: dict[str, Any] = {"id": ident, "messages": msgs, "tools": bool(rec.get("tools"))}
            if pair is not None:
                line["acceptable"] = pair
            line.update(verdict=verdict.verdict, small_score=verdict.small_score,
                        orders=list(verdict.orders), answers={"small": small, "large": large},
                        models={"small": p.small, "large": p.large, "judge": p.judge},
                        cost={"small": float(c_small), "large": float(c_large),
                              "judge": float(judge_cost)})  # fmt: skip
            # one line at a time: resumable; a judge failure goes aside (tried again next run),
            # so that the output is all labels `train --logs` can read
            target = output if pair is not None else failed_path(output)
            with target.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            progress.step(c_small + c_large + judge_cost, pair is None)

    try:
        await asyncio.gather(*(one(*t) for t in todo))
    finally:
        for prov in providers.values():
            await prov.close()
        sys.stderr.write("\n")
    return progress


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    p = plan(settings, args.route, args.judge)
    items = read_input(args.input)
    if args.sample is not None and args.sample < len(items):
        items = random.Random(args.seed).sample(items, args.sample)  # noqa: S311 - a sample
    seen = done_ids(args.output)
    todo = [t for t in items if t[0] not in seen]
    est = estimate(settings, p, todo, args.expected_output_tokens, args.max_output_tokens)
    print(
        f"{len(todo)} prompts to label ({len(items) - len(todo)} already in {args.output}); "
        f"small {p.small}, large {p.large}, judge {p.judge} (both orders)",
        file=sys.stderr,
    )
    print(f"estimated cost: ${pricing.usd(est['total'].quantize(Decimal('0.0001')))} "
          f"(small ${pricing.usd(est['small'].quantize(Decimal('0.0001')))}, "
          f"large ${pricing.usd(est['large'].quantize(Decimal('0.0001')))}, "
          f"judge ${pricing.usd(est['judge'].quantize(Decimal('0.0001')))}; "
          f"{args.expected_output_tokens} output tokens per answer); at most "
          f"${pricing.usd(est['worst'].quantize(Decimal('0.0001')))}", file=sys.stderr)  # fmt: skip
    if not todo:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("not started: pass --yes to confirm", file=sys.stderr)
            return 1
        if input("start? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    progress = asyncio.run(
        label_all(settings, p, todo, args.output, args.concurrency, args.max_output_tokens)
    )
    print(f"labelled {progress.done - progress.failed} of {progress.total} "
          f"({progress.failed} failed or without a verdict), spent "
          f"${pricing.usd(progress.spent.quantize(Decimal('0.000001')))} -> {args.output}",
          file=sys.stderr)  # fmt: skip
    return 0
