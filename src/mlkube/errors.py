"""One error root. HTTP-facing errors carry their status; the server maps them with one handler."""

from __future__ import annotations


class MlkubeError(Exception):
    """Root of every error mlkube raises on purpose."""


class ConfigError(MlkubeError):
    """A setting is invalid; the message names the variable and the value."""


class BundleError(MlkubeError):
    """A model bundle is missing, tampered with or of an unknown format; the message names the file."""


class RequestError(MlkubeError):
    """A request the client can fix. `status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidInput(RequestError):
    """Well-formed JSON whose content cannot be scored (wrong count, not finite, too many rows...)."""

    status = 422


class Unauthorized(RequestError):
    status = 401


class NotFound(RequestError):
    status = 404


class PayloadTooLarge(RequestError):
    status = 413


class UnsupportedMediaType(RequestError):
    status = 415
