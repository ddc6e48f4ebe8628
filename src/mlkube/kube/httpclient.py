"""A small keep-alive HTTP/1.1 client on the standard library (the serving install has no httpx).

One `HttpClient` per thread: it holds one connection and reopens it when the server closed it.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

TransportError = (OSError, http.client.HTTPException)
"""What a request raises when there is no HTTP answer (refused, reset, timed out, garbled)."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def text(self, limit: int = 200) -> str:
        return self.body[:limit].decode("utf-8", errors="replace").strip()


class HttpClient:
    def __init__(
        self, base_url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_json(self, path: str, payload: object) -> Reply:
        body = msgspec.json.encode(payload)
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """One request; a connection the server closed since the last one is reopened once."""
        reused = self._connection is not None
        try:
            return self._send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._send(method, path, body, headers)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None) -> Reply:
        connection = self._connection or self._connect()
        self._connection = connection
        connection.request(
            method, self._prefix + path, body=body, headers={**self._headers, **(headers or {})}
        )
        response = connection.getresponse()
        return Reply(response.status, response.read())

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def key_headers(api_key: str | None) -> dict[str, str]:
    """The server's auth header (`X-API-Key`), or none."""
    return {"X-API-Key": api_key} if api_key else {}
