"""Cascade: answer with the small tier first and escalate to the large one when a check on the
small answer fails. Fixed checks: an empty answer, one cut off by max_tokens, a refusal, a low
mean token log-probability (where the upstream returned them). The learned check: a verifier
(gateway/router/verifier.py) scores (conversation, small answer) and escalates at or above the
route's threshold; with `mix`, the route's prompt-router score and the verifier's are mixed
(gateway/router/verifier.py `Mix`) and the mixed score meets the threshold instead. Budget-aware:
a team whose budget says small only is never escalated."""

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import CascadeConfig
from gateway.router.model_thread import run_model
from gateway.router.verifier import TOP_LOGPROBS, Mix, Verifier, load_verifier

log = logging.getLogger("frugal.cascade")

_REFUSAL = re.compile(
    r"^\s*(?:I'm sorry|I am sorry|Sorry|I apologi[sz]e|As an AI|I can(?:no|')t (?:help|assist|"
    r"answer|provide|do)|I(?: am|'m) (?:not able|unable) to)",
    re.IGNORECASE,
)


def _texts(choice: dict[str, Any]) -> str:
    msg = choice.get("message")
    if isinstance(msg, dict):
        if msg.get("tool_calls"):
            return "<tool call>"  # a tool call is an answer, not an empty one
        content = msg.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _mean_logprob(choice: dict[str, Any]) -> float | None:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    values: list[float] = []
    if isinstance(lp.get("content"), list):  # chat
        values = [t["logprob"] for t in lp["content"]
                  if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]  # fmt: skip
    elif isinstance(lp.get("token_logprobs"), list):  # completions
        values = [v for v in lp["token_logprobs"] if isinstance(v, int | float)]
    return sum(values) / len(values) if values else None


def escalation_reason(body: dict[str, Any], cfg: CascadeConfig) -> str | None:
    """Why the small answer is not good enough by the fixed checks, or None when it passes."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "empty"
    for choice in choices:
        if not isinstance(choice, dict):
            return "empty"
        text = _texts(choice)
        if "empty" in cfg.escalate_on and not text.strip():
            return "empty"
        if "truncated" in cfg.escalate_on and choice.get("finish_reason") == "length":
            return "truncated"
        if "refusal" in cfg.escalate_on and _REFUSAL.match(text):
            return "refusal"
        mean = _mean_logprob(choice)
        if cfg.min_mean_logprob is not None and mean is not None and mean < cfg.min_mean_logprob:
            return f"low_logprob({mean:.2f}<{cfg.min_mean_logprob:g})"
    return None


def verifier_of(cfg: CascadeConfig) -> Verifier | None:
    return None if cfg.verifier is None else load_verifier(cfg.verifier)


def threshold_of(cfg: CascadeConfig, verifier: Verifier) -> float:
    return verifier.model.threshold if cfg.threshold is None else cfg.threshold


def mix_of(cfg: CascadeConfig, verifier: Verifier) -> Mix | None:
    """The route's mix with its weight and threshold, or None (`mix: 0`; config validation
    makes sure the verifier records one and the weight has a threshold)."""
    if cfg.mix == 0 or verifier.mix is None:
        return None
    if cfg.threshold is not None:
        weight = verifier.mix.weight if cfg.mix == "auto" else float(cfg.mix)
        return verifier.mix.with_weight(weight).at(cfg.threshold)
    return verifier.mix if cfg.mix == "auto" else verifier.mix.with_weight(float(cfg.mix), True)


def upstream_extra(cfg: CascadeConfig, stream: bool = False, chat: bool = True) -> dict[str, Any]:
    """Fields the small call needs for the check: log-probabilities when the verifier reads
    them (their top alternatives give the entropy; the completions API takes their number), a
    second sample for agreement, and for a checked stream no streaming (the answer is checked
    whole). None removes a field."""
    extra: dict[str, Any] = {"stream": None, "stream_options": None} if stream else {}
    verifier = verifier_of(cfg)
    if verifier is not None and verifier.model.uses_logprobs:
        if chat:
            extra.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        else:
            extra["logprobs"] = TOP_LOGPROBS
    if verifier is not None and cfg.samples > 1:
        extra["n"] = cfg.samples
    return extra


def merged(body: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if not extra:
        return body
    out = {**body, **extra}
    return {k: v for k, v in out.items() if v is not None or k not in extra}


def without_extra(body: dict[str, Any], sent: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    """Hide from the client what the cascade asked for and the client did not: the
    log-probabilities, and the second sample (its usage stays: it was billed)."""
    if sent.get("logprobs") and not asked.get("logprobs"):
        for choice in body.get("choices") or ():
            if isinstance(choice, dict):
                choice["logprobs"] = None
    if "n" in sent and int(asked.get("n") or 1) < int(sent["n"]):
        body["choices"] = [c for c in body.get("choices") or () if isinstance(c, dict)
                           and int(c.get("index", 0)) < int(asked.get("n") or 1)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str | None  # why to escalate; None when the answer passes
    note: str  # what was checked, for the x-frugal-cascade header
    score: float | None = None


async def check(
    body: dict[str, Any], cfg: CascadeConfig, messages: Sequence[Mapping[str, Any]],
    router_score: float | None = None, scorer: str | None = None,
) -> Verdict:  # fmt: skip
    """The fixed checks, then the verifier (on the first choice; a second sample, when asked
    for, is the agreement signal), mixed with the route's `router_score` when the route has
    `mix` and `scorer` is the router the mix was fitted for (else the verifier alone, at its
    own recorded threshold)."""
    reason = escalation_reason(body, cfg)
    if reason is not None:
        return Verdict(reason, reason)
    verifier = verifier_of(cfg)
    if verifier is None:
        return Verdict(None, "passed")
    choices = [c for c in body.get("choices") or () if isinstance(c, dict)]
    first = choices[0]
    if isinstance(first.get("message"), dict) and first["message"].get("tool_calls"):
        return Verdict(None, "passed")  # a tool call: nothing the verifier was trained on
    second = _texts(choices[1]) if cfg.samples > 1 and len(choices) > 1 else None
    args = (messages, _texts(first), first.get("logprobs"), second, first.get("finish_reason"))
    try:
        if verifier.blocking:
            score = await run_model(verifier.score, *args)
        else:
            score = verifier.score(*args)
    except Exception:  # a failing check must not fail the request: the answer stands
        log.exception("cascade: verifier %s failed; the small answer is kept", verifier.name)
        return Verdict(None, f"verifier {verifier.name} failed: kept", None)
    mix = mix_of(cfg, verifier)
    value, threshold, what = score, threshold_of(cfg, verifier), f"verifier {verifier.name}"
    if mix is not None and router_score is not None and scorer == mix.router:
        value, threshold = mix.score(router_score, score), mix.threshold
        what = (f"mix {mix.weight:g} of router {scorer} {router_score:.3f} and verifier "
                f"{verifier.name} {score:.3f}:")  # fmt: skip
    elif mix is not None:  # no score of the mix's router: the verifier alone, at its own
        threshold = verifier.model.threshold
        what = f"verifier {verifier.name} (no {mix.router} score to mix)"
    if value >= threshold:
        why = f"{what} {value:.3f}>={threshold:g}"
        return Verdict(why, why, score)
    return Verdict(None, f"passed {what} {value:.3f}<{threshold:g}", score)
