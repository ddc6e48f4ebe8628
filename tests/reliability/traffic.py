"""The requests the reliability tests send, each with the answer it must get."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tests.reliability.loadgen import Planned, build_request
from tests.support import NOTES_ROW

JSON_TYPE = ("Content-Type", "application/json")
VIRGINICA_ROW = [6.7, 3.0, 5.2, 2.3]


def predict(
    body: bytes, status: int | tuple[int, ...] = 200, contains: bytes = b"", kind: str = "", key: str = ""
) -> Planned:
    headers = [JSON_TYPE, *([("X-API-Key", key)] if key else [])]
    return Planned(build_request("POST", "/predict", body, headers), status, contains, kind)


def notes_row(key: str = "") -> Planned:
    """The notes' curl request: one row, answered setosa."""
    body = json.dumps({"features": NOTES_ROW}).encode()
    return predict(body, 200, b'"class_name":"setosa"', "notes-row", key)


def batch(rows: int, key: str = "") -> Planned:
    body = json.dumps({"instances": [NOTES_ROW, VIRGINICA_ROW] * (rows // 2)}).encode()
    return predict(body, 200, b'"class_name":"virginica"', f"batch-{rows}", key)


def get(
    path: str, status: int = 200, contains: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> Planned:
    return Planned(build_request("GET", path, headers=headers), status, contains, f"GET {path}")


HEALTH = get("/health", 200, b'{"status":"healthy"}')
READY = get("/ready", 200, b'"status":"ready"')
METRICS = get("/metrics", 200, b"mlkube_model_info")
