"""`GET` and `DELETE /v1/responses/{id}`: a team's stored responses (gateway/apis/
response_store.py). Another team's id, an expired one and an unknown one are all a 404."""

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.apis import response_store
from gateway.apis.bridge import authorization
from gateway.auth import authenticate
from gateway.errors import NotFound
from gateway.runtime import Runtime

router = APIRouter()


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"No response with id {response_id!r} found.", param="response_id")


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    team = authenticate(rt, authorization(request.headers), request.scope).team
    entry = await response_store.load(rt.store, team, response_id)
    if entry is None:
        raise _not_found(response_id)
    return _json(entry["response"])


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    rt: Runtime = request.app.state.rt
    team = authenticate(rt, authorization(request.headers), request.scope).team
    if not await response_store.delete(rt.store, team, response_id):
        raise _not_found(response_id)
    return _json({"id": response_id, "object": "response", "deleted": True})
