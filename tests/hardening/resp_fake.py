"""A scripted RESP server for the error classes a single real Redis cannot easily produce
(LOADING, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, RESP3 frames, broken frames): every command gets
the next canned reply, then `default`."""

import asyncio
import contextlib
import threading

import hiredis

from tests.support.servers import free_port


class FakeResp:
    def __init__(self, replies: list[bytes], default: bytes = b"+OK\r\n") -> None:
        self.replies = list(replies)
        self.default = default
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.commands: list[list[bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "FakeResp":
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
            with contextlib.suppress(OSError):
                await w.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self._writers.add(w)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        reader = hiredis.Reader()
        with contextlib.suppress(OSError):
            while data := await r.read(65536):
                reader.feed(data)
                while (cmd := reader.gets()) is not False:
                    self.commands.append(cmd)
                    w.write(self.replies.pop(0) if self.replies else self.default)
                await w.drain()
        w.close()
        self._writers.discard(w)
