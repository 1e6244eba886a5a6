"""The label loop's background service: after the client has its answer, a route with
`learning:` may (a) keep a memo of the answer for application feedback, (b) for a sampled
share of answers, ask the route's other tier too and have the judge compare the two (paired
sampling), (c) keep a cascade escalation as a label. All of it runs off the request path: the
request only draws a random number and puts a job on a bounded queue (a full queue drops the
job, counts and logs it). A job is background work: it starts, and goes on between its calls,
only while no client request is in flight on this worker (in_flight.py). Workers that die are
logged and replaced."""

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway import tokens
from gateway.call import Call
from gateway.config import TIER_ORDER, RouteConfig, Tier
from gateway.learning import judge
from gateway.learning.calls import DailyBudget, ask, judge_worst, worst
from gateway.learning.in_flight import InFlight
from gateway.learning.labels import Labels
from gateway.learning.settings import LearningConfig
from gateway.router.heuristic import text_of

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("frugal.learning")
EXPECTED_HEADER = "x-frugal-expected"  # a reference answer for the judge (URL-encoded UTF-8)


@dataclass(slots=True)
class Job:
    kind: str  # "paired" | "cascade"
    route: str
    team: str
    request_id: str
    body: dict[str, Any]
    served_tier: Tier
    served_model: str
    answer: str
    cost: Decimal
    reference: str | None = None
    other: dict[str, Any] = field(default_factory=dict)  # cascade: the large call's answer


def answer_text(response: dict[str, Any] | None) -> str | None:
    """The first choice's text, or None (tool calls, nothing)."""
    choices = (response or {}).get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    msg = choices[0].get("message")
    if isinstance(msg, dict):
        if msg.get("tool_calls"):
            return None
        return text_of(msg.get("content"))
    text = choices[0].get("text")
    return text if isinstance(text, str) else None


def _finished(response: dict[str, Any] | None) -> bool:
    choices = (response or {}).get("choices") or [{}]
    return isinstance(choices[0], dict) and choices[0].get("finish_reason") is not None


