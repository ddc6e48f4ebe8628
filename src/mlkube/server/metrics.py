"""Prometheus metrics, correct across worker processes (prometheus_client's multiprocess mode).

The runner sets PROMETHEUS_MULTIPROC_DIR before this module is imported. Every series carries the model
name and version. Labelled children are cached so a request costs dictionary look-ups, not `labels()`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_MODEL_LABELS = ("model_name", "model_version")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

REQUESTS = Counter(
    "mlkube_requests", "HTTP requests answered.", ("route", "method", "status", *_MODEL_LABELS)
)
LATENCY = Histogram(
    "mlkube_request_duration_seconds",
    "Time from request to answer.",
    ("route", *_MODEL_LABELS),
    buckets=_LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "mlkube_predictions", "Rows scored, by predicted class.", ("class_name", *_MODEL_LABELS)
)
CONFIDENCE = Histogram(
    "mlkube_prediction_confidence",
    "Top class probability of each scored row.",
    _MODEL_LABELS,
    buckets=_CONFIDENCE_BUCKETS,
)
MODEL_INFO = Gauge(
    "mlkube_model_info",
    "1 for the model this server serves.",
    ("runtime", "ready", *_MODEL_LABELS),
    multiprocess_mode="max",
)


class Metrics:
    """The metrics of one model; call sites pass only what varies per request."""

    def __init__(self, model_name: str, model_version: str) -> None:
        self._model = (model_name, model_version)
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._classes: dict[str, Counter] = {}
        self._confidence = CONFIDENCE.labels(*self._model)

    def set_model_info(self, runtime: str, ready: bool) -> None:
        MODEL_INFO.labels(runtime, str(ready).lower(), *self._model).set(1)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = REQUESTS.labels(route, method, str(status), *self._model)
        counter.inc()
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = LATENCY.labels(route, *self._model)
        histogram.observe(seconds)

    def observe_scores(
        self, class_names: Sequence[str], classes: NDArray[np.int64], confidences: NDArray[np.float64]
    ) -> None:
        """Count a whole batch at once: one increment per class and per bucket, not per row."""
        for index, count in enumerate(np.bincount(classes, minlength=len(class_names)).tolist()):
            if count:
                self._class_counter(class_names[index]).inc(count)
        _observe_many(self._confidence, confidences)

    def _class_counter(self, class_name: str) -> Counter:
        counter = self._classes.get(class_name)
        if counter is None:
            counter = self._classes[class_name] = PREDICTIONS.labels(class_name, *self._model)
        return counter


def _observe_many(histogram: Histogram, values: NDArray[np.float64]) -> None:
    """Same result as `observe()` per value (each value lands in its first bucket with value <= bound),
    with one shared-memory write per bucket instead of two per value. Uses the child's internals, which
    tests/server/test_metrics.py pins against `observe()`."""
    if len(values) == 1:
        histogram.observe(float(values[0]))
        return
    bounds = histogram._upper_bounds
    positions = np.searchsorted(np.asarray(bounds), values, side="left")
    for bucket, count in enumerate(np.bincount(positions, minlength=len(bounds)).tolist()):
        if count:
            histogram._buckets[bucket].inc(count)
    histogram._sum.inc(float(values.sum()))


def render() -> bytes:
    """All workers' metrics, merged from the multiprocess directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))
