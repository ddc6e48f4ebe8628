"""JSON log lines: one per request from the app, and the same format for granian's own lines."""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
