"""Everything built once at start-up and shared by every request."""

import logging
from dataclasses import dataclass, field

from gateway import logs, tokens
from gateway.budget import BudgetRuntime, start_budget
from gateway.cache.service import ResponseCache
from gateway.config import HOLD_MARGIN_S, Settings
from gateway.keys import KeyRing, load_keys
from gateway.learning.rollout import Rollout
from gateway.learning.sampling import Learning
from gateway.learning.settings import LEARNING_TEAM
from gateway.providers.base import Provider
from gateway.providers.limit import Limited
from gateway.providers.registry import build_provider
from gateway.readiness import Readiness
from gateway.resilience import Cooldowns, Resilient
from gateway.routing import Router
from gateway.store import Store, open_store
from gateway.telemetry import hook
from gateway.telemetry.service import Telemetry

log = logging.getLogger("frugal")


@dataclass
class Runtime:
    settings: Settings
    store: Store
    router: Router
    providers: dict[str, Provider]
    resilient: Resilient
    keys: KeyRing
    budget: BudgetRuntime = field(init=False)
    cache: ResponseCache = field(init=False)
    telemetry: Telemetry = field(init=False)
    readiness: Readiness = field(init=False)
    learning: Learning = field(init=False)  # the label loop (gateway/learning)
    rollout: Rollout = field(init=False)  # promote / roll back a route's router

    @classmethod
    async def start(cls, settings: Settings) -> "Runtime":
        logs.set_queue_limit(settings.server.log_queue_max)
        if settings.tiktoken_cache_dir:
            tokens.configure(str(settings.tiktoken_cache_dir))
        tokens.encoding()  # load the BPE once, now, not on the first request
        router = Router(settings)
        for name, env in router.unavailable.items():
            log.warning(
                "model %s is disabled: set %s on the gateway to enable it "
                "(routes use their other tiers meanwhile)",
                name, env,
            )  # fmt: skip
        providers: dict[str, Provider] = {
            n: Limited(build_provider(n, m), m.limits.max_connections, m.timeouts.connect_s)
            for n, m in settings.models.items()
        }
        keys = load_keys(settings.policies_dir)
        if settings.auth.anonymous_team and settings.server.host not in (
            "127.0.0.1", "localhost", "::1",
        ):  # fmt: skip
            raise RuntimeError(
                "auth.anonymous_team is only allowed when the server listens on loopback; "
                "create keys with `frugal keys create --team T` and set it to null"
            )
        rt = cls(
            settings=settings,
            store=open_store(settings.redis_url, options=settings.store),
            router=router,
            providers=providers,
            resilient=Resilient(
                settings.resilience,
                Cooldowns(settings.resilience.cooldown_s),
                window_s=settings.budget.reservation_ttl_s - HOLD_MARGIN_S,
                windows=router.windows(),  # context windows: an overflow tries a larger one
            ),
            keys=keys,
        )
        rt.budget = start_budget(settings, rt.store, lambda k: setattr(rt, "keys", k))
        rt.cache = await ResponseCache.start(settings, rt.store)
        rt.readiness = Readiness(settings.server.readyz_cache_s)
        teams = {*rt.budget.enforcer.policies.teams, settings.auth.anonymous_team} - {None}
        if any(r.learning for r in settings.routes.values()):
            teams.add(LEARNING_TEAM)  # learning calls are charged (and shown) there
        rt.telemetry = Telemetry.start(settings, teams=[t for t in teams if t])
        hook.install(rt.telemetry)
        rt.learning = Learning(rt)
        rt.learning.start()
        rt.rollout = Rollout(rt.router, rt.store, settings.routes)
        rt.rollout.start()  # follows switches made through other workers (the store)
        return rt

    async def close(self) -> None:
        await self.learning.close()  # jobs still queued are dropped (labels are best effort)
        await self.rollout.close()
        await self.budget.close()  # settles still in flight are recorded before telemetry stops
        hook.uninstall(self.telemetry)
        await self.telemetry.close()
        await self.cache.close()
        for p in self.providers.values():
            await p.close()
        await self.store.close()
