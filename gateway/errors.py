"""One small exception tree. Each class carries its HTTP status and its OpenAI error `type`;
clients always receive `{"error": {"message", "type", "param", "code"}}`."""

from typing import Any, ClassVar


class FrugalError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(FrugalError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(FrugalError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(FrugalError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFound(FrugalError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class PayloadTooLarge(FrugalError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(FrugalError):
    """The client did not send its whole request in time."""

    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class RateLimited(FrugalError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class InsufficientQuota(FrugalError):
    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class Unavailable(FrugalError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"


class UpstreamError(FrugalError):
    """An upstream model failed. `retryable` marks connection errors, 429 and 5xx."""

    status = 502
    type = "api_error"
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        model: str,
        retryable: bool,
        upstream_status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.model = model
        self.retryable = retryable
        self.upstream_status = upstream_status
        # The request reached the upstream, which may have processed (and billed) it: no
        # further attempt, on this model or another (resilience.py).
        self.maybe_processed = False

    def after_send(self) -> "UpstreamError":
        """This error, marked as one the upstream may have processed (not retried)."""
        self.retryable, self.maybe_processed = False, True
        return self


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"

    def __init__(self, message: str, *, model: str) -> None:
        super().__init__(message, model=model, retryable=True)


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (a 4xx other than 429): the client's problem,
    passed on as a 400 with the upstream's message, never retried."""

    status = 400
    type = "invalid_request_error"
    default_code = "upstream_rejected"

    def __init__(self, message: str, *, model: str, upstream_status: int) -> None:
        super().__init__(message, model=model, retryable=False, upstream_status=upstream_status)
