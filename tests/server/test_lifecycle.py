"""Start-up and shutdown as Kubernetes sees them: readiness, refusal of bad bundles, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from mlkube.model.bundle import Bundle
from mlkube.server.app import App
from mlkube.server.service import ModelService
from mlkube.settings import load_settings
from tests.support import NOTES_ROW, free_port, spawn_server, start_server, wait_until_answering


def test_tampered_bundle_keeps_the_server_alive_but_not_ready(bundle_copy: Path, tmp_path: Path) -> None:
    onnx = bundle_copy / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))
    with start_server({"MODEL_DIR": str(tmp_path), "WORKERS": "1"}) as running:
        assert running.client.get("/health").json() == {"status": "healthy"}
        ready = running.client.get("/ready")
        assert ready.status_code == 503
        assert "model.onnx: sha256 mismatch" in ready.json()["reason"]
        predict = running.client.post("/predict", json={"features": NOTES_ROW})
        assert predict.status_code == 503
        assert predict.headers["retry-after"] == "1"
        refusals = [line for line in running.log_lines() if "sha256 mismatch" in line]
        assert refusals, running.log_lines()


def test_missing_model_is_not_ready_with_the_reason(tmp_path: Path) -> None:
    with start_server({"MODEL_DIR": str(tmp_path), "WORKERS": "1"}) as running:
        ready = running.client.get("/ready")
        assert ready.status_code == 503
        assert "run `mlkube train` first" in ready.json()["reason"]


def test_class_names_that_disagree_with_the_model_keep_it_not_ready(model_dir: Path) -> None:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1", "CLASS_NAMES": "a,b"}) as running:
        ready = running.client.get("/ready")
        assert ready.status_code == 503
        assert "CLASS_NAMES lists 2 names but model iris v1 has 3 classes" in ready.json()["reason"]


def test_class_names_and_model_version_from_the_configmap_are_reported(model_dir: Path) -> None:
    env = {
        "MODEL_DIR": str(model_dir),
        "WORKERS": "1",
        "CLASS_NAMES": "Setosa,Versicolor,Virginica",
        "MODEL_VERSION": "v2",
    }
    with start_server(env) as running:
        body = running.client.post("/predict", json={"features": NOTES_ROW}).json()
        assert body == {"prediction": 0, "class_name": "Setosa", "confidence": 1.0, "version": "v2"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "http", "invalid PORT='http': Expected int"),
        ("PORT", "70000", "invalid PORT='70000'"),
        ("WORKERS", "0", "invalid WORKERS='0'"),
        ("MAX_BATCH_SIZE", "-3", "invalid MAX_BATCH_SIZE='-3'"),
        ("LOG_LEVEL", "chatty", "invalid LOG_LEVEL='CHATTY'"),
        ("MODEL_RUNTIME", "tensorflow", "invalid MODEL_RUNTIME='tensorflow'"),
        ("API_KEY_FILE", "/nonexistent/key", "invalid API_KEY_FILE='/nonexistent/key'"),
    ],
)
def test_invalid_configuration_stops_with_the_variable_and_value(
    model_dir: Path, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    log_path = tmp_path / "server.log"
    process, _ = spawn_server({"MODEL_DIR": str(model_dir), variable: value}, log_path)
    assert process.wait(30) == 1
    output = log_path.read_text()
    assert message in output
    assert "Traceback" not in output


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {"MODEL_DIR": str(model_dir), "WORKERS": "1", "PORT": str(port), "DRAIN_SECONDS": "1.5"}
    process, url = spawn_server(env, log_path)
    wait_until_answering(process, url, log_path)
    body = json.dumps({"features": NOTES_ROW}).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as in_flight,
        httpx.Client(base_url=url) as probe,
    ):
        probe.get("/ready")  # opens the keep-alive connection the probe keeps using
        in_flight.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        draining = probe.get("/ready")
        assert draining.status_code == 503
        assert draining.json()["reason"] == "shutting down"
        assert (
            probe.post("/predict", json={"features": NOTES_ROW}).status_code == 200
        )  # still served while draining
        in_flight.sendall(body[10:])
        answer = in_flight.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"class_name":"setosa"' in answer
    assert process.wait(30) == 0
    assert any('"msg":"draining' in line for line in log_path.read_text().splitlines())


def test_sklearn_runtime_serves_the_same_answer(model_dir: Path) -> None:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1", "MODEL_RUNTIME": "sklearn"}) as running:
        assert running.client.get("/ready").json()["runtime"] == "sklearn"
        body = running.client.post("/predict", json={"features": NOTES_ROW}).json()
        assert body == {"prediction": 0, "class_name": "setosa", "confidence": 1.0, "version": "v1"}


def test_a_started_worker_freezes_its_start_up_objects(iris_bundle: Bundle, tmp_path: Path) -> None:
    settings = load_settings({"LOG_LEVEL": "WARNING"})
    app = App(settings, ModelService(settings, iris_bundle), tmp_path / "draining")
    loop = asyncio.new_event_loop()
    gc.unfreeze()
    try:
        app.__rsgi_init__(loop)  # as granian does in a worker, once, before the first request
        assert app.service.ready
        assert gc.get_freeze_count() > 0, "start-up objects left to every full collection"
    finally:
        gc.unfreeze()
        loop.close()
