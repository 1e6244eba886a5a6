"""The budget stages of the request path: admit (rate limits + budget snapshot, before routing),
authorize (allowed models/tiers/routes, $0-only, max_tokens cap, after routing), reserve the
worst case (before the upstream call), settle to the actual cost or release (after it)."""

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from gateway.budget import layout
from gateway.budget.alerts import Alerts
from gateway.budget.estimate import worst_case
from gateway.budget.guard import Guard
from gateway.budget.lines import Line, LineCache, RateLine
from gateway.budget.money import from_nano, to_nano
from gateway.budget.periods import local_day
from gateway.budget.scripts import ADMIT, RESERVE, SETTLE, SWEEP
from gateway.budget.view import BudgetView, Standing, evaluate, quota_error, standings, tightest
from gateway.call import Call
from gateway.config import Settings
from gateway.errors import PermissionDenied, RateLimited, Unavailable
from gateway.policies import Policies, Team

log = logging.getLogger("frugal.budget")


def done_ttl_ms(reservation_ttl_s: float) -> int:
    """How long a settled reservation id is remembered (the `done` sets): as long as its hold
    could live (2 x the hold's lifetime + 60 s, the same bound as the holds' index), so a
    settle replayed within that time is recognised; replays older than that are `strict`."""
    return int(2 * reservation_ttl_s * 1000) + 60_000


def new_rid() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 random bits


@dataclass(slots=True)
class Admission:
    team: Team | None
    lines: list[Line]
    rates: list[RateLine]
    prompt_tokens: int
    stands: list[Standing] = field(default_factory=list)
    view: BudgetView | None = None
    local: bool = False  # the store was down: this request is accounted in process