class Learning:
    def __init__(self, rt: "Runtime") -> None:
        self.rt = rt
        self.routes: dict[str, LearningConfig] = {
            n: r.learning for n, r in rt.settings.routes.items() if r.learning is not None
        }
        size = max((c.queue_max for c in self.routes.values()), default=1)
        self.queue: asyncio.Queue[Job] = asyncio.Queue(size)
        self.labels = Labels(rt.store)
        self.budget = DailyBudget(rt)
        self.counts: Counter[str] = Counter()  # sampled, dropped, labelled, over_budget, ...
        self.clients = InFlight()  # client requests in flight (gateway/front.py counts them)
        self.running = 0  # jobs taken from the queue and not finished (waiting or working)
        self._workers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._warned = -1e9
        self.random = random.Random()  # noqa: S311 - a sampling draw, not a secret

    def start(self) -> None:
        n = max((c.workers for c in self.routes.values()), default=0)
        for _ in range(n):
            self._spawn()

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self._work())
        self._workers.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        if self._closing or task.cancelled():
            return
        log.error("learning worker died: %r; starting another", task.exception())
        self.counts["worker_restarts"] += 1
        self._spawn()

    async def close(self) -> None:
        self._closing = True
        for t in [*self._workers, *self._tasks]:
            t.cancel()
        await asyncio.gather(*self._workers, *self._tasks, return_exceptions=True)

    # --- on the request path: cheap, synchronous, never raises ---------------------------

    def _opted_out(self, team: str) -> bool:
        pol = self.rt.budget.enforcer.policies.team(team)
        return pol is not None and pol.policy.learning_opt_out

    def served(self, call: Call) -> None:
        """A routed answer went to the client: memo it, maybe sample it."""
        try:
            self._served(call, call.expected)
        except Exception:  # the label loop must never change a request's outcome
            log.exception("learning: could not take request %s", call.request_id)

    def _served(self, call: Call, reference: str | None) -> None:
        d = call.decision
        cfg = self.routes.get(d.route or "") if d is not None else None
        if cfg is None or d is None or d.route is None or call.model is None:
            return
        if call.outcome != "ok" or self._opted_out(call.principal.team):
            return
        text = answer_text(call.response)
        if text is None or not _finished(call.response):
            return  # a tool call, or a stream the client left before it finished
        tier = self.rt.router.model(call.model).tier
        if cfg.feedback:
            memo = {"team": call.principal.team, "route": d.route, "tier": tier.value,
                    "model": call.model, "messages": call.body.get("messages"),
                    "tools": bool(call.body.get("tools")), "answer": text,
                    "cost": str(call.cost or 0)}  # fmt: skip
            ttl = cfg.feedback_window_hours * 3600
            self._later(self.labels.memo(call.request_id, memo, ttl))
        if cfg.sample_share <= 0 or self.random.random() >= cfg.sample_share:
            return
        if not isinstance(call.body.get("messages"), list):
            return  # text completions: not paired
        job = Job("paired", d.route, call.principal.team, call.request_id, call.body, tier,
                  call.model, text, call.cost or Decimal(0), reference)  # fmt: skip
        self._offer(job)

    def escalated(self, small: Call, large: Call) -> None:
        """A cascade escalated: the small answer failed its check, the large one answered."""
        try:
            d = large.decision
            if d is None or d.route not in self.routes or self._opted_out(small.principal.team):
                return
            if small.model is None or large.model is None:
                return
            job = Job("cascade", d.route, small.principal.team, small.request_id, small.body,
                      Tier.small, small.model, answer_text(small.response) or "",
                      small.cost or Decimal(0), None,
                      {"model": large.model, "answer": answer_text(large.response),
                       "cost": str(large.cost or 0), "reason": small.outcome})  # fmt: skip
            self._offer(job)
        except Exception:
            log.exception("learning: could not take escalation %s", small.request_id)

    def _offer(self, job: Job) -> None:
        try:
            self.queue.put_nowait(job)
            self.counts[f"queued_{job.kind}"] += 1
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            if self.counts["dropped"] % 100 == 1:
                log.warning("learning queue full (%d): dropped %d jobs so far",
                            self.queue.maxsize, self.counts["dropped"])  # fmt: skip

    def _later(self, coro: Any) -> None:
        if len(self._tasks) > 10_000:  # the store is slower than traffic: drop, do not grow
            coro.close()
            self.counts["memo_dropped"] += 1
            return
        task = asyncio.get_running_loop().create_task(self._quietly(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, coro: Any) -> None:
        try:
            await coro
        except Exception:
            self.counts["memo_failed"] += 1
            now = time.monotonic()
            if now - self._warned > 60:  # a store outage: one line a minute, not one a request
                self._warned = now
                log.exception("learning: memo write failed (%d so far)", self.counts["memo_failed"])

    # --- off the request path -----------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            self.running += 1
            try:
                await self.clients.quiet()  # background work: after the client requests
                if job.kind == "cascade":
                    await self._cascade(job)
                else:
                    await self._paired(job)
            except Exception:
                self.counts["failed"] += 1
                log.exception("learning: %s job for request %s failed", job.kind, job.request_id)
            finally:
                self.running -= 1
                self.queue.task_done()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued job is done (tests, shutdown)."""
        async with asyncio.timeout(timeout_s):
            await self.queue.join()
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _other_tier(self, route: RouteConfig, served: Tier) -> tuple[Tier, list[str]] | None:
        top = max(route.tiers, key=TIER_ORDER.__getitem__)
        bottom = min(route.tiers, key=TIER_ORDER.__getitem__)
        other = bottom if served == top else top
        if other == served:
            return None
        gone = self.rt.router.unavailable
        models = [n for n, m in self.rt.settings.models.items()
                  if m.tier == other and m.kind == "chat" and n not in gone]  # fmt: skip
        return (other, models) if models else None

    async def _paired(self, job: Job) -> None:
        cfg = self.routes[job.route]
        route = self.rt.settings.routes[job.route]
        found = self._other_tier(route, job.served_tier)
        if found is None:
            self.counts["no_other_tier"] += 1
            return
        other_tier, candidates = found
        cap = cfg.max_output_tokens
        prompt = tokens.count_messages(job.body.get("messages") or [])  # once, for every estimate
        estimate = worst(self.rt, candidates[0], job.body, cap, prompt)
        if cfg.judge is not None:
            estimate += 2 * judge_worst(self.rt, cfg.judge, prompt, job.reference, cap)
        key = await self.budget.hold(job.route, cfg.daily_budget_usd, estimate)
        if key is None:
            self.counts["over_budget"] += 1
            return
        spent = Decimal(0)
        try:
            rid = f"{job.request_id}:learn"
            other = await ask(self.rt, candidates, job.body, cap, rid, job.route, "paired",
                              self.clients.quiet)  # fmt: skip
            spent += other.cost
            small_first = TIER_ORDER[job.served_tier] < TIER_ORDER[other_tier]
            small, large = (job.answer, other.text) if small_first else (other.text, job.answer)
            label = self._label(job, other.model, other.text, other.cost, small_first)
            if cfg.judge is not None:
                verdict = await self._judge(job, cfg.judge, cap, small, large)
                spent += Decimal(verdict.cost_usd)
                label.update(verdict=verdict.verdict, small_score=verdict.small_score,
                             small_acceptable=verdict.small_acceptable,
                             orders=list(verdict.orders), judge=cfg.judge)  # fmt: skip
                label["cost"]["judge"] = verdict.cost_usd
            else:
                label.update(verdict="unjudged", small_score=None)
            await self.clients.quiet()
            await self.labels.put(label, cfg.retention_days)
            self.counts[f"labelled_{label['verdict']}"] += 1
        finally:
            await self.budget.settle(key, estimate, spent)

    async def _judge(
        self, job: Job, model: str, cap: int, small: str, large: str
    ) -> judge.Judgement:
        n = 0

        async def ask_judge(messages: list[dict[str, str]]) -> tuple[str, str]:
            nonlocal n
            n += 1
            rid = f"{job.request_id}:judge{n}"
            got = await ask(self.rt, [model], {"messages": messages, "temperature": 0}, cap,
                            rid, job.route, "judge", self.clients.quiet)  # fmt: skip
            return got.text, str(got.cost)

        return await judge.judge(ask_judge, job.body.get("messages") or [], small, large,
                                 job.reference)  # fmt: skip

    def _label(
        self, job: Job, other_model: str, other_text: str, other_cost: Decimal, small_served: bool
    ) -> dict[str, Any]:
        served = {"answer": job.answer, "model": job.served_model, "cost": str(job.cost)}
        asked = {"answer": other_text, "model": other_model, "cost": str(other_cost)}
        small, large = (served, asked) if small_served else (asked, served)
        return {
            "request_id": job.request_id, "source": "paired", "route": job.route,
            "team": job.team, "messages": job.body.get("messages"),
            "tools": bool(job.body.get("tools")),
            "served": {"tier": job.served_tier.value, "model": job.served_model},
            "answers": {"small": small["answer"], "large": large["answer"]},
            "models": {"small": small["model"], "large": large["model"]},
            "cost": {"small": small["cost"], "large": large["cost"]},
            "reference": job.reference, "created": round(time.time(), 3),
        }  # fmt: skip

    async def _cascade(self, job: Job) -> None:
        cfg = self.routes[job.route]
        label = {
            "request_id": job.request_id, "source": "cascade", "route": job.route,
            "team": job.team, "messages": job.body.get("messages"),
            "tools": bool(job.body.get("tools")),
            "served": {"tier": "large", "model": job.other["model"]},
            "answers": {"small": job.answer, "large": job.other["answer"]},
            "models": {"small": job.served_model, "large": job.other["model"]},
            "cost": {"small": str(job.cost), "large": job.other["cost"]},
            "verdict": "large_better", "small_score": 0.0,
            "escalation": job.other["reason"], "created": round(time.time(), 3),
        }  # fmt: skip
        await self.labels.put(label, cfg.retention_days)
        self.counts["labelled_cascade"] += 1
