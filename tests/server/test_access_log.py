"""The buffered access log: whole JSON lines, writes no larger than PIPE_BUF, off above INFO."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from mlkube.server.logs import AccessLog, _whole_line_chunks


def read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_lines_wait_for_the_scheduled_flush_then_arrive_whole() -> None:
    read_end, write_end = os.pipe()
    scheduled: list[Callable[[], None]] = []
    log = AccessLog(enabled=True, fd=write_end)
    log.attach(lambda _delay, callback: scheduled.append(callback))
    for i in range(3):
        log.record("POST", "/predict", 200, 0.0012, f"id-{i}")
    assert read_all(read_end) == b""
    assert len(scheduled) == 1  # one flush scheduled for the whole burst
    scheduled[0]()
    lines = [json.loads(line) for line in read_all(read_end).splitlines()]
    assert [line["request_id"] for line in lines] == ["id-0", "id-1", "id-2"]
    assert lines[0]["latency_ms"] == 1.2
    assert list(lines[0])[:4] == ["ts", "level", "logger", "msg"]
    os.close(read_end)
    os.close(write_end)


def test_without_a_scheduler_every_line_is_written_at_once() -> None:
    read_end, write_end = os.pipe()
    AccessLog(enabled=True, fd=write_end).record("GET", "/health", 200, 0.0001, "now")
    assert json.loads(read_all(read_end))["request_id"] == "now"
    os.close(read_end)
    os.close(write_end)


def test_disabled_log_writes_nothing() -> None:
    read_end, write_end = os.pipe()
    AccessLog(enabled=False, fd=write_end).record("GET", "/health", 200, 0.0001, "quiet")
    assert read_all(read_end) == b""
    os.close(read_end)
    os.close(write_end)


def test_chunks_hold_whole_lines_within_pipe_buf() -> None:
    lines = [b"x" * 1000 + b"\n" for _ in range(10)]
    chunks = _whole_line_chunks(lines)
    assert b"".join(chunks) == b"".join(lines)
    assert all(len(chunk) <= 4096 and chunk.endswith(b"\n") for chunk in chunks)
