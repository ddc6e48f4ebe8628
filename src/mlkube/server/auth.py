"""API keys: which requests may use the protected routes.

`ApiKeys` holds the configured keys (API_KEY and API_KEY_FILE, comma-separated, so an old and a new key
overlap during a rotation) and checks a request's headers against them in constant time. Keys are never
logged and never part of an error message.

API_KEY_FILE is watched: the kubelet updates a mounted Secret in place (it writes the new files into a new
folder and swaps the `..data` link to it), so once a second each worker stats the file, through the links,
and reads it again when its identity or size changed. A reloaded file follows the start-up rules (at least
one key, each of 16 characters or more); one that breaks them keeps the previous keys and logs a warning
that names the file, never a key. The request path itself does no extra work: the stat runs on a timer.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mlkube.errors import ConfigError, Unauthorized
from mlkube.settings import Settings, read_key_file

log = logging.getLogger("mlkube.server")

RELOAD_SECONDS = 1.0
Signature = tuple[int, int, int, int] | None


class ApiKeys:
    """The keys a worker accepts; none configured: every request passes.

    `keys` are the fixed ones (API_KEY); `key_file`'s keys (API_KEY_FILE) are added and follow the file.
    """

    def __init__(self, keys: Iterable[str], key_file: Path | None = None) -> None:
        self._fixed = tuple(keys)
        self._key_file = key_file
        self._signature: Signature = None
        self._keys = [key.encode() for key in self._fixed]
        if key_file is not None:
            self._signature = file_signature(key_file)
            self._use(read_key_file(key_file))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The settings' keys, API_KEY's apart from API_KEY_FILE's (settings holds both, file keys last)."""
        if settings.api_key_file is None:
            return cls(settings.api_key)
        file_keys = read_key_file(settings.api_key_file)
        fixed, from_file = settings.api_key[: -len(file_keys)], settings.api_key[-len(file_keys) :]
        if from_file != file_keys:
            raise ConfigError(
                f"API_KEY_FILE={str(settings.api_key_file)!r} changed while the server started; start again"
            )
        return cls(fixed, settings.api_key_file)

    @property
    def count(self) -> int:
        return len(self._keys)

    def attach(self, call_later: Callable[[float, Callable[[], None]], object]) -> None:
        """In the worker: check the key file now (a respawned worker may be late) and once a second."""
        key_file = self._key_file
        if key_file is None:
            return

        def reload_if_changed() -> None:
            signature = file_signature(key_file)
            if signature != self._signature:
                self._signature = signature
                self.reload()
            call_later(RELOAD_SECONDS, reload_if_changed)

        reload_if_changed()

    def reload(self) -> None:
        """Read the key file again; a file that breaks the rules keeps the previous keys (with a warning)."""
        if self._key_file is None:
            return
        try:
            file_keys = read_key_file(self._key_file)
        except ConfigError as error:  # its message names the file and the rule, never a key
            log.warning("API keys not reloaded, the previous keys stay in use: %s", error)
            return
        self._use(file_keys)
        log.info("API keys reloaded", extra={"api_keys": len(self._keys)})

    def _use(self, file_keys: tuple[str, ...]) -> None:
        self._keys = [key.encode() for key in (*self._fixed, *file_keys)]

    def check(self, headers: Mapping[str, str]) -> None:
        """Unauthorized unless the headers hold one of the keys (`X-API-Key` or `Authorization: Bearer`)."""
        keys = self._keys
        if not keys:
            return
        presented = presented_key(headers)
        if presented is None:
            raise Unauthorized("missing API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'")
        candidate = presented.encode()
        # compare against every key so the time taken does not tell which key (or none) matched
        matched = [hmac.compare_digest(candidate, key) for key in keys]
        if not any(matched):
            raise Unauthorized("invalid API key")


def file_signature(path: Path) -> Signature:
    """What changes when the file is replaced or rewritten (stat follows the kubelet's links); None: gone."""
    try:
        stat = os.stat(path)  # noqa: PTH116 - one call for all four fields
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
