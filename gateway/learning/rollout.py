"""Safe rollout of a router: a candidate runs in shadow first (scored on live traffic, logged,
never acted on), then `promote` makes it the route's live scorer and `rollback` restores the
one before. Each switch replaces the route's `Live` entry whole (one dict assignment on the
event loop): a request reads the entry once, so requests in flight finish with the router they
started with and none is dropped; there is no restart. Every decision names its router
version (log line `router=`, header `x-frugal-router-version`).

The route's state (live router, shadow, promotion history) is also written to the store
(`frugal:router:state:<route>`); every worker of every replica reads it every `POLL_S` seconds
and follows it (loading an artifact in a worker thread, then swapping), so a switch sent to one
worker reaches all of them, and a worker started later starts from it. With Redis the state
outlives restarts: a promotion stays in force until it is rolled back, as long as the route's
configured `router` and `threshold` are those it was made from (a state made from another
configuration is ignored: editing the configuration wins)."""

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.config import RouteConfig
from gateway.errors import InvalidRequest, NotFound
from gateway.router import load_scorer
from gateway.routing import Live, Router
from gateway.store import Store

log = logging.getLogger("frugal.rollout")
POLL_S = 2.0


def state_key(route: str) -> str:
    return f"frugal:router:state:{route}"


def _entry(live: Live) -> dict[str, Any]:
    return {"router": live.router, "threshold": live.threshold, "version": live.version}


@dataclass
class Rollout:
    router: Router
    store: Store
    routes: Mapping[str, RouteConfig]  # as configured
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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

    async def _state(self, route: str) -> dict[str, Any]:
        try:
            raw = await self.store.get(state_key(route))
        except Exception as e:  # the store down: this worker's own view
            log.warning("router state of route %s unreadable (%s): using this worker's", route, e)
            raw = None
        if raw is not None:
            state = dict(orjson.loads(raw))
            if state.get("base") == self._base(route):
                return state
        shadow = self.router.shadows.get(route)
        return {"base": self._base(route), "live": _entry(self.router.live[route]),
                "shadow": None if shadow is None else _entry(shadow), "history": []}  # fmt: skip

    def _base(self, route: str) -> dict[str, Any]:
        """The route's configured router and threshold: what a stored state was made from."""
        cfg = self.routes[route]
        return {"router": cfg.router, "threshold": cfg.threshold}

    async def _save(self, route: str, state: dict[str, Any]) -> None:
        try:
            await self.store.set(state_key(route), orjson.dumps(state))
        except Exception as e:  # switched here; other workers follow once it is written
            log.warning("router state of route %s not saved (%s): other workers keep theirs",
                        route, e)  # fmt: skip

    async def shadow(self, route: str, name: str, threshold: float | None) -> dict[str, Any]:
        """Run `name` in shadow on `route` (replacing any shadow it has)."""
        live = self._route(route)
        scorer = await self._load(name)
        async with self._lock:
            new = Live(name, scorer, live.threshold if threshold is None else threshold)
            self.router.shadows[route] = new
            state = await self._state(route)
            state["shadow"] = _entry(new)
            await self._save(route, state)
        log.info("router shadow route=%s shadow=%s version=%s", route, name, new.version)
        return await self.status(route)

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
            state = await self._state(route)
            state["history"] = [*state.get("history", []), _entry(self.router.live[route])]
            state["live"] = _entry(new)
            if shadow is not None and shadow.router == name:
                state["shadow"] = None
                self.router.shadows.pop(route, None)
            self.router.live[route] = new  # the swap
            await self._save(route, state)
        log.info("router promote route=%s from=%s to=%s threshold=%g", route, live.version,
                 new.version, new.threshold)  # fmt: skip
        return await self.status(route)

    async def rollback(self, route: str) -> dict[str, Any]:
        """Restore the live router that the last promotion replaced."""
        before = self._route(route)
        async with self._lock:
            state = await self._state(route)
            history = state.get("history") or []
            if not history:
                raise InvalidRequest(f"Route {route!r} has no earlier router to roll back to.")
            back = history.pop()
            await self._apply(route, back, shadow=False)  # loads it, then the swap
            state["live"], state["history"] = back, history
            await self._save(route, state)
        log.info("router rollback route=%s from=%s to=%s", route, before.version,
                 self.router.live[route].version)  # fmt: skip
        return await self.status(route)

    async def _apply(self, route: str, entry: dict[str, Any], shadow: bool) -> None:
        """Make `entry` ({router, threshold, version}) the route's live router (or shadow)."""
        table = self.router.shadows if shadow else self.router.live
        current = table.get(route)
        if current is not None and current.version == entry["version"]:
            if current.threshold != entry["threshold"]:
                table[route] = Live(current.router, current.scorer, float(entry["threshold"]),
                                    current.version)  # fmt: skip
            return
        scorer = await self._load(entry["router"])
        new = Live(entry["router"], scorer, float(entry["threshold"]))
        if new.version != entry["version"]:
            log.warning("router %s on disk is %s, not %s as recorded; using it", entry["router"],
                        new.version, entry["version"])  # fmt: skip
        table[route] = new

    async def _follow(self) -> None:
        """Follow the stored state of every route (switches made through another worker)."""
        while True:
            await asyncio.sleep(POLL_S)
            for route in list(self.router.live):
                try:
                    raw = await self.store.get(state_key(route))
                    if raw is None:
                        continue
                    state = orjson.loads(raw)
                    if state.get("base") != self._base(route):
                        continue  # made from another configuration of the route
                    async with self._lock:
                        await self._apply(route, state["live"], shadow=False)
                        if state.get("shadow"):
                            await self._apply(route, state["shadow"], shadow=True)
                        else:
                            self.router.shadows.pop(route, None)
                except Exception:  # the store down, an artifact gone: keep what runs now
                    log.exception("router state of route %s not applied", route)

    async def status(self, route: str | None = None) -> dict[str, Any]:
        """This worker's live router and shadow (with the decisions it scored here), and the
        route's promotion history (oldest first)."""
        routes = [route] if route else sorted(self.router.live)
        out: dict[str, Any] = {}
        for r in routes:
            live = self._route(r)
            shadow = self.router.shadows.get(r)
            history = (await self._state(r)).get("history") or []
            out[r] = {
                "live": _entry(live),
                "shadow": None if shadow is None else {
                    **_entry(shadow), "decisions": shadow.decisions, "agreed": shadow.agreed},
                "history": [h["version"] for h in history],
            }  # fmt: skip
        return {"routes": out}
