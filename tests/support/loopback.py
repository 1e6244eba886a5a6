"""TCP servers on a free loopback port, each run on an event loop in a thread of its own (so a
test's own loop can block on them): a base that tracks and closes every connection on exit, and
a relay to another loopback port (optionally behind TLS, optionally slowing the replies)."""

import asyncio
import contextlib
import ssl
import threading
from typing import Self

from tests.support.servers import free_port


class LoopbackServer:
    """Subclasses implement `handle(reader, writer)`; use as a context manager."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tasks: set[asyncio.Future[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await w.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._tls)
        )
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self._writers.add(w)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.handle(r, w)
        finally:
            w.close()
            self._writers.discard(w)

    def track(self, w: asyncio.StreamWriter) -> None:
        """Close `w` too on exit (a connection the handler opened itself)."""
        self._writers.add(w)


class Relay(LoopbackServer):
    """Forwards each connection to 127.0.0.1:`target_port`. `delay_s` holds back the target's
    replies (the target still runs every command at once, as over a slow or congested link);
    `tls` terminates TLS in front of a plaintext target (stunnel-like)."""

    def __init__(self, target_port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.target_port = target_port
        self.delay_s = 0.0

    async def handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.track(sw)
        pipes = {
            asyncio.ensure_future(self._pipe(cr, sw, slow=False)),
            asyncio.ensure_future(self._pipe(sr, cw, slow=True)),
        }
        self._tasks |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pipes:
                t.cancel()
            sw.close()
            self._writers.discard(sw)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, slow: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await r.read(65536):
                if slow and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                w.write(data)
                await w.drain()
