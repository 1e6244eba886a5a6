"""`POST /v1/feedback`: the application scores an answer it got from a route with `learning:`.

    POST /v1/feedback   Authorization: Bearer <the team's key>
    {"request_id": "<x-request-id of the answer>", "score": 0.0..1.0}   or   "thumbs": "up"|"down"

Only the team that made the request may score it; an unknown request, one of another team, or
one older than the route's `learning.feedback_window_hours` answers 404 alike. A second
feedback on the same request replaces the first."""

import time
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.auth import authenticate
from gateway.errors import NotFound, PayloadTooLarge
from gateway.front import parse_json
from gateway.schemas import invalid

router = APIRouter()


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(min_length=1, max_length=200)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one(self) -> "Feedback":
        if (self.score is None) == (self.thumbs is None):
            raise ValueError("give exactly one of `score` (0..1) and `thumbs` (up|down)")
        return self

    @property
    def value(self) -> float:
        if self.score is not None:
            return self.score
        return 1.0 if self.thumbs == "up" else 0.0


def _parse(raw: bytes) -> Feedback:
    try:
        return Feedback.model_validate(parse_json(raw))
    except ValidationError as e:
        raise invalid(e, "feedback") from None


@router.post("/v1/feedback")
async def feedback(request: Request) -> Response:
    rt = request.app.state.rt
    principal = authenticate(rt, request.headers.get("authorization"), request.scope)
    raw = await request.body()
    if len(raw) > rt.settings.server.max_body_bytes:
        raise PayloadTooLarge("The request body is larger than server.max_body_bytes.")
    fb = _parse(raw)
    learning = rt.learning
    memo = await learning.labels.get_memo(principal.team, fb.request_id)
    if memo is None or memo.get("team") != principal.team:
        raise NotFound(f"No answer {fb.request_id!r} of your team to give feedback on (unknown, "
                       "expired, or its route does not collect labels).",
                       param="request_id")  # fmt: skip
    cfg = learning.routes.get(memo.get("route"))
    if cfg is None:
        raise NotFound(f"The route of request {fb.request_id!r} no longer collects labels.",
                       param="request_id")  # fmt: skip
    label = {
        "request_id": fb.request_id, "source": "feedback", "route": memo["route"],
        "team": principal.team, "messages": memo.get("messages"), "tools": memo.get("tools"),
        "served": {"tier": memo.get("tier"), "model": memo.get("model")},
        "answers": {memo.get("tier") or "served": memo.get("answer")},
        "cost": {memo.get("tier") or "served": memo.get("cost")},
        "feedback": {"score": fb.value, "thumbs": fb.thumbs, "comment": fb.comment},
        "verdict": "feedback", "created": round(time.time(), 3),
    }  # fmt: skip
    await learning.labels.put(label, cfg.retention_days)
    learning.counts["labelled_feedback"] += 1
    body = {"object": "feedback", "request_id": fb.request_id, "score": fb.value,
            "status": "recorded"}  # fmt: skip
    return Response(orjson.dumps(body), 200, media_type="application/json")
