"""The soft-threshold webhook: called once per budget period (a counter in the store decides
which replica sends it). Sending never delays or fails a request."""

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from gateway.budget import layout
from gateway.budget.view import Standing
from gateway.policies import Team
from gateway.store.base import Store

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("frugal.budget")


class Alerts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._session: aiohttp.ClientSession | None = None  # made for the first webhook
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def soft_crossed(self, team: Team, s: Standing | None) -> None:
        soft = team.policy.soft
        if s is None or soft is None or "alert" not in soft.actions or not soft.webhook:
            return
        task = asyncio.get_running_loop().create_task(self._once(team, s, soft.webhook))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _once(self, team: Team, s: Standing, url: str) -> None:
        w = s.line.window
        key = layout.alert(team.name, s.line.key_id, w.id)
        try:
            if await self._store.incr(key, 1, ttl_s=40 * 86400) != 1:
                return
            body: dict[str, Any] = {
                "event": "frugal.budget.soft_threshold", "team": team.name,
                "budget": s.line.name, "key_id": s.line.key_id, "period": w.period,
                "limit_usd": str(s.line.limit), "spent_usd": str(s.spent),
                "reserved_usd": str(s.reserved), "fraction_used": round(1 - s.fraction_left, 4),
                "resets_at": w.end.isoformat() if w.end else None,
            }  # fmt: skip
            status = await self.post(url, body)
            self.sent += 1
            log.info("budget alert sent team=%s budget=%s status=%d", team.name,
                     s.line.name, status)  # fmt: skip
        except Exception as e:  # an alert must never affect a request
            log.warning("budget alert failed team=%s: %s: %s", team.name, type(e).__name__, e)

    async def post(self, url: str, body: dict[str, Any]) -> int:
        """POST `body` as JSON; the status. Egress follows HTTPS_PROXY / HTTP_PROXY / NO_PROXY
        (`trust_env`), as the upstream client does."""
        import aiohttp  # only gateways that send webhooks pay for it (~9 MB)

        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=True)
        timeout = aiohttp.ClientTimeout(total=5)
        async with self._session.post(url, json=body, timeout=timeout) as r:
            return r.status

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
