"""One error root, and every error that becomes an HTTP answer, each with its status and its headers.

The server turns any `RequestError` into a response in one place (`server/http.py: error_for`): the JSON
`{"error": message}`, `status`, and `headers` (`Allow` on a 405, `WWW-Authenticate` on a 401, `Retry-After`
on every 503). A route raises the error that says what happened and never builds an error response itself.
"""

from __future__ import annotations

Headers = tuple[tuple[str, str], ...]


class MlkubeError(Exception):
    """Root of every error mlkube raises on purpose."""


class ConfigError(MlkubeError):
    """A setting is invalid; the message names the variable and the value."""


class BundleError(MlkubeError):
    """A model bundle is missing, tampered with or of an unknown format; the message names the file."""


class RequestError(MlkubeError):
    """A request that cannot be answered as asked: `status` and `headers` are what the client gets.

    The base class is 400: a body that is not JSON, a header that is not a number.
    """

    status = 400
    headers: Headers = ()


class InvalidInput(RequestError):
    """Well-formed JSON whose content cannot be scored (wrong count, not finite, too many rows...)."""

    status = 422


class InferenceError(RequestError):
    """An Open Inference Protocol (V2) request the client can fix; the spec answers all of them 400."""

    status = 400


class Unauthorized(RequestError):
    """No API key, or not one of the configured keys."""

    status = 401
    headers: Headers = (("www-authenticate", 'Bearer realm="mlkube"'),)


class NotFound(RequestError):
    """No such route, model, model version or file."""

    status = 404


class MethodNotAllowed(RequestError):
    """The route exists but does not take this method; `Allow` lists those it takes."""

    status = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} not allowed on {path} (allowed: {', '.join(allowed)})")
        self.allowed = allowed
        self.headers = (("allow", ", ".join(allowed)),)


class MethodNotImplemented(RequestError):
    """A method this server does not know at all (never echoed: a method can be hundreds of KB long)."""

    status = 501

    def __init__(self) -> None:
        super().__init__("method not implemented: this server answers GET, HEAD and POST")


class RequestTimeout(RequestError):
    """The client did not send its whole body in time."""

    status = 408


class PayloadTooLarge(RequestError):
    """The body is over MAX_BODY_BYTES."""

    status = 413


class UnsupportedMediaType(RequestError):
    """The body's Content-Type is not JSON."""

    status = 415


class ServiceUnavailable(RequestError):
    """Not now, maybe in a second: every 503 tells the client when to retry."""

    status = 503
    headers: Headers = (("retry-after", "1"),)


class ModelNotReady(ServiceUnavailable):
    """The model is not loaded (yet, or ever: the message says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"model not ready: {reason}")


class Overloaded(ServiceUnavailable):
    """More than MAX_IN_FLIGHT requests in this worker: this one is shed (then the connection closed)."""
