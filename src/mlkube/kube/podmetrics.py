"""A pod's own `/metrics`, read for a canary analysis: the counts that judge a release, parsed from the
Prometheus text exposition with prometheus_client's parser, differenced between two reads the way
Prometheus' `increase()` does (a counter that went down means the process restarted and counted from 0).

Only the prediction routes count: the kubelet's probes (/ready, /health) and the scrapes (/metrics) would
dilute the error ratio and the latency of the requests users send."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

PREDICTION_ROUTES = frozenset(
    {
        "/predict",
        "/v1/models/{name}:predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    }
)
"""The route templates of mlkube's server that score rows (the `route` label is the template)."""

K = TypeVar("K", str, float)

REQUESTS = "mlkube_requests"
LATENCY = "mlkube_request_duration_seconds"
PREDICTIONS = "mlkube_predictions"
MAX_METRICS_BYTES = 4 * 1024 * 1024
"""A pod's exposition is a few kB; anything near this is not mlkube's and is not parsed."""


@dataclass(frozen=True)
class Counts:
    """Counter values of one pod (or a sum over pods): prediction requests by status, the latency
    histogram's cumulative buckets by upper bound, rows predicted by class."""

    statuses: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)
    classes: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> float:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> float:
        return sum(count for status, count in self.statuses.items() if status.startswith("5"))

    def success_ratio(self) -> float | None:
        """The share of prediction requests not answered 5xx (a 4xx is the client's fault); None if none."""
        total = self.requests
        return None if total <= 0 else 1.0 - self.server_errors / total

    def p99(self) -> float | None:
        return histogram_quantile(0.99, self.buckets)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            _sum(self.statuses, other.statuses),
            _sum(self.buckets, other.buckets),
            _sum(self.classes, other.classes),
        )


def parse_counts(text: str) -> Counts:
    """The counts of one pod's exposition text; ValueError when it is not Prometheus text."""
    statuses: dict[str, float] = {}
    buckets: dict[float, float] = {}
    classes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == REQUESTS + "_total" and labels.get("route") in PREDICTION_ROUTES:
                status = labels.get("status", "")
                statuses[status] = statuses.get(status, 0.0) + sample.value
            elif sample.name == LATENCY + "_bucket" and labels.get("route") in PREDICTION_ROUTES:
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == PREDICTIONS + "_total":
                name = labels.get("class_name", "")
                classes[name] = classes.get(name, 0.0) + sample.value
    return Counts(statuses, buckets, classes)


def increase(before: Counts | None, after: Counts) -> Counts:
    """What a pod counted between two reads. A pod seen for the first time counted nothing yet (its
    counts from before are not this interval's); a pod whose counters went down restarted: everything it
    counted since is new."""
    if before is None:
        return Counts()
    if _went_down(before, after):
        return after
    return Counts(
        _difference(after.statuses, before.statuses),
        _difference(after.buckets, before.buckets),
        _difference(after.classes, before.classes),
    )


def total(counts: Iterable[Counts]) -> Counts:
    summed = Counts()
    for item in counts:
        summed = summed + item
    return summed


def histogram_quantile(quantile: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' `histogram_quantile`: linear interpolation inside the bucket the rank falls in; the
    highest finite bound when it falls in +Inf; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = quantile * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def population_stability(expected: Mapping[str, float], actual: Mapping[str, float]) -> float | None:
    """PSI of the class shares, Σ (a - e)·ln(a / e), over every class either side predicted; each count
    gets half a row added so that a class one side never predicted weighs a lot but not infinitely.
    None when either side predicted nothing."""
    names = sorted(set(expected) | set(actual))
    expected_total, actual_total = sum(expected.values()), sum(actual.values())
    if not names or expected_total <= 0 or actual_total <= 0:
        return None
    smoothing = 0.5
    value = 0.0
    for name in names:
        e = (expected.get(name, 0.0) + smoothing) / (expected_total + smoothing * len(names))
        a = (actual.get(name, 0.0) + smoothing) / (actual_total + smoothing * len(names))
        value += (a - e) * math.log(a / e)
    return value


def _went_down(before: Counts, after: Counts) -> bool:
    return (
        _any_lower(before.statuses, after.statuses)
        or _any_lower(before.buckets, after.buckets)
        or _any_lower(before.classes, after.classes)
    )


def _any_lower(before: Mapping[K, float], after: Mapping[K, float]) -> bool:
    return any(after.get(key, 0.0) < value for key, value in before.items())


def _difference(after: Mapping[K, float], before: Mapping[K, float]) -> dict[K, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _sum(left: Mapping[K, float], right: Mapping[K, float]) -> dict[K, float]:
    summed = dict(left)
    for key, value in right.items():
        summed[key] = summed.get(key, 0.0) + value
    return summed
