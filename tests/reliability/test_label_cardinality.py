"""Metric series from a closed set, whatever the request (issue 13 #1).

The attack: requests with long random methods and random paths, no key needed. Before the fix every
distinct method became a new `mlkube_requests_total{method=...}` series, written whole into the worker's
shared-memory counter file and the access log: 40 requests grew the file to 16 MiB. Now the method label
is GET, HEAD, POST or OTHER, the route label a template or `unmatched`, a method HTTP does not define is
answered 501 before routing, and the log line holds at most a few characters of a method.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.server.logs import MAX_PATH_CHARS
from tests.reliability.loadgen import Connection, Reply, build_request
from tests.reliability.report import record
from tests.support import RunningServer, start_server

REQUESTS = 1_000
METHOD_CHARS = 2_000
PATH_CHARS = 2_000
KNOWN_PATHS = ("/predict", "/health", "/v2/models/iris/infer", "/metrics", "/", "/v1/models/iris:predict")
KNOWN_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")  # HEAD: no body to read


@pytest.fixture(scope="module")
def server_with_files(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Path]]:
    """One worker whose runtime folder (with the metrics files) is under a temp dir of this test's own."""
    runtime = tmp_path_factory.mktemp("runtime")
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1", "TMPDIR": str(runtime)}) as running:
        yield running, runtime


def metrics_files(runtime: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in runtime.glob("mlkube-*/metrics/*.db")}


def series(server: RunningServer) -> set[str]:
    """Every sample line of /metrics without its value: one per series."""
    text = server.client.get("/metrics").text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def random_method(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(KNOWN_METHODS)
    return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, METHOD_CHARS)))


def random_path(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(KNOWN_PATHS)
    alphabet = string.ascii_letters + string.digits + "/._-~"
    return "/" + "".join(rng.choices(alphabet, k=rng.randint(1, PATH_CHARS)))


def every_kind() -> list[tuple[str, str]]:
    """Each known method and one unknown, on each known path and one unknown: every label combination."""
    return [(method, path) for method in (*KNOWN_METHODS, "BREW") for path in (*KNOWN_PATHS, "/nowhere")]


async def send(url: str, requests: list[tuple[str, str]]) -> list[Reply]:
    connection = Connection(url)
    replies = []
    try:
        for method, path in requests:
            body = b"{}" if method == "POST" else b""
            headers = [("Content-Type", "application/json")] if body else []
            replies.append(await connection.request(build_request(method, path, body, headers)))
    finally:
        await connection.close()
    return replies


def test_random_methods_and_paths_add_no_series_and_grow_no_file(
    server_with_files: tuple[RunningServer, Path],
) -> None:
    server, runtime = server_with_files
    asyncio.run(send(server.url, every_kind()))
    before_series, before_files = series(server), metrics_files(runtime)
    assert before_files, "no metrics files found under the server's TMPDIR"

    rng = random.Random(13)
    requests = [(random_method(rng), random_path(rng)) for _ in range(REQUESTS)]
    replies = asyncio.run(send(server.url, requests))
    after_series, after_files = series(server), metrics_files(runtime)

    record(
        "label_cardinality",
        requests=len(replies),
        series_before=len(before_series),
        series_after=len(after_series),
        metrics_file_bytes=sum(after_files.values()),
    )
    assert after_series == before_series
    assert after_files == before_files
    methods = {line.split('method="')[1].split('"')[0] for line in after_series if 'method="' in line}
    assert methods <= {"GET", "HEAD", "POST", "OTHER"}
    for (method, _), reply in zip(requests, replies, strict=True):
        if method not in KNOWN_METHODS:
            assert reply.status == 501
            assert method.encode() not in reply.body
        assert reply.status < 500 or reply.status == 501


def test_unknown_methods_are_not_logged_as_sent(server_with_files: tuple[RunningServer, Path]) -> None:
    server, _ = server_with_files
    asyncio.run(send(server.url, [("X" * METHOD_CHARS, "/p" + "q" * PATH_CHARS)]))
    lines = [json.loads(line) for line in server.wait_for_log('"method":"OTHER"') if '"logger"' in line]
    assert lines
    assert all(len(line["path"]) <= MAX_PATH_CHARS for line in lines)
    assert all("X" * 20 not in json.dumps(line) for line in lines)
