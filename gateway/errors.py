"""The gateway's error tree, and its one mapping to OpenAI's error object.

    GatewayError                      any failure a client is told about
    ├── InvalidRequest        400     bad JSON, wrong types, missing fields
    │   ├── ImageRejected     400     no/two images, bad base64, not JPEG/PNG, too many pixels
    │   ├── IndicationTooLong 400     the clinical indication would overflow the report model's context
    │   └── UnsupportedParameter 400  an OpenAI parameter the model cannot honour (n > 1, tools, logprobs, ...)
    ├── AuthenticationFailed  401     missing or wrong API key (the client's key for the gateway)
    ├── PermissionDenied      403     the client may not do this, or not with this model
    ├── RouteNotFound         404     no such path (also 405: MethodNotAllowed)
    ├── ModelNotFound         404     a model name no route serves
    ├── AlreadySigned         409     a result a radiologist has signed already: who and when
    ├── PayloadTooLarge       413     body over the size limit
    ├── HeadersTooLarge       431     request headers over the size limit
    ├── TooManyRequests       429     a limit is reached and nothing was done (Retry-After)
    │   ├── ClientOverLimit   429     the client's own concurrency or rate limit
    │   └── BackendSaturated  429     a backend's concurrency limit
    ├── ClientDisconnected    499     the client left; its backend calls were cancelled (logged, never sent)
    ├── UpstreamRejected      4xx     a backend refused the request: its status and reason, relayed
    ├── BackendAuthFailed     502     a backend refused the gateway's own API key for it
    ├── ReportInvalid         502     the report model's output is not a valid structured report (fail closed)
    │   └── ReportInconsistent 502    its free text contradicts stage one (withheld by GATEWAY_REPORT_CONSISTENCY)
    └── BackendFailed         503     a backend is unreachable, timed out, answered 5xx or broke off
        └── BackendUnavailable 503    its circuit is open after repeated failures: not called (Retry-After)

Domain code raises these and knows nothing of HTTP: each carries the status and
OpenAI error type it maps to as plain data, and gateway/routes/errors.py, the one
mapping, turns them into responses and stream error events. The message always
names the backend when one is involved.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    kind: str | None = None  # how a backend call failed (timeout, unreachable, http_503, ...), set where it is counted

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.code

    def headers(self) -> dict[str, str] | None:
        return None


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ImageRejected(InvalidRequest):
    code = "invalid_image"


class IndicationTooLong(InvalidRequest):
    code = "context_length_exceeded"

    def __init__(self, size: str, limit: int) -> None:
        super().__init__(
            f"the clinical indication is {size}; at most {limit} tokens of the report model fit its context "
            f"beside the findings and the report (GATEWAY_MAX_INDICATION_TOKENS): shorten it"
        )


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"

    def __init__(self, param: str, model: str, why: str) -> None:
        super().__init__(f"{param} is not supported by model {model!r}: {why}", param=param)


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"

    def __init__(self, caller: str, permission: str, model: str | None = None) -> None:
        what = f"{str(permission)!r} with model {model!r}" if model else repr(str(permission))  # 'review', not the enum
        super().__init__(f"{caller!r} has no permission for {what}")


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, allow: str | None) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str] | None:
        return {"Allow": self.allow} if self.allow else None  # RFC 9110: a 405 names the methods there are


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class AlreadySigned(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "already_signed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class HeadersTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class TooManyRequests(GatewayError):
    """A 429: a limit is reached, nothing was done; Retry-After says when to try again."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class BackendSaturated(TooManyRequests):
    code = "backend_saturated"

    def __init__(self, backend: str, in_flight: int, retry_after_s: int, kept_for_stat: int = 0) -> None:
        kept = f"; {kept_for_stat} more kept for STAT requests" if kept_for_stat else ""
        super().__init__(f"{backend} backend is at its concurrency limit ({in_flight} in flight{kept})", retry_after_s)
        self.backend = backend


class ClientOverLimit(TooManyRequests):
    """Refused before any work: the limit is the client's own (gateway/identity.py), not a backend's."""

    code = "client_over_limit"

    def __init__(self, client: str, limit: str, retry_after_s: int) -> None:
        super().__init__(f"client {client!r} is at its limit of {limit}", retry_after_s)


class ClientDisconnected(GatewayError):
    status = 499  # nginx's "client closed request": only ever seen in logs and metrics
    type = "invalid_request_error"
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("the client disconnected; its backend calls were cancelled")


class UpstreamRejected(GatewayError):
    type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, backend: str, status: int, reason: str) -> None:
        super().__init__(f"{backend} backend rejected the request ({status}): {reason}")
        self.status = status
        self.backend = backend


class BackendAuthFailed(GatewayError):
    status = 502
    type = "server_error"
    code = "backend_auth_failed"

    def __init__(self, backend: str, status: int) -> None:
        super().__init__(
            f"{backend} backend refused the gateway's API key for it ({status}); check GATEWAY_{backend.upper()}_API_KEY"
        )
        self.backend = backend


class ReportInvalid(GatewayError):
    """Carried in a `partial` result and a stream's error event; the structured report is withheld."""

    status = 502
    type = "server_error"
    code = "report_invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(f"report backend's output failed validation, withheld: {reason}")
        self.backend = "report"


class ReportInconsistent(ReportInvalid):
    """The report validated, but its text states a finding otherwise than stage one; withheld all the same."""

    code = "report_inconsistent"

    def __init__(self, contradictions: list[str]) -> None:
        GatewayError.__init__(self, f"report backend's text contradicts stage one, withheld: {'; '.join(contradictions)}")
        self.backend = "report"


class BackendFailed(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "backend_unavailable"

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend failed: {reason}")
        self.backend = backend
        self.reason = reason


class BackendUnavailable(BackendFailed):
    """Refused at once, without calling the backend, while its circuit breaker is open (backends/health.py)."""

    code = "circuit_open"

    def __init__(self, backend: str, failures: int, retry_after_s: int) -> None:
        super().__init__(
            backend, f"not called: its circuit is open after {failures} failures in a row; retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}
