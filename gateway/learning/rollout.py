"""Safe rollout of a router: a candidate runs in shadow first (scored on live traffic, logged,
never acted on), then `promote` makes it the route's live scorer and `rollback` restores the
one before. Each switch replaces the route's `Live` entry whole (one dict assignment on the
event loop): a request reads the entry once, so requests in flight finish with the router they
started with and none is dropped; there is no restart. Every decision names its router
version (log line `router=`, header `x-frugal-router-version`).

The switch applies to the worker process that receives it. With `server.workers > 1` or several
replicas, send it to each (or restart them with the new `router:` in the configuration)."""

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, NotFound
from gateway.router import load_scorer
from gateway.routing import Live, Router

log = logging.getLogger("frugal.rollout")


@dataclass
class Rollout:
    router: Router
    history: dict[str, list[Live]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _route(self, route: str) -> Live:
        live = self.router.live.get(route)
        if live is None:
            raise NotFound(f"No route {route!r}; routes: {', '.join(sorted(self.router.live))}.")
        return live

    async def _load(self, name: str) -> Any:
        try:
            return await asyncio.to_thread(load_scorer, name)  # ONNX session: not on the loop
        except (ValueError, FileNotFoundError) as e:
            raise InvalidRequest(f"Cannot load router {name!r}: {e}", param="router") from None

    async def shadow(self, route: str, name: str, threshold: float | None) -> dict[str, Any]:
        """Run `name` in shadow on `route` (replacing any shadow it has)."""
        live = self._route(route)
        scorer = await self._load(name)
        async with self._lock:
            self.router.shadows[route] = Live(
                name, scorer, live.threshold if threshold is None else threshold
            )
        log.info("router shadow route=%s shadow=%s version=%s", route, name,
                 self.router.shadows[route].version)  # fmt: skip
        return self.status(route)

    async def promote(
        self, route: str, name: str | None, threshold: float | None, force: bool = False
    ) -> dict[str, Any]:
        """Make the route's shadow (or, with `force`, any router) its live scorer."""
        live = self._route(route)
        shadow = self.router.shadows.get(route)
        if name is None:
            if shadow is None:
                raise InvalidRequest(f"Route {route!r} has no router in shadow to promote.",
                                     param="router")  # fmt: skip
            name = shadow.router
        ran = shadow is not None and shadow.router == name and shadow.decisions > 0
        if not ran and not force:
            raise InvalidRequest(
                f"Router {name!r} has not run in shadow on route {route!r}: run it there first "
                "(POST /admin/router/shadow, or `shadow:` in the route's configuration), or "
                "pass force.",
                param="router",
            )
        if shadow is not None and shadow.router == name:
            scorer = shadow.scorer
            threshold = shadow.threshold if threshold is None else threshold
        else:
            scorer = await self._load(name)
        new = Live(name, scorer, live.threshold if threshold is None else threshold)
        async with self._lock:
            self.history.setdefault(route, []).append(self.router.live[route])
            self.router.live[route] = new  # the swap
            if shadow is not None and shadow.router == name:
                self.router.shadows.pop(route, None)
        log.info("router promote route=%s from=%s to=%s threshold=%g", route, live.version,
                 new.version, new.threshold)  # fmt: skip
        return self.status(route)

    async def rollback(self, route: str) -> dict[str, Any]:
        """Restore the live router that the last promotion replaced."""
        self._route(route)
        async with self._lock:
            past = self.history.get(route)
            if not past:
                raise InvalidRequest(f"Route {route!r} has no earlier router to roll back to.")
            before = self.router.live[route]
            self.router.live[route] = past.pop()  # the swap
        log.info("router rollback route=%s from=%s to=%s", route, before.version,
                 self.router.live[route].version)  # fmt: skip
        return self.status(route)

    def status(self, route: str | None = None) -> dict[str, Any]:
        routes = [route] if route else sorted(self.router.live)
        out: dict[str, Any] = {}
        for r in routes:
            live = self._route(r)
            shadow = self.router.shadows.get(r)
            out[r] = {
                "live": {"router": live.router, "version": live.version,
                         "threshold": live.threshold},
                "shadow": None if shadow is None else {
                    "router": shadow.router, "version": shadow.version,
                    "threshold": shadow.threshold, "decisions": shadow.decisions,
                    "agreed": shadow.agreed},
                "history": [h.version for h in self.history.get(r, [])],
            }  # fmt: skip
        return {"routes": out}
