"""Hostile input: oversized headers and bodies, deep JSON nesting, enormous numbers. Each gets a 4xx (or, for
a valid if silly number, its 200) quickly, nothing crashes, and the server's memory stays bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import traffic
from tests.reliability.loadgen import Connection, Planned, Reply, build_request
from tests.reliability.procs import children, tree_rss_bytes
from tests.reliability.report import record
from tests.support import RunningServer, start_server

DEPTH = 100_000
DIGITS = 1_000_000
MAX_SECONDS = 5.0  # the slowest one (150,000 tiny rows) costs a worker ~0.1-0.4 s of CPU
MAX_RSS_GROWTH = 64 * 2**20


def body_kinds() -> list[Planned]:
    deep = b"[" * DEPTH + b"]" * DEPTH
    return [
        traffic.predict(b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, 400, b"nested too deeply", "deep-objects"),
        traffic.predict(b'{"features":' + deep + b"}", 422, b"got array", "deep-lists-in-features"),
        traffic.predict(
            b'{"x":' + deep + b', "features": [1, 2, 3, 4]}', 400, b"nested too deeply", "deep-extra"
        ),
        traffic.predict(deep, 422, b"Expected object", "deep-lists"),
        traffic.predict(
            b'{"features": [' + b"9" * DIGITS + b", 1, 1, 1]}", 422, b"out of range", "huge-integer"
        ),
        traffic.predict(
            b'{"features": [1e' + b"9" * 1000 + b", 1, 1, 1]}", 422, b"out of range", "huge-exponent"
        ),
        traffic.predict(
            b'{"features": [0.' + b"0" * DIGITS + b"1, 1, 1, 1]}", 200, b"prediction", "long-fraction"
        ),
        traffic.predict(b'{"features": [' + b"1," * 400_000 + b"1]}", 422, b"expected 4", "400k-features"),
        traffic.predict(
            b'{"instances": [' + b"[1]," * 200_000 + b"[1]]}", 422, b"MAX_BATCH_SIZE", "200k-rows"
        ),
        traffic.predict(b'{"' + b"k" * DIGITS + b'": 1}', 422, b"missing 'features'", "megabyte-key"),
        traffic.predict(b'{"x": "' + b"\\ud800" * 100_000 + b'"}', 400, b"not valid JSON", "lone-surrogates"),
    ]


def head_kinds() -> list[Planned]:
    one_row = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
    many = [(f"X-Filler-{i}", "x") for i in range(500)]
    return [
        Planned(
            build_request("GET", "/health", headers=[("X-Big", "x" * 512 * 1024)]), 431, b"", "512k-header"
        ),
        Planned(build_request("GET", "/health", headers=many), 431, b"", "500-headers"),
        Planned(build_request("GET", "/" + "a" * 512 * 1024), (404, 414, 431), b"", "512k-path"),
        Planned(
            build_request("POST", "/predict", headers=[("Content-Length", str(10**12))])[:-21] + b"\r\n",
            413,
            b"MAX_BODY_BYTES",
            "terabyte-content-length",
        ),
        Planned(
            build_request("POST", "/predict", one_row, [("X-Bad\x01Name", "1")]),
            400,
            b"",
            "control-byte-header",
        ),
    ]


@pytest.fixture(scope="module")
def hostile_server(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


async def send_once(url: str, planned: Planned) -> Reply:
    connection = Connection(url)
    try:
        return await connection.request(planned.raw, timeout=30)
    finally:
        await connection.close()


@pytest.mark.parametrize("planned", body_kinds() + head_kinds(), ids=lambda planned: planned.kind)
def test_hostile_request_gets_its_answer_quickly(hostile_server: RunningServer, planned: Planned) -> None:
    worker = children(hostile_server.process.pid)
    reply = asyncio.run(send_once(hostile_server.url, planned))
    assert planned.problem(reply) is None, planned.problem(reply)
    assert reply.seconds < MAX_SECONDS
    assert children(hostile_server.process.pid) == worker, "the worker died"
    assert hostile_server.client.get("/health").status_code == 200


def test_memory_stays_bounded_under_repeated_hostile_input(model_dir: Path) -> None:
    kinds = body_kinds() + head_kinds()
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as server:
        pid = server.process.pid
        asyncio.run(send_all(server.url, kinds))  # warm: first-time allocations are not growth
        before = tree_rss_bytes(pid)
        started = time.monotonic()
        replies = asyncio.run(send_all(server.url, kinds * 5))
        seconds = time.monotonic() - started
        after = tree_rss_bytes(pid)

    problems = [planned.problem(reply) for planned, reply in zip(kinds * 5, replies, strict=True)]
    record(
        "hostile_input",
        kinds=len(kinds),
        requests=len(replies),
        bytes_sent_mib=sum(len(planned.raw) for planned in kinds * 5) / 2**20,
        seconds=seconds,
        slowest_ms=max(reply.seconds for reply in replies) * 1000,
        rss_before_mib=before / 2**20,
        rss_after_mib=after / 2**20,
    )
    assert [problem for problem in problems if problem] == []
    assert after - before < MAX_RSS_GROWTH


async def send_all(url: str, kinds: list[Planned]) -> list[Reply]:
    return [await send_once(url, planned) for planned in kinds]