@dataclass(slots=True)
class Reservation:
    rid: str
    team: str
    tz: ZoneInfo
    lines: list[Line]
    rates: list[RateLine]
    amount: int  # nano-USD held
    local: bool
    remaining: Decimal | None  # tightest budget left, this reservation included
    done: bool = False
    minute: int = field(default_factory=lambda: int(time.time() // 60))  # of its `done` set


class Budget:
    def __init__(self, settings: Settings, guard: Guard, policies: Policies, alerts: Alerts):
        self.cfg = settings.budget
        self.models = settings.models
        self.guard = guard
        self.policies = policies  # replaced whole by the policy watcher
        self.alerts = alerts
        self.default_tz = ZoneInfo(settings.budget.timezone)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lines = LineCache()
        self.done_ttl_ms = done_ttl_ms(settings.budget.reservation_ttl_s)
        allowance = settings.budget.fail_open_allowance_usd
        self.fail_open_nano = None if allowance is None else to_nano(allowance)

    def later(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background, kept alive until done (settles from sync callbacks)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def admit(self, call: Call, count_prompt: Callable[[], int]) -> Admission:
        """Rate limits and the budget snapshot (before routing). Tokens are counted only for a
        team with budgets or limits."""
        adm = self.prepare(call, count_prompt)
        await self.check(call, adm)
        return adm

    def prepare(self, call: Call, count_prompt: Callable[[], int]) -> Admission:
        """What applies to this request, without asking the store."""
        team = self.policies.team(call.principal.team)
        if team is None:
            if self.policies.deny_unknown:
                raise PermissionDenied(
                    f"Team {call.principal.team!r} has no budget policy and this gateway refuses "
                    "teams without one (budget.default_policy: deny). Ask an administrator to "
                    "add the team to a policy file."
                )
            return Admission(None, [], [], 0)
        lines, rates = self._lines.get(team, call.principal.key_id, datetime.now(UTC))
        if not lines and not rates:
            return Admission(team, [], [], 0)
        return Admission(team, lines, rates, count_prompt())

    def joint(self, adm: Admission) -> bool:
        """Can the snapshot be taken together with the hold? Yes when the team has something to
        check and its policy has no soft actions and refuses when a budget is spent: then the
        snapshot cannot change which model is called, only refuse (see `check_and_reserve`)."""
        team = adm.team
        return (team is not None and bool(adm.lines or adm.rates) and team.policy.soft is None
                and team.policy.hard.action == "refuse")  # fmt: skip

    async def check(self, call: Call, adm: Admission) -> None:
        """Count the request against the rate limits and take the budget snapshot (the ADMIT
        script); 429 when a limit or a budget is exhausted. Nothing to do without either."""
        team = adm.team
        if team is None or not (adm.lines or adm.rates):
            return
        now = datetime.now(UTC)
        args: list[Any] = [len(adm.rates), adm.prompt_tokens, 120_000, int(now.timestamp() * 1000)]
        for r in adm.rates:
            args += [r.limits.rpm or -1, r.limits.tpm or -1]
        keys = [layout.reservations(team.name)]
        keys += [r.store_key for r in adm.rates] + [ln.store_key for ln in adm.lines]
        bkeys = [ln.store_key for ln in adm.lines]
        res, adm.local = await self.guard.run(ADMIT, keys, args, budget_keys=bkeys)
        if res[0] == 0:
            raise _rate_error(team, adm.rates[int(res[1]) - 1], int(res[2]), now)
        flat = [int(x) for x in res[1:]]
        if not adm.local:
            for i, ln in enumerate(adm.lines):
                self.guard.saw(ln.store_key, flat[2 * i])
        adm.stands = standings(adm.lines, flat)
        adm.view = evaluate(team, adm.stands)
        if adm.view.note and not adm.view.free_only:
            self.alerts.soft_crossed(team, tightest(adm.stands))

    async def check_and_reserve(self, call: Call, adm: Admission) -> Reservation:
        """`check` and `reserve` sent together (one round trip to Redis: both scripts go out in
        one write) for a `joint` admission. When the check refuses, the hold is given back."""
        checked = asyncio.ensure_future(self.check(call, adm))
        held = asyncio.ensure_future(self.reserve(call, adm))
        done = await asyncio.gather(checked, held, return_exceptions=True)
        hold = done[1]
        if isinstance(done[0], BaseException):
            if isinstance(hold, Reservation):
                self.later(self.release(hold))
            raise done[0]
        if isinstance(hold, BaseException):
            raise hold
        return hold

    async def reserve(self, call: Call, adm: Admission) -> Reservation:
        """Hold the worst case of the dearest candidate that fits; drop dearer candidates
        (a cheaper model rather than a refusal); 429 when not even the cheapest fits."""
        assert call.decision is not None
        team = adm.team
        tz = team.tz if team else self.default_tz
        rid = new_rid()
        base = Reservation(rid, call.principal.team, tz, adm.lines, adm.rates, 0, adm.local, None)
        if team is None or not adm.lines:
            return base
        cands = call.decision.candidates
        tokens = adm.prompt_tokens
        worst = {m: to_nano(worst_case(tokens, call.body, self.models[m])) for m in cands}
        levels = sorted(set(worst.values()), reverse=True)
        low = tightest(adm.stands)
        room = to_nano(low.remaining) if low else None
        refusal: list[int] = []
        fell_back = False  # a failed store attempt may have held `rid` (its reply was lost)
        for i, level in enumerate(levels):
            if room is not None and level > room and i < len(levels) - 1:
                continue  # the snapshot already says it cannot fit: try the next level
            res, local, failed_over = await self._hold(rid, adm, level)
            fell_back |= failed_over
            if res[0] == 1:
                self._drop(call, [m for m in cands if worst[m] <= level], level)
                left = min(ln.limit_nano - res[1 + 2 * j] - res[2 + 2 * j]
                           for j, ln in enumerate(adm.lines))  # fmt: skip
                base.amount, base.local, base.remaining = level, local, from_nano(left)
                call.budget_remaining_usd = base.remaining.quantize(Decimal("0.00000001"))
                return base
            refusal = [int(x) for x in res]
        if fell_back:  # refused locally: give back what the store may hold (journaled release)
            base.local = True
            self.later(self.release(base))
        i = refusal[1] - 1
        if i >= len(adm.lines):  # the local fail-open line (see `_hold`)
            raise Unavailable(
                f"The budget store (Redis) is unavailable and team {team.name!r} has used this "
                "replica's fail-open allowance for the outage (budget.fail_open_allowance_usd). "
                "Retry shortly."
            )
        s = Standing(adm.lines[i], from_nano(refusal[2]), from_nano(refusal[3]))
        raise quota_error(team, s, from_nano(levels[-1]))

    def _drop(self, call: Call, keep: list[str], level: int) -> None:
        d = call.decision
        assert d is not None
        gone = [m for m in d.candidates if m not in keep]
        if not gone:
            return
        d.candidates = keep
        d.tier = self.models[keep[0]].tier
        d.reason += (f"; budget: dropped {', '.join(gone)} (worst case above what is left), "
                     f"holding ${from_nano(level)}")  # fmt: skip
        call.extra_headers["x-frugal-budget-downgrade"] = "true"
        d.category = "budget_downgrade"

    async def _hold(self, rid: str, adm: Admission, amount: int) -> tuple[list[int], bool, bool]:
        """The RESERVE script's result, whether it ran locally, and whether it did so after a
        failed store attempt (which may have held `rid` there: its reply was lost)."""
        now = datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        ttl_ms = int(self.cfg.reservation_ttl_s * 1000)
        keys = [layout.reservations(_team_of(adm))]
        args: list[Any] = [rid, now_ms, now_ms + ttl_ms, amount, 2 * ttl_ms + 60_000]
        args += [ln.limit_nano for ln in adm.lines] + [ln.ttl_ms(now) for ln in adm.lines]
        bkeys = [ln.store_key for ln in adm.lines]
        local_call = None
        if self.fail_open_nano is not None:  # locally, the replica's allowance is one more line
            n = len(adm.lines)
            lkeys = keys + bkeys + [layout.fail_open(_team_of(adm))]
            local_call = (lkeys, [*args[: 5 + n], self.fail_open_nano, *args[5 + n :], 0])
        tried = not adm.local  # read now: a concurrent `check` may turn the admission local
        res, local = await self.guard.run(RESERVE, keys + bkeys, args, local=not tried,
                                          budget_keys=bkeys, local_call=local_call)  # fmt: skip
        return [int(x) for x in res], local, local and tried

    async def settle(self, call: Call, res: Reservation) -> None:
        """Replace the hold by the call's actual cost and write the spend ledger (once)."""
        work = self._settling(call, res)
        if work is not None:
            await self._finish(*work)

    def settle_soon(self, call: Call, res: Reservation) -> None:
        """`settle`, with the store written in the background: the answer need not wait for
        that round trip (the remaining-budget header is worked out here and now). The write
        is a task `drain()` waits for at shutdown; a failing store is accounted locally."""
        work = self._settling(call, res)
        if work is not None:
            self.later(self._finish(*work))

    def _settling(
        self, call: Call, res: Reservation
    ) -> tuple[Reservation, int, list[Any], list[Any]] | None:
        if res.done:
            return None
        res.done = True
        u = call.usage
        cost = to_nano(call.cost or Decimal(0))
        saved = to_nano(call.savings) if call.savings is not None else 0
        prefix = self._ledger_prefix(call)
        p, c = (u.prompt_tokens, u.completion_tokens) if u else (0, 0)
        if res.remaining is not None:
            res.remaining += from_nano(res.amount - cost)
            call.budget_remaining_usd = res.remaining.quantize(Decimal("0.00000001"))
        classes: list[Any] = []  # ledger counters by token class (`frugal spend`)
        if u is not None:
            classes = ["cached_tokens", u.cached_tokens, "cache_write_tokens", u.cache_writes,
                       "reasoning_tokens", u.reasoning_tokens]  # fmt: skip
        return res, cost, [prefix, p, c, cost, saved, c], classes

    async def record_free(self, call: Call, adm: Admission) -> None:
        """A cache hit: nothing was held and nothing is charged, but the ledger counts the
        request and what it saved (no billed tokens, so nothing against TPM either)."""
        team = adm.team
        tz = team.tz if team else self.default_tz
        res = Reservation(new_rid(), call.principal.team, tz, adm.lines, adm.rates, 0,
                          adm.local, None, done=True)  # fmt: skip
        saved = to_nano(call.savings) if call.savings is not None else 0
        await self._finish(res, 0, [self._ledger_prefix(call), 0, 0, 0, saved, 0])

    def _ledger_prefix(self, call: Call) -> str:
        """`key_id|model|tier` of the ledger's counters: the tier of the model that answered
        (a fallback to another tier's model is counted there), else the route's choice."""
        m = self.models.get(call.model) if call.model else None
        tier = m.tier.value if m else call.decision.tier.value if call.decision else "-"
        return f"{call.principal.key_id or '-'}|{call.model or '-'}|{tier}"

    async def release(self, res: Reservation) -> None:
        """The call failed: give the hold back; nothing is charged."""
        if res.done:
            return
        res.done = True
        await self._finish(res, 0, ["", 0, 0, 0, 0, 0])

    async def _finish(
        self, res: Reservation, cost: int, ledger: list[Any], more: Sequence[Any] = ()
    ) -> None:
        now = datetime.now(UTC)
        head = [layout.reservations(res.team), layout.done(res.team, res.minute),
                layout.spend(res.team, local_day(now, res.tz))]  # fmt: skip
        bkeys = [ln.store_key for ln in res.lines]
        rkeys = [r.store_key for r in res.rates]
        retention = self.cfg.spend_retention_days * 86_400_000
        n = len(res.lines)
        args: list[Any] = [res.rid, cost, self.done_ttl_ms, n, retention, *ledger, "0", *more]
        local_call = None
        if self.fail_open_nano is not None and n:  # charge the replica's fail-open line too
            lkeys = head + bkeys + [layout.fail_open(res.team)] + rkeys
            local_call = (lkeys, [*args[:3], n + 1, *args[4:]])
        await self.guard.run(SETTLE, head + bkeys + rkeys, args, local=res.local, tolerant=True,
                             budget_keys=bkeys, local_call=local_call)  # fmt: skip

    async def sweep(self, team: str) -> None:
        """Give back the team's expired holds (read paths that do not run admit)."""
        now_ms = int(time.time() * 1000)
        try:
            await self.guard.remote.run(SWEEP, [layout.reservations(team)], [now_ms])
        except self.guard.down as e:  # the read that follows reports the store's state
            log.warning("sweeping expired holds of team %r failed: %s", team, e)


def _team_of(adm: Admission) -> str:
    assert adm.team is not None
    return adm.team.name


def _rate_error(team: Team, r: RateLine, kind: int, now: datetime) -> RateLimited:
    wait = 60 - int(now.timestamp()) % 60
    what = "requests" if kind == 1 else "tokens"
    limit = r.limits.rpm if kind == 1 else r.limits.tpm
    who = f"team {team.name!r}" if r.key_id is None else f"key {r.key_id} of team {team.name!r}"
    return RateLimited(
        f"Rate limit reached: {who} may use {limit} {what} per minute. Retry in {wait} s.",
        headers={"retry-after": str(wait)},
    )
