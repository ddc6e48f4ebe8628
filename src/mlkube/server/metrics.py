"""Prometheus metrics, correct across worker processes (prometheus_client's multiprocess mode).

The runner sets PROMETHEUS_MULTIPROC_DIR before this module is imported. Every series carries the model
name and version.

A worker counts in plain dictionaries and pushes the sums into prometheus_client's shared memory at most
every FLUSH_SECONDS (and before answering /metrics): six shared-memory writes per request cost more than the
rest of the metrics work. A scrape therefore sees other workers' counts up to FLUSH_SECONDS late, and a
SIGKILLed worker loses at most that much; both are far below a scrape interval.

Drift signals (`server/drift.py`): `mlkube_feature_out_of_range_total{feature, reason}` counts values
outside the training range (`reason`: below_min or above_max; categorical features will add
unknown_category), features named by the bundle only. `mlkube_recent_predictions{class_name}` is each
worker's count of predictions per class in the last WINDOW_SECONDS, a `livesum` gauge: the exposition sums
the live workers, so the shares are that over its sum across classes (PromQL or `/model`). Each worker
removes the gauge files of workers that are gone as it starts. `mlkube_training_class_share{class_name}`
is the same in every worker (`max`).

`mlkube_requests_in_flight` is the number of requests a worker has admitted and not yet answered (the
same count `MAX_IN_FLIGHT` bounds), a `livesum` gauge: a scrape reads the sum of each live worker's last
sample. A worker samples its count on its own event loop, never on the request path: every FLUSH_SECONDS,
at each flush and as it renders /metrics (the scrape itself not counted), so a sample is at most
FLUSH_SECONDS old. It is what a custom-metric HPA scales on (components/hpa-requests-in-flight).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from operator import add

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlkube.model.runtime import Scores
from mlkube.server.drift import OUT_OF_RANGE_REASONS, WINDOW_SECONDS, SlidingCounts

CONTENT_TYPE = CONTENT_TYPE_LATEST
FLUSH_SECONDS = 0.25
_MODEL_LABELS = ("model_name", "model_version")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CALL_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
VALUE_BUCKETS = tuple(
    sorted({sign * 10.0**power for sign in (-1, 1) for power in range(-2, 7)} | {0.0})
)  # a regressor's values: decades from ±0.01 to ±1e6 (fixed: the same series whatever the model)

REQUESTS = Counter(
    "mlkube_requests", "HTTP requests answered.", ("route", "method", "status", *_MODEL_LABELS)
)
LATENCY = Histogram(
    "mlkube_request_duration_seconds",
    "Time from request to answer.",
    ("route", *_MODEL_LABELS),
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "mlkube_predictions", "Rows scored, by predicted class.", ("class_name", *_MODEL_LABELS)
)
CONFIDENCE = Histogram(
    "mlkube_prediction_confidence",
    "Top class probability of each scored row.",
    _MODEL_LABELS,
    buckets=CONFIDENCE_BUCKETS,
)
PREDICTION_VALUE = Histogram(
    "mlkube_prediction_value",
    "A regressor's predicted value of each scored row.",
    _MODEL_LABELS,
    buckets=VALUE_BUCKETS,
)
CALL_ROWS = Histogram(
    "mlkube_model_call_rows",
    "Rows scored per model call (requests that arrive together are scored in one call).",
    _MODEL_LABELS,
    buckets=CALL_ROWS_BUCKETS,
)
MODEL_INFO = Gauge(
    "mlkube_model_info",
    "1 for the model this server serves.",
    ("runtime", "ready", *_MODEL_LABELS),
    multiprocess_mode="max",
)
OUT_OF_RANGE = Counter(
    "mlkube_feature_out_of_range",
    "Feature values of scored rows outside the training range, by feature and reason (below_min, above_max).",
    ("feature", "reason", *_MODEL_LABELS),
)
RECENT_PREDICTIONS = Gauge(
    "mlkube_recent_predictions",
    f"Rows predicted per class in the last {WINDOW_SECONDS} s, summed over the live workers "
    "(divide by the sum over classes for the shares).",
    ("class_name", *_MODEL_LABELS),
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "mlkube_requests_in_flight",
    "Requests admitted and not yet answered, summed over the live workers "
    f"(each worker's count sampled every {FLUSH_SECONDS} s and at each scrape).",
    _MODEL_LABELS,
    multiprocess_mode="livesum",
)
TRAINING_CLASS_SHARE = Gauge(
    "mlkube_training_class_share",
    "Share of each class in the model's held-out rows (a stratified split of the training data).",
    ("class_name", *_MODEL_LABELS),
    multiprocess_mode="max",
)


class _LocalHistogram:
    """Bucket counts and a sum, kept in the worker until flushed (buckets as prometheus_client keeps them:
    each value counted once, in the first bucket whose bound is >= the value; the last bucket is +Inf)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe_many(self, values: NDArray[np.float64]) -> None:
        positions = np.searchsorted(np.asarray(self.bounds), values, side="left")
        for bucket, count in enumerate(np.bincount(positions, minlength=len(self.counts)).tolist()):
            self.counts[bucket] += count
        self.total += float(values.sum())

    def push(self, histogram: Histogram) -> None:
        """Add the counts to a prometheus_client histogram child (its internals are pinned by a test)."""
        for bucket, count in enumerate(self.counts):
            if count:
                histogram._buckets[bucket].inc(count)
        if self.total:
            histogram._sum.inc(self.total)
        self.counts = [0] * len(self.counts)
        self.total = 0.0


