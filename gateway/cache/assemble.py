"""Rebuild a whole completion body from streamed chunks, so that a streamed miss is stored in
the same form as a non-streamed one (they share entries)."""

from typing import Any

from gateway.usage import Usage, usage_from


class Assembler:
    """Feed every chunk in order; `body()` is the completion the chunks add up to."""

    def __init__(self, chat: bool) -> None:
        self._chat = chat
        self._choices: dict[int, dict[str, Any]] = {}
        self._head: dict[str, Any] = {}
        self.usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> None:
        if not self._head:
            keep = ("id", "created", "system_fingerprint")
            self._head = {k: chunk[k] for k in keep if k in chunk}
        reported = usage_from(chunk)
        if reported is not None:
            self.usage = reported
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._feed_choice(choice)

    def _feed_choice(self, ch: dict[str, Any]) -> None:
        index = int(ch.get("index") or 0)
        out = self._choices.setdefault(index, _empty(index, self._chat))
        if ch.get("finish_reason") is not None:
            out["finish_reason"] = ch["finish_reason"]
        lp = ch.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            out["logprobs"] = out["logprobs"] or {"content": []}
            out["logprobs"]["content"].extend(lp["content"])
        if not self._chat:
            out["text"] += str(ch.get("text") or "")
            return
        delta = ch.get("delta") or {}
        msg = out["message"]
        if isinstance(delta.get("role"), str):
            msg["role"] = delta["role"]
        if isinstance(delta.get("content"), str):
            msg["content"] = (msg["content"] or "") + delta["content"]
        if isinstance(delta.get("refusal"), str):
            msg["refusal"] = (msg.get("refusal") or "") + delta["refusal"]
        for tc in delta.get("tool_calls") or ():
            if isinstance(tc, dict):
                _merge_tool_call(msg, tc)

    def body(self) -> dict[str, Any]:
        choices = [self._choices[i] for i in sorted(self._choices)]
        obj = "chat.completion" if self._chat else "text_completion"
        return {**self._head, "object": obj, "choices": choices}


def _empty(index: int, chat: bool) -> dict[str, Any]:
    if chat:
        return {"index": index, "message": {"role": "assistant", "content": None},
                "finish_reason": None, "logprobs": None}  # fmt: skip
    return {"index": index, "text": "", "finish_reason": None, "logprobs": None}


def _merge_tool_call(msg: dict[str, Any], tc: dict[str, Any]) -> None:
    calls: list[dict[str, Any]] = msg.setdefault("tool_calls", [])
    index = int(tc.get("index") or 0)
    while len(calls) <= index:
        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    out = calls[index]
    if tc.get("id"):
        out["id"] = tc["id"]
    if tc.get("type"):
        out["type"] = tc["type"]
    fn = tc.get("function") or {}
    if isinstance(fn.get("name"), str):
        out["function"]["name"] += fn["name"]
    if isinstance(fn.get("arguments"), str):
        out["function"]["arguments"] += fn["arguments"]
