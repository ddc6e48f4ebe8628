"""Answers given before the body is read reach clients that write the whole body first (issue 13 #7).

http.client and urllib write the whole body before they read a byte. When the server answered 413 (body
over MAX_BODY_BYTES) or 401 (no key) at once and closed the connection, the unread body made the kernel
reset it, and those clients saw `BrokenPipeError` instead of the answer; only curl, which reads while it
sends, saw the 413. Now the server reads and drops the rest of the body, at most `LINGER_BYTES` for at most
`LINGER_SECONDS` (nginx's lingering close), before it answers and closes.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from mlkube.server.app import LINGER_BYTES
from tests.support import RunningServer, start_server

KEY = "an-api-key-of-32-characters-xyz0"
BODY = b'{"features": [' + b" " * (6 * 2**20) + b"5.1, 3.5, 1.4, 0.2]}"  # 6 MB: over MAX_BODY_BYTES
TOO_LARGE = f"body of {len(BODY)} bytes is over MAX_BODY_BYTES=1048576"
NO_KEY = "missing API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def keyed(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1", "API_KEY": KEY}) as running:
        yield running


def with_http_client(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("POST", "/predict", BODY, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def with_urllib(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(f"{url}/predict", data=BODY, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def with_httpx(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    response = httpx.post(f"{url}/predict", content=BODY, headers=headers, timeout=10)
    return response.status_code, response.json()


CLIENTS = [with_http_client, with_urllib, with_httpx]


def test_the_body_is_under_the_lingering_bound() -> None:
    assert 2**20 < len(BODY) <= LINGER_BYTES


@pytest.mark.parametrize("client", CLIENTS, ids=lambda client: client.__name__)
def test_an_oversized_body_gets_its_413(keyed: RunningServer, client: object) -> None:
    for _ in range(3):  # every try, not one in a few
        status, answer = client(keyed.url, {**JSON_TYPE, "X-API-Key": KEY})  # type: ignore[operator]
        assert (status, answer) == (413, {"error": TOO_LARGE})


@pytest.mark.parametrize("client", CLIENTS, ids=lambda client: client.__name__)
def test_a_missing_key_gets_its_401_before_the_body(keyed: RunningServer, client: object) -> None:
    for _ in range(3):
        status, answer = client(keyed.url, JSON_TYPE)  # type: ignore[operator]
        assert (status, answer) == (401, {"error": NO_KEY})


def test_an_oversized_chunked_body_gets_its_413(keyed: RunningServer) -> None:
    """Without Content-Length the size shows while reading: the server reads on, dropping, then answers."""
    chunks = [b" " * 2**16] * 96  # 6 MiB in 64 KiB chunks
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", urlsplit(keyed.url).port, timeout=10)
        try:
            headers = {**JSON_TYPE, "X-API-Key": KEY}
            connection.request("POST", "/predict", iter(chunks), headers, encode_chunked=True)
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (
                413,
                {"error": "body is over MAX_BODY_BYTES=1048576"},
            )
        finally:
            connection.close()


def test_the_server_still_serves_after_the_refusals(keyed: RunningServer) -> None:
    response = keyed.client.post(
        "/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, headers={"X-API-Key": KEY}
    )
    assert response.status_code == 200
