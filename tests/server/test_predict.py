"""The notes' API contract over a real socket: /predict, /health, batches, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.support import BAD_BODIES, NOTES_ROW, RunningServer, poll, workers_counting

NOTES_CURL = (
    'curl -s -X POST {url}/predict -H "Content-Type: application/json" '
    """-d '{{"features": [5.1, 3.5, 1.4, 0.2]}}'"""
)


def test_notes_curl_works_unchanged(server: RunningServer) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the notes' command as written (Debian package curl)")
    command = NOTES_CURL.format(url=server.url)  # run in a shell, exactly as the notes type it
    output = subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout  # noqa: S602
    assert json.loads(output) == {"prediction": 0, "class_name": "setosa", "confidence": 1.0, "version": "v1"}


def test_predict_answers_exactly_the_notes_keys_and_types(server: RunningServer) -> None:
    response = server.client.post("/predict", json={"features": NOTES_ROW})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["prediction", "class_name", "confidence", "version"]
    assert isinstance(body["prediction"], int)
    assert isinstance(body["class_name"], str)
    assert isinstance(body["confidence"], float)
    assert isinstance(body["version"], str)
    assert response.headers["content-type"] == "application/json"


def test_predict_accepts_integers_and_charset_parameter(server: RunningServer) -> None:
    response = server.client.post(
        "/predict",
        content=b'{"features": [6, 3, 5, 2]}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json()["class_name"] == "virginica"


def test_predict_without_content_type_is_accepted(server: RunningServer) -> None:
    response = server.client.post("/predict", content=json.dumps({"features": NOTES_ROW}).encode())
    assert response.status_code == 200


def test_batch_answers_one_prediction_per_row_in_order(server: RunningServer) -> None:
    rows = [NOTES_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    response = server.client.post("/predict", json={"instances": rows})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["class_name"] for p in predictions] == ["setosa", "virginica", "versicolor"]
    assert all(set(p) == {"prediction", "class_name", "confidence", "version"} for p in predictions)


def test_batch_at_the_size_limit_is_served(server: RunningServer) -> None:
    response = server.client.post("/predict", json={"instances": [NOTES_ROW] * 1000})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1000


def test_health_answers_the_notes_body(server: RunningServer) -> None:
    response = server.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_ready_reports_the_model_once_loaded(server: RunningServer) -> None:
    response = server.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model": "iris", "version": "v1", "runtime": "onnx"}


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_input_gets_a_json_error_with_a_4xx(
    server: RunningServer, body: bytes, status: int, message: str
) -> None:
    response = server.client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error
    assert "Traceback" not in error


def test_too_large_batch_names_the_limit(server: RunningServer) -> None:
    response = server.client.post("/predict", json={"instances": [NOTES_ROW] * 1001})
    assert response.status_code == 422
    assert response.json() == {"error": "1001 rows is more than MAX_BATCH_SIZE=1000"}


def test_body_over_max_body_bytes_is_413(server: RunningServer) -> None:
    response = server.client.post(
        "/predict", content=b" " * (1_048_576 + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "MAX_BODY_BYTES=1048576" in response.json()["error"]


def test_chunked_body_over_the_limit_is_413(server: RunningServer) -> None:
    def chunks() -> object:
        for _ in range(40):
            yield b" " * 32_768

    response = server.client.post("/predict", content=chunks(), headers={"content-type": "application/json"})  # type: ignore[arg-type]
    assert response.status_code == 413


def test_non_json_content_type_is_415(server: RunningServer) -> None:
    response = server.client.post(
        "/predict", content=b"features=1,2,3,4", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_unknown_route_is_json_404(server: RunningServer) -> None:
    response = server.client.get("/predictions")
    assert response.status_code == 404
    assert response.json() == {"error": "no route GET /predictions"}


def test_wrong_method_is_json_405_with_allow(server: RunningServer) -> None:
    response = server.client.get("/predict")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "not allowed" in response.json()["error"]


def test_request_id_is_echoed_or_generated(server: RunningServer) -> None:
    echoed = server.client.get("/health", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = server.client.get("/health", headers={"x-request-id": "bad id\twith spaces"})
    assert len(generated.headers["x-request-id"]) == 24


def test_generated_request_ids_differ_across_workers(two_workers: RunningServer) -> None:
    """A worker must not repeat its sibling's random sequence: ids from both workers, all different."""
    health = {"route": "/health", "method": "GET", "status": "200"}
    before = workers_counting(two_workers, "mlkube_requests_total", **health)
    ids: list[str] = []

    def both_workers_answered() -> bool:
        for _ in range(20):  # fresh connections: the kernel spreads them over both workers
            answer = two_workers.client.get("/health", headers={"connection": "close"})
            ids.append(answer.headers["x-request-id"])
        after = workers_counting(two_workers, "mlkube_requests_total", **health)
        return sum(count > before.get(pid, 0) for pid, count in after.items()) == 2

    assert poll(both_workers_answered, interval=0.3), "one worker answered every request"
    assert len(set(ids)) == len(ids)
    assert all(len(given) == 24 and int(given, 16) >= 0 for given in ids)
