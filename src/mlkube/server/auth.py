"""API keys: which requests may use the protected routes.

`ApiKeys` holds the configured keys (API_KEY and API_KEY_FILE, comma-separated, so an old and a new key
overlap during a rotation) and checks a request's headers against them in constant time. Keys are never
logged and never part of an error message.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from mlkube.errors import Unauthorized


class ApiKeys:
    """The keys a worker accepts; none configured: every request passes."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def check(self, headers: Mapping[str, str]) -> None:
        """Unauthorized unless the headers hold one of the keys (`X-API-Key` or `Authorization: Bearer`)."""
        if not self._keys:
            return
        presented = presented_key(headers)
        if presented is None:
            raise Unauthorized("missing API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'")
        candidate = presented.encode()
        # compare against every key so the time taken does not tell which key (or none) matched
        matched = [hmac.compare_digest(candidate, key) for key in self._keys]
        if not any(matched):
            raise Unauthorized("invalid API key")


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
