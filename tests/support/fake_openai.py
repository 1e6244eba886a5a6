"""An in-process fake of a hosted OpenAI-compatible upstream, speaking the real wire format
(JSON responses, SSE streams with a final usage chunk and `[DONE]`, OpenAI error bodies).

Behaviour is scripted per test through `FakeOpenAI.script`: fail the next N calls with a status,
delay, drop the connection mid-stream, omit usage. Every request body received is recorded.
Runs an aiohttp server on a free loopback port in its own thread."""

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

WORDS = [
    "Frugal",
    " routes",
    " each",
    " prompt",
    " to",
    " the",
    " cheapest",
    " good",
    " model",
    ".",
]


@dataclass
class Script:
    fail_next: int = 0
    fail_status: int = 500
    delay_s: float = 0.0
    drop_after_chunks: int | None = None  # close the connection after this many chunks
    usage: bool = True
    chunk_delay_s: float = 0.0
    completion_tokens: int = len(WORDS)
    # vLLM's `continuous_usage_stats`: every chunk carries the usage so far (cumulative).
    usage_every_chunk: bool = False
    # Merged into every usage object sent (e.g. prompt_tokens_details with cached_tokens).
    usage_extra: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None  # report this many prompt tokens instead of counting
    # A reasoning model: writes (and bills) this many tokens, all but the answer's reasoning,
    # unless the request's max_completion_tokens / max_tokens cuts it short.
    reasoning_writes: int | None = None
    # Answers by request: the text of a (non-streamed) chat answer (e.g. a scripted judge).
    reply: Callable[[dict[str, Any]], str] | None = None
    # Upstream model id -> its context window in the fake's prompt tokens: a longer chat prompt
    # is refused with OpenAI's 400 `context_length_exceeded`.
    context_windows: dict[str, int] = field(default_factory=dict)
    logprob: float = -0.05  # each token's log-probability, when the request asks for them


