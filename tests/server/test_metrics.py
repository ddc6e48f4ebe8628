"""/metrics: Prometheus text, merged across workers, every series labelled with the model."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from mlkube.server.metrics import _LocalHistogram
from tests.support import (
    NOTES_ROW,
    RunningServer,
    Samples,
    poll,
    start_server,
    wait_for_metric,
    workers_counting,
)
from tests.support import metric_samples as samples
from tests.support import metric_value as value

PREDICT_200 = {"route": "/predict", "method": "POST", "status": "200"}


@pytest.fixture
def fresh_two_workers(model_dir: Path) -> Iterator[RunningServer]:
    """Two workers whose counters start at zero, whichever tests ran before (random order included)."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2"}) as running:
        yield running


def test_counts_from_every_worker_are_merged(fresh_two_workers: RunningServer) -> None:
    two_workers = fresh_two_workers
    sent = 0

    def both_workers_answered() -> bool:
        """Fresh connections, which the kernel spreads over both workers, until each has counted some."""
        nonlocal sent
        for _ in range(10):
            with two_workers.client.stream(
                "POST", "/predict", json={"features": NOTES_ROW}, headers={"connection": "close"}
            ):
                sent += 1
        return len(workers_counting(two_workers, "mlkube_requests_total", **PREDICT_200)) == 2

    assert poll(both_workers_answered, interval=0.3), "one worker answered every request"
    found = wait_for_metric(two_workers, "mlkube_requests_total", sent, **PREDICT_200)
    per_worker = workers_counting(two_workers, "mlkube_requests_total", **PREDICT_200)
    assert len(per_worker) == 2
    assert value(found, "mlkube_requests_total", **PREDICT_200) == sum(per_worker.values()) == sent
    assert value(found, "mlkube_predictions_total", class_name="setosa") == sent
    assert value(found, "mlkube_request_duration_seconds_count", route="/predict") == sent


HELD = 5  # requests held in flight: below MAX_IN_FLIGHT, well below the fixture's connection limits


@contextmanager
def requests_held_in_flight(server: RunningServer, count: int) -> Iterator[list[socket.socket]]:
    """`count` /predict requests sent with half their body: admitted, waiting for the rest (well inside
    BODY_SECONDS). On exit each sends the rest and reads its answer, so the requests finish, not fail."""
    body = json.dumps({"features": NOTES_ROW}).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    half = len(body) // 2
    with ExitStack() as stack:
        held = [
            stack.enter_context(
                socket.create_connection(("127.0.0.1", urlsplit(server.url).port or 80), timeout=10)
            )
            for _ in range(count)
        ]
        for connection in held:
            connection.sendall(head + body[:half])
        yield held
        for connection in held:
            connection.sendall(body[half:])
        for connection in held:
            assert connection.recv(64).startswith(b"HTTP/1.1 200")


def in_flight_reaches(server: RunningServer, expected: float) -> Samples:
    found: Samples = {}

    def reached() -> bool:
        nonlocal found
        found = samples(server)
        return value(found, "mlkube_requests_in_flight") == expected

    poll(reached, interval=0.1)
    return found


def test_requests_in_flight_are_summed_over_the_workers(two_workers: RunningServer) -> None:
    """The scrape itself is not counted; each worker's count is sampled on its loop, so the test polls."""
    assert value(in_flight_reaches(two_workers, 0), "mlkube_requests_in_flight") == 0
    with requests_held_in_flight(two_workers, HELD):
        assert value(in_flight_reaches(two_workers, HELD), "mlkube_requests_in_flight") == HELD
    assert value(in_flight_reaches(two_workers, 0), "mlkube_requests_in_flight") == 0


def test_errors_predictions_confidence_and_model_info_are_exported(server: RunningServer) -> None:
    server.client.post("/predict", json={"instances": [NOTES_ROW, [6.7, 3.0, 5.2, 2.3]]})
    server.client.post("/predict", json={"features": [1, 2]})
    found = samples(server)
    assert value(found, "mlkube_requests_total", route="/predict", method="POST", status="422") >= 1
    assert value(found, "mlkube_predictions_total", class_name="virginica") >= 1
    assert value(found, "mlkube_prediction_confidence_count") >= 2
    assert value(found, "mlkube_prediction_confidence_bucket", le="1.0") == value(
        found, "mlkube_prediction_confidence_count"
    )
    assert value(found, "mlkube_model_info", runtime="onnx", ready="true") == 1


def test_every_mlkube_series_carries_the_model_labels(server: RunningServer) -> None:
    mlkube_series = [key for key in samples(server) if key[0].startswith("mlkube_")]
    assert mlkube_series
    for _name, labels in mlkube_series:
        assert ("model_name", "iris") in labels
        assert ("model_version", "v1") in labels


def test_local_histogram_pushes_what_one_observe_per_value_would() -> None:
    values = np.array([0.1, 0.5, 0.55, 0.9, 0.9, 1.0, 1.0, 1.0, 2.0])
    pushed = Histogram("pushed", "p", buckets=(0.5, 0.9, 1.0), registry=CollectorRegistry())
    single = Histogram("single", "s", buckets=(0.5, 0.9, 1.0), registry=CollectorRegistry())
    local = _LocalHistogram((0.5, 0.9, 1.0))
    local.observe_many(values[:5])
    for item in values[5:]:
        local.observe(float(item))
    local.push(pushed)
    for item in values:
        single.observe(float(item))
    assert [b.get() for b in pushed._buckets] == [b.get() for b in single._buckets]
    assert pushed._sum.get() == pytest.approx(single._sum.get())
    assert local.counts == [0, 0, 0, 0]
