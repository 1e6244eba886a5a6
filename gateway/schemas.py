"""What a client may send. Validation only: the body forwarded upstream is the client's own
JSON (unknown fields kept) with `model` replaced, so nothing is lost in translation."""

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import InvalidRequest

# Fields that would let a client steer the gateway's upstream or credentials (CVE-2024-6587).
FORBIDDEN = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "api_type", "organization",
        "custom_llm_provider", "extra_headers", "headers", "aws_access_key_id",
        "aws_secret_access_key", "vertex_credentials", "azure_ad_token", "litellm_params",
    }
)  # fmt: skip


class _Req(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Message(_Req):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Req):
    include_usage: bool | None = None


Penalty = Annotated[float | int, Field(ge=-2, le=2)]
Stop = str | list[str] | None


class _Generation(_Req):
    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float | int, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float | int, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    stop: Stop = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, float | int] | None = None
    user: str | None = None


class ChatRequest(_Generation):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None


class CompletionRequest(_Generation):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None
    echo: bool | None = None


class EmbeddingRequest(_Req):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], body: Any) -> M:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    bad = FORBIDDEN.intersection(body)
    if bad:
        field = sorted(bad)[0]
        raise InvalidRequest(
            f"The field {field!r} is not accepted: upstreams and credentials are set by the "
            "gateway's configuration, never by the client.",
            param=field,
        )
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise invalid(e) from None


def invalid(e: ValidationError, what: str = "request") -> InvalidRequest:
    """The client's error for a body that failed validation: its first error, with the path
    to the field as `param`."""
    err = e.errors()[0]
    param = ".".join(str(p) for p in err["loc"]) or None
    msg = "is required" if err["type"] == "missing" else err["msg"]
    return InvalidRequest(f"Invalid {what}: {param}: {msg}" if param else f"Invalid {what}: {msg}",
                          param=param)  # fmt: skip
