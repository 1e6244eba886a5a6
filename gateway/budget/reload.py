"""Hot reload of the policies folder (team policies and keys.yaml): on a file change (polled)
or on SIGHUP. A new set is swapped in whole, between requests' reads, so none is dropped; an
invalid or unreadable file (bad YAML, a non-UTF-8 byte, an I/O error, anything) is refused with one
clear log line, the previous policies and keys stay in force, and the load is retried with backoff
(and at once on the next change or SIGHUP) until it succeeds: the watcher itself never stops."""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from gateway.config import ConfigError
from gateway.keys import KeyRing, load_keys
from gateway.policies import Policies, load_policies

log = logging.getLogger("frugal.policies")
Signature = tuple[tuple[str, int, int], ...]
RETRY_MIN_S = 1.0  # a failed load is retried after this long, doubling up to RETRY_MAX_S
RETRY_MAX_S = 60.0


def signature(folder: Path) -> Signature:
    if not folder.is_dir():
        return ()
    out = []
    for p in sorted(folder.glob("*.yaml")):
        with contextlib.suppress(OSError):
            st = p.stat()
            out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class PolicyWatcher:
    def __init__(
        self, folder: Path, default_tz: str,
        apply: Callable[[Policies, KeyRing], None], interval_s: float = 1.0,
        default_policy: str = "unlimited",
    ) -> None:  # fmt: skip
        self.folder = folder
        self.default_policy = default_policy
        self.default_tz = default_tz
        self.apply = apply
        self.interval_s = interval_s
        self._sig = signature(folder)
        self._wake = asyncio.Event()
        self.reloads = 0
        self.refused = 0
        self.failing = False  # the last load failed: retry it (backoff) until one succeeds
        self._retry_s = RETRY_MIN_S
        self._retry_at = 0.0

    def reload(self) -> bool:
        """Load everything; apply it when valid. True when the new policies are in force."""
        try:
            self._sig = signature(self.folder)
            policies = load_policies(self.folder, self.default_tz, self.default_policy)
            keys = load_keys(self.folder)
            self.apply(policies, keys)
        except Exception as e:  # whatever fails, the last good set stays
            self.refused += 1
            self.failing = True
            self._retry_at = time.monotonic() + self._retry_s
            why = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            log.error("policy reload refused, the previous policies and keys stay in force "
                      "(retrying in %.0fs): %s", self._retry_s, why.replace("\n", " "))  # fmt: skip
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            return False
        self.failing = False
        self._retry_s = RETRY_MIN_S
        self.reloads += 1
        log.info("policies reloaded: %d teams, %d keys", len(policies.teams), len(keys))
        return True

    def _timeout(self) -> float:
        """How long to sleep: the polling interval (with 0, no polling: only SIGHUP and the
        admin API reload, but the loop still wakes each second to see whether a load that failed
        there is due to be retried), or less when a failed load is due sooner."""
        wait = self.interval_s or RETRY_MIN_S
        if self.failing:
            wait = min(wait, max(0.0, self._retry_at - time.monotonic()))
        return wait

    def install_sighup(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._wake.set)
        except (RuntimeError, ValueError, NotImplementedError):
            log.debug("SIGHUP reload unavailable here (not the main thread)")

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._timeout())
            try:
                self._tick()
            except Exception:  # the watcher must outlive any failure, or fixes never apply
                log.exception("policy watcher error; the previous policies stay in force")

    def _tick(self) -> None:
        woke = self._wake.is_set()
        self._wake.clear()
        if woke or (self.interval_s and signature(self.folder) != self._sig):
            self._retry_s = RETRY_MIN_S  # a new file (or a SIGHUP) is tried at once
            self.reload()
        elif self.failing and time.monotonic() >= self._retry_at:
            self.reload()