@dataclass
class FakeOpenAI:
    api_key: str | None = None
    script: Script = field(default_factory=Script)
    requests: list[dict[str, Any]] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)  # each request's header
    url: str = ""

    def start(self) -> "FakeOpenAI":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self._app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def reset(self) -> None:
        self.script = Script()
        self.requests.clear()
        self.traceparents.clear()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # 4 MB prompts (issue 12)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _gate(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return None, _error(
                401, f"Incorrect API key provided: {request.headers.get('Authorization')}"
            )
        body = await request.json()
        self.requests.append(body)
        self.traceparents.append(request.headers.get("traceparent"))
        s = self.script
        if s.delay_s:
            await asyncio.sleep(s.delay_s)
        if s.fail_next > 0:
            s.fail_next -= 1
            return body, _error(s.fail_status, "scripted failure")
        return body, None

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, err = await self._gate(request)
        if err is not None:
            return err
        assert body is not None
        prompt = _prompt_tokens(body.get("messages", []))
        window = self.script.context_windows.get(str(body.get("model")))
        if window is not None and prompt > window:
            return web.json_response({"error": {
                "message": f"This model's maximum context length is {window} tokens. However, "
                           f"your messages resulted in {prompt} tokens.",
                "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded",
            }}, status=400)  # fmt: skip
        n = int(body.get("n") or 1)
        if body.get("stream"):
            return await self._stream(request, body, prompt, chat=True)
        text = "".join(WORDS[: self.script.completion_tokens])
        if self.script.reply is not None:
            text = self.script.reply(body)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": body["tools"][0]["function"]["name"],
                             "arguments": "{\"x\": 1}"},
            }]}  # fmt: skip
            finish = "tool_calls"
        resp: dict[str, Any] = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": i, "message": message, "finish_reason": finish,
                         "logprobs": self._logprobs(body, text)} for i in range(n)],
        }  # fmt: skip
        if self.script.usage:
            resp["usage"] = self._usage(prompt, self.script.completion_tokens * n)
        if self.script.reasoning_writes is not None:
            cap = body.get("max_completion_tokens") or body.get("max_tokens")
            wrote = min(self.script.reasoning_writes, cap or self.script.reasoning_writes)
            resp["choices"][0]["finish_reason"] = "length" if cap and wrote == cap else "stop"
            resp["usage"] = self._usage(prompt, wrote * n)
            resp["usage"]["completion_tokens_details"] = {"reasoning_tokens": max(0, wrote - 10)}
        return web.json_response(resp)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, err = await self._gate(request)
        if err is not None:
            return err
        assert body is not None
        prompt = len(str(body.get("prompt", "")).split())
        if body.get("stream"):
            return await self._stream(request, body, prompt, chat=False)
        resp: dict[str, Any] = {
            "id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "text": "".join(WORDS), "finish_reason": "stop",
                         "logprobs": None}],
        }  # fmt: skip
        if self.script.usage:
            resp["usage"] = _usage(prompt, len(WORDS))
        return web.json_response(resp)

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, err = await self._gate(request)
        if err is not None:
            return err
        assert body is not None
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(len(inputs))]  # fmt: skip
        tokens = sum(len(str(x).split()) for x in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _logprobs(self, body: dict[str, Any], text: str | None) -> dict[str, Any] | None:
        """OpenAI's chat `logprobs` object (llama-server's too): one entry per word, with
        `top_logprobs` alternatives when asked; None unless the request has `logprobs`."""
        if not body.get("logprobs") or not text:
            return None
        top = int(body.get("top_logprobs") or 0)
        lp = self.script.logprob

        def token(w: str, value: float) -> dict[str, Any]:
            return {"token": w, "logprob": value, "bytes": list(w.encode())}

        words = [w for w in text.replace(" ", "\0 ").split("\0") if w]
        alternatives = [[token(w, lp), *(token(f"{w}{k}", lp - 2.0 - k) for k in range(top))][:top]
                        for w in words]  # fmt: skip
        return {"content": [{**token(w, lp), "top_logprobs": alt}
                            for w, alt in zip(words, alternatives, strict=True)],
                "refusal": None}  # fmt: skip

    def _usage(self, prompt: int, completion: int) -> dict[str, Any]:
        s = self.script
        out: dict[str, Any] = _usage(s.prompt_tokens if s.prompt_tokens is not None else prompt,
                                     completion)  # fmt: skip
        out.update(s.usage_extra)
        return out

    async def _stream(
        self, request: web.Request, body: dict[str, Any], prompt: int, chat: bool
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        s = self.script
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"],
                "object": "chat.completion.chunk" if chat else "text_completion"}  # fmt: skip
        words = WORDS[: s.completion_tokens]
        chunks: list[dict[str, Any]] = []
        if chat:
            chunks.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                           "content": ""}, "finish_reason": None}]})  # fmt: skip
        for i, w in enumerate(words):
            choice = {"index": 0, "delta": {"content": w}} if chat else {"index": 0, "text": w}
            if chat and body.get("logprobs"):
                choice["logprobs"] = self._logprobs(body, w)
            chunks.append({**base, "choices": [{**choice, "finish_reason": None}]})
            if s.usage_every_chunk:
                chunks[-1]["usage"] = self._usage(prompt, i + 1)
        last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
        chunks.append({**base, "choices": [{**last, "finish_reason": "stop"}]})
        opts = body.get("stream_options") or {}
        if s.usage and opts.get("include_usage"):
            chunks.append({**base, "choices": [], "usage": self._usage(prompt, len(words))})
        for i, c in enumerate(chunks):
            if s.drop_after_chunks is not None and i >= s.drop_after_chunks:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
            if s.chunk_delay_s:
                await asyncio.sleep(s.chunk_delay_s)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages) + 3


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _error(status: int, message: str) -> web.Response:
    kind = (
        "rate_limit_error"
        if status == 429
        else "server_error"
        if status >= 500
        else "invalid_request_error"
    )
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status
    )
