"""Hot reload of the policies folder (team policies and keys.yaml): on a file change (polled)
or on SIGHUP. A new set is swapped in whole, between requests' reads, so none is dropped; an
invalid file is refused with one clear log line and the previous policies stay in force."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from gateway.config import ConfigError
from gateway.keys import KeyRing, load_keys
from gateway.policies import Policies, load_policies

log = logging.getLogger("frugal.policies")
Signature = tuple[tuple[str, int, int], ...]


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
    ) -> None:  # fmt: skip
        self.folder = folder
        self.default_tz = default_tz
        self.apply = apply
        self.interval_s = interval_s
        self._sig = signature(folder)
        self._wake = asyncio.Event()
        self.reloads = 0
        self.refused = 0

    def reload(self) -> bool:
        """Load everything; apply it when valid. True when the new policies are in force."""
        self._sig = signature(self.folder)
        try:
            policies = load_policies(self.folder, self.default_tz)
            keys = load_keys(self.folder)
        except ConfigError as e:
            self.refused += 1
            log.error("policy reload refused, the previous policies stay in force: %s",
                      str(e).replace("\n", " "))  # fmt: skip
            return False
        self.apply(policies, keys)
        self.reloads += 1
        log.info("policies reloaded: %d teams, %d keys", len(policies.teams), len(keys))
        return True

    def install_sighup(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._wake.set)
        except (RuntimeError, ValueError, NotImplementedError):
            log.debug("SIGHUP reload unavailable here (not the main thread)")

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # interval 0: no polling, only SIGHUP (and the admin endpoint) reload
                await asyncio.wait_for(self._wake.wait(), self.interval_s or None)
            woke = self._wake.is_set()
            self._wake.clear()
            if woke or (self.interval_s and signature(self.folder) != self._sig):
                self.reload()