class Metrics:
    """The metrics of one model in one worker; call sites pass only what varies per request."""

    def __init__(self, model_name: str, model_version: str) -> None:
        self._model = (model_name, model_version)
        self._requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, _LocalHistogram] = {}
        self._classes: defaultdict[str, int] = defaultdict(int)
        self._confidence = _LocalHistogram(CONFIDENCE_BUCKETS)
        self._values = _LocalHistogram(VALUE_BUCKETS)
        self._call_rows = _LocalHistogram(CALL_ROWS_BUCKETS)
        self._schedule: Callable[[float, Callable[[], None]], object] | None = None
        self._flush_pending = False
        self._features: list[str] = []
        self._below: list[int] = []
        self._above: list[int] = []
        self._class_names: list[str] = []
        self._class_index: dict[str, int] = {}
        self._recent: SlidingCounts | None = None
        self._recent_shown: list[int] = []
        self._window_ticking = False
        self._in_flight: Callable[[], int] | None = None
        self._in_flight_shown = -1

    def attach(self, schedule: Callable[[float, Callable[[], None]], object]) -> None:
        """Give the metrics a way to flush later (the worker's event loop `call_later`)."""
        self._schedule = schedule
        if self._in_flight is not None:
            self._tick_in_flight()

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        """Read the worker's in-flight count through `count` (sampled on the loop, not per request)."""
        self._in_flight = count
        IN_FLIGHT.labels(*self._model).set(0)
        self._in_flight_shown = 0

    def set_model_info(self, runtime: str, ready: bool) -> None:
        MODEL_INFO.labels(runtime, str(ready).lower(), *self._model).set(1)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._requests[(route, method, status)] += 1
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = _LocalHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds)
        self._flush_soon()

    def observe_scores(self, class_names: Sequence[str], scores: Scores, confidences: list[float]) -> None:
        """Count a whole batch at once: one increment per class and per bucket, not per row."""
        if len(confidences) == 1:  # a single row: plain Python beats numpy's per-call overhead
            self._classes[class_names[int(scores.classes[0])]] += 1
            self._confidence.observe(confidences[0])
        else:
            counts = np.bincount(scores.classes, minlength=len(class_names)).tolist()
            for index, count in enumerate(counts):
                if count:
                    self._classes[class_names[index]] += count
            self._confidence.observe_many(np.asarray(confidences))
        self._flush_soon()

    def observe_values(self, scores: Scores) -> None:
        """A regressor's values, in the value histogram (the class counts are a classifier's)."""
        if scores.values is not None and len(scores.values):
            self._values.observe_many(scores.values.astype(np.float64))
            self._flush_soon()

    def watch_drift(
        self,
        feature_names: Sequence[str],
        class_names: Sequence[str],
        training_shares: Sequence[float] | None,
    ) -> None:
        """Start the drift series of this model at zero (so rate() sees their first increase)."""
        self._features = list(feature_names)
        self._below = [0] * len(feature_names)
        self._above = [0] * len(feature_names)
        for name in feature_names:
            for reason in OUT_OF_RANGE_REASONS:
                OUT_OF_RANGE.labels(name, reason, *self._model)
        self._class_names = list(class_names)
        self._class_index = {name: index for index, name in enumerate(class_names)}
        self._recent = SlidingCounts(len(class_names))
        self._recent_shown = [0] * len(class_names)
        for index, name in enumerate(class_names):
            RECENT_PREDICTIONS.labels(name, *self._model).set(0)
            if training_shares is not None:
                TRAINING_CLASS_SHARE.labels(name, *self._model).set(training_shares[index])

    def observe_out_of_range(self, below: Sequence[int], above: Sequence[int]) -> None:
        """Add the per-feature counts of values below the training minimum and above the maximum."""
        self._below = list(map(add, self._below, below))
        self._above = list(map(add, self._above, above))
        self._flush_soon()

    def observe_model_call(self, rows: int) -> None:
        self._call_rows.observe(rows)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._schedule is None:
            self.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            self._schedule(FLUSH_SECONDS, self.flush)

    def flush(self, scraping: bool = False) -> None:
        """Push this worker's counts into the shared multiprocess files (`scraping`: the /metrics request
        being answered is in flight too, and not counted)."""
        self._flush_pending = False
        self._show_in_flight(1 if scraping else 0)
        requests, self._requests = self._requests, defaultdict(int)
        for (route, method, status), count in requests.items():
            REQUESTS.labels(route, method, str(status), *self._model).inc(count)
        for route, histogram in self._latency.items():
            histogram.push(LATENCY.labels(route, *self._model))
        classes, self._classes = self._classes, defaultdict(int)
        for class_name, count in classes.items():
            PREDICTIONS.labels(class_name, *self._model).inc(count)
        self._push_drift(classes)
        self._confidence.push(CONFIDENCE.labels(*self._model))
        if any(self._values.counts):  # a classifier's metrics carry no value histogram at all
            self._values.push(PREDICTION_VALUE.labels(*self._model))
        self._call_rows.push(CALL_ROWS.labels(*self._model))

    def _push_drift(self, classes: Mapping[str, int]) -> None:
        """The out-of-range counts; the recent-predictions window fed with the class counts just pushed."""
        for counts, reason in zip((self._below, self._above), OUT_OF_RANGE_REASONS, strict=True):
            for index, count in enumerate(counts):
                if count:
                    OUT_OF_RANGE.labels(self._features[index], reason, *self._model).inc(count)
                    counts[index] = 0
        recent = self._recent
        if recent is None:
            return
        for class_name, count in classes.items():
            recent.add(self._class_index[class_name], count)
        self._show_recent()
        if recent and not self._window_ticking and self._schedule is not None:
            self._window_ticking = True
            self._schedule(recent.slot_seconds, self._tick_window)

    def _show_recent(self) -> None:
        """Set the recent-predictions gauges that changed (one shared-memory write each)."""
        if self._recent is None:
            return
        totals = self._recent.totals()
        for index, (shown, total) in enumerate(zip(self._recent_shown, totals, strict=True)):
            if shown != total:
                RECENT_PREDICTIONS.labels(self._class_names[index], *self._model).set(total)
        self._recent_shown = totals

    def _show_in_flight(self, not_counted: int = 0) -> None:
        """Sample the worker's in-flight count into the gauge (a shared-memory write only on change)."""
        if self._in_flight is None:
            return
        count = max(self._in_flight() - not_counted, 0)
        if count != self._in_flight_shown:
            IN_FLIGHT.labels(*self._model).set(count)
            self._in_flight_shown = count

    def _tick_in_flight(self) -> None:
        self._show_in_flight()
        if self._schedule is not None:
            self._schedule(FLUSH_SECONDS, self._tick_in_flight)

    def _tick_window(self) -> None:
        """Age the window while it holds predictions, even with no traffic to flush."""
        self._show_recent()
        if self._recent and self._schedule is not None:
            self._schedule(self._recent.slot_seconds, self._tick_window)
        else:
            self._window_ticking = False


def render() -> bytes:
    """All workers' metrics, merged from the multiprocess directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))
