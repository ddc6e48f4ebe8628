"""Drift signals over a real server with two workers: /metrics merges them, /model and the page show them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import NOTES_ROW, RunningServer, start_server

FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
CLASSES = ["setosa", "versicolor", "virginica"]
REASONS = ("below_min", "above_max")
VERSICOLOR = [5.9, 3.0, 4.2, 1.5]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
MODEL = (("model_name", "iris"), ("model_version", "v1"))
SETTLE_SECONDS = 10.0

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def workers(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2"}) as running:
        yield running


def series(server: RunningServer) -> Series:
    text = server.client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Series, name: str, **labels: str) -> float:
    return found.get((name, frozenset({*MODEL, *labels.items()})), 0.0)


def out_of_range(found: Series) -> dict[tuple[str, str], float]:
    return {
        (feature, reason): value(found, "mlkube_feature_out_of_range_total", feature=feature, reason=reason)
        for feature in FEATURES
        for reason in REASONS
    }


def recent(found: Series) -> list[float]:
    return [value(found, "mlkube_recent_predictions", class_name=name) for name in CLASSES]


def settled(read: Callable[[], object], expected: object) -> object:
    """Poll until `read()` gives `expected` (workers push counts every FLUSH_SECONDS); the last reading."""
    deadline = time.monotonic() + SETTLE_SECONDS
    found = read()
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        found = read()
    return found


def post_spread(server: RunningServer, body: object) -> None:
    """A fresh connection per request: the kernel spreads them over both workers."""
    response = server.client.post("/predict", json=body, headers={"connection": "close"})
    assert response.status_code == 200, response.text


def test_out_of_range_counts_are_merged_per_feature_and_side(workers: RunningServer) -> None:
    before = out_of_range(series(workers))
    for _ in range(10):
        post_spread(workers, {"features": [1.0, 3.0, 9.0, 0.2]})  # sepal length low, petal length high
        post_spread(workers, {"features": NOTES_ROW})
    post_spread(workers, {"instances": [[8.5, 1.0, 1.4, 3.0], NOTES_ROW]})
    expected = dict.fromkeys(before, 0.0) | {
        ("sepal_length_cm", "below_min"): 10.0,
        ("petal_length_cm", "above_max"): 10.0,
        ("sepal_length_cm", "above_max"): 1.0,
        ("sepal_width_cm", "below_min"): 1.0,
        ("petal_width_cm", "above_max"): 1.0,
    }

    def counted() -> dict[tuple[str, str], float]:
        after = out_of_range(series(workers))
        return {key: after[key] - before[key] for key in after}

    assert settled(counted, expected) == expected


def test_recent_class_counts_are_merged_and_the_training_shares_exported(workers: RunningServer) -> None:
    before = recent(series(workers))
    for row, times in ((NOTES_ROW, 6), (VERSICOLOR, 3), (VIRGINICA, 3)):
        for _ in range(times):
            post_spread(workers, {"features": row})
    post_spread(workers, {"instances": [VIRGINICA] * 4})
    expected = [6.0, 3.0, 7.0]

    def counted() -> list[float]:
        return [after - first for after, first in zip(recent(series(workers)), before, strict=True)]

    assert settled(counted, expected) == expected
    found = series(workers)
    for name in CLASSES:
        assert value(found, "mlkube_training_class_share", class_name=name) == pytest.approx(1 / 3)


def test_label_sets_stay_bounded_whatever_the_requests(workers: RunningServer) -> None:
    hostile = [
        {"features": [-3.4e38, 3.4e38, 0.0, 1e30], "feature": "evil\n{x}", "class_name": "evil"},
        {"instances": [[1e30] * 4] * 100},
        {"features": ["sepal_length_cm", 1, 2, 3]},
    ]
    for body in hostile:
        workers.client.post("/predict", json=body)
    drift_series = [
        dict(labels)
        for name, labels in series(workers)
        if name.startswith(("mlkube_feature_out_of_range", "mlkube_recent", "mlkube_training_class"))
    ]
    labels = {
        found[label]
        for found in drift_series
        for label in ("feature", "reason", "class_name")
        if label in found
    }
    assert len(drift_series) == len(FEATURES) * len(REASONS) + 2 * len(CLASSES)
    assert labels == {*FEATURES, *REASONS, *CLASSES}


def test_the_model_card_shows_what_metrics_merge(workers: RunningServer) -> None:
    post_spread(workers, {"instances": [[1.0, 3.0, 1.4, 0.2], NOTES_ROW, VIRGINICA]})

    def both() -> tuple[object, object]:
        drift = workers.client.get("/model").json()["drift"]
        found = series(workers)
        from_metrics = (
            int(value(found, "mlkube_model_call_rows_sum")),
            [int(out_of_range(found)[(feature, reason)]) for feature in FEATURES for reason in REASONS],
            [int(count) for count in recent(found)],
        )
        from_card = (
            drift["rows"],
            [feature[reason] for feature in drift["features"] for reason in REASONS],
            [item["recent"] for item in drift["classes"]],
        )
        return from_card, from_metrics

    def agree() -> bool:
        card, metrics = both()
        return card == metrics

    assert settled(agree, True) is True
    drift = workers.client.get("/model").json()["drift"]
    assert [feature["name"] for feature in drift["features"]] == FEATURES
    assert [item["training"] for item in drift["classes"]] == [0.333333] * 3
    assert drift["features"][0]["share"] > 0


def test_the_page_has_a_place_for_the_signals(workers: RunningServer) -> None:
    page = workers.client.get("/", headers={"accept": "text/html"}).text
    assert 'id="drift-features"' in page
    assert 'id="drift-classes"' in page
    script = workers.client.get("/static/page.js").text
    assert "renderDrift(card.drift)" in script
