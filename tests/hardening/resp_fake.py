"""A scripted RESP server for the error classes a single real Redis cannot easily produce
(LOADING, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, RESP3 frames, broken frames): every command gets
the next canned reply, then `default`."""

import asyncio
import contextlib

import hiredis

from tests.support.loopback import LoopbackServer


class FakeResp(LoopbackServer):
    def __init__(self, replies: list[bytes], default: bytes = b"+OK\r\n") -> None:
        super().__init__()
        self.replies = list(replies)
        self.default = default
        self.commands: list[list[bytes]] = []

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        reader = hiredis.Reader()
        with contextlib.suppress(OSError):
            while data := await r.read(65536):
                reader.feed(data)
                while (cmd := reader.gets()) is not False:
                    self.commands.append(cmd)
                    w.write(self.replies.pop(0) if self.replies else self.default)
                await w.drain()
