"""/metrics: Prometheus text, merged across workers, every series labelled with the model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from mlkube.server.metrics import FLUSH_SECONDS, _LocalHistogram
from tests.conftest import NOTES_ROW
from tests.support import RunningServer


def samples(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def samples_after_flush(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Workers push their counts every FLUSH_SECONDS; the answering worker flushes its own first."""
    time.sleep(FLUSH_SECONDS + 0.2)
    return samples(server)


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    labels = {"model_name": "iris", "model_version": "v1", **labels}
    return found.get((name, frozenset(labels.items())), 0.0)


def test_counts_from_every_worker_are_merged(two_workers: RunningServer) -> None:
    # fresh connections are spread over both workers by the kernel; 60 requests reach both in practice
    for _ in range(60):
        with two_workers.client.stream(
            "POST", "/predict", json={"features": NOTES_ROW}, headers={"connection": "close"}
        ):
            pass
    found = samples_after_flush(two_workers)
    assert value(found, "mlkube_requests_total", route="/predict", method="POST", status="200") == 60
    assert value(found, "mlkube_predictions_total", class_name="setosa") == 60
    assert value(found, "mlkube_request_duration_seconds_count", route="/predict") == 60


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
