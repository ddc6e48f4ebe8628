"""JSON log lines: one per request from the app, and the same format for mlkube's and granian's own lines.

The per-request access line does not go through `logging`: a LogRecord, a formatter, a handler lock and a
flush per line cost ~30 µs, more than scoring the request. `AccessLog` encodes a struct (~1.5 µs) into a
buffer that is written to stdout at most every FLUSH_SECONDS, in writes of whole lines no larger than
PIPE_BUF, so lines from several workers never interleave mid-line. For that every line must itself fit in
PIPE_BUF: the fields a client chooses are cut (the method is one of a few already, the request id at most
128 characters, the path at most MAX_PATH_CHARS), so a line stays under 4 KB even if JSON escapes every
character of them (6 bytes each).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec

FLUSH_SECONDS = 0.1
_PIPE_BUF = 4096
_MAX_BUFFERED = 64 * 1024
MAX_PATH_CHARS = 400
MAX_METHOD_CHARS = 16
_encoder = msgspec.json.Encoder()
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def iso_timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": iso_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


class AccessLine(msgspec.Struct, array_like=False):
    """The access log line; the same first four keys as every other line."""

    ts: str
    level: str
    logger: str
    msg: str
    method: str
    path: str
    status: int
    latency_ms: float
    request_id: str


class AccessLog:
    """Buffered one-line-per-request JSON log on a file descriptor (stdout by default)."""

    def __init__(self, enabled: bool, fd: int = 1) -> None:
        self.enabled = enabled
        self._fd = fd
        self._lines: list[bytes] = []
        self._size = 0
        self._schedule: Callable[[float, Callable[[], None]], object] | None = None
        self._flush_pending = False
        self._second = -1
        self._second_text = ""
        self._millisecond = -1
        self._millisecond_text = ""

    def attach(self, schedule: Callable[[float, Callable[[], None]], object]) -> None:
        """Give the log a way to flush later (the worker's event loop `call_later`)."""
        self._schedule = schedule

    def record(self, method: str, path: str, status: int, seconds: float, request_id: str) -> None:
        if not self.enabled:
            return
        now = time.time()
        line = AccessLine(self._timestamp(now), "INFO", "mlkube.access", "request", method[:MAX_METHOD_CHARS],
                          path[:MAX_PATH_CHARS], status, round(seconds * 1000, 3), request_id)  # fmt: skip
        data = _encoder.encode(line) + b"\n"
        self._lines.append(data)
        self._size += len(data)
        if self._schedule is None or self._size >= _MAX_BUFFERED:
            self.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            self._schedule(FLUSH_SECONDS, self.flush)

    def _timestamp(self, now: float) -> str:
        """ISO 8601 UTC to the millisecond; under load many lines share a millisecond, so it is kept."""
        millisecond = int(now * 1000)
        if millisecond != self._millisecond:
            second = millisecond // 1000
            if second != self._second:
                self._second = second
                self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._millisecond = millisecond
            self._millisecond_text = f"{self._second_text}.{millisecond % 1000:03d}Z"
        return self._millisecond_text

    def flush(self) -> None:
        self._flush_pending = False
        lines, self._lines, self._size = self._lines, [], 0
        for chunk in _whole_line_chunks(lines):
            try:
                os.write(self._fd, chunk)
            except OSError:
                return  # stdout closed: losing log lines must never fail a request


def _whole_line_chunks(lines: list[bytes]) -> list[bytes]:
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > _PIPE_BUF:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    return chunks


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for mlkube's and granian's loggers; granian takes it as `log_dictconfig`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
        },
        "loggers": {
            "mlkube": {"handlers": ["stdout"], "level": level, "propagate": False},
            "_granian": {"handlers": ["stdout"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
        },
    }
