"""One JSON log line per request, with the fields an operator searches by."""

from __future__ import annotations

import json

from tests.support import NOTES_ROW, RunningServer


def access_lines(server: RunningServer) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "mlkube.access"]


def test_each_request_logs_one_json_line_with_its_fields(server: RunningServer) -> None:
    server.client.post("/predict", json={"features": NOTES_ROW}, headers={"x-request-id": "trace-42"})
    server.wait_for_log("trace-42")
    matching = [line for line in access_lines(server) if line["request_id"] == "trace-42"]
    assert len(matching) == 1
    line = matching[0]
    assert line["method"] == "POST"
    assert line["path"] == "/predict"
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], float)
    assert line["level"] == "INFO"


def test_every_server_line_is_json(server: RunningServer) -> None:
    server.client.get("/health")
    for line in server.log_lines():
        json.loads(line)
