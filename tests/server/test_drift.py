"""Drift signals in process: values outside the training range counted per feature and side, the recent
predicted-class window, the training class shares, bounded label sets, and the card's `drift` section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pytest
from prometheus_client import REGISTRY

from mlkube.model.bundle import CATEGORY, COLUMNS_LAYOUT, Bundle, FeatureSpec, InputSchema, Metadata
from mlkube.server.drift import (
    ABOVE_MAX,
    BELOW_MIN,
    FeedsRangeWatch,
    RangeWatch,
    SlidingCounts,
    forget_dead_workers,
    training_class_shares,
)
from tests.inprocess import InProcessClient, in_process_app
from tests.support import NOTES_ROW

MODEL = {"model_name": "iris", "model_version": "v1"}
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
CLASSES = ["setosa", "versicolor", "virginica"]
VERSICOLOR = [5.9, 3.0, 4.2, 1.5]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
OUT_OF_RANGE = "mlkube_feature_out_of_range_total"


@pytest.fixture
def client(iris_bundle: Bundle, tmp_path: Path) -> Iterator[InProcessClient]:
    running = InProcessClient(in_process_app(iris_bundle, tmp_path))
    yield running
    running.close()


def outside(client: InProcessClient) -> dict[tuple[str, str], float]:
    """Every (feature, reason) series of this model in this process, after the worker's counts are pushed."""
    client.app.metrics.flush()
    return {
        (sample.labels["feature"], sample.labels["reason"]): sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == OUT_OF_RANGE and all(sample.labels.get(k) == v for k, v in MODEL.items())
    }


def recent(client: InProcessClient) -> list[float]:
    client.app.metrics.flush()
    return [
        REGISTRY.get_sample_value("mlkube_recent_predictions", {"class_name": name, **MODEL}) or 0.0
        for name in CLASSES
    ]


def delta(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> dict[str, list[int]]:
    """Per feature: [below_min, above_max] counted between two readings."""
    return {
        feature: [
            int(after[(feature, reason)] - before.get((feature, reason), 0))
            for reason in (BELOW_MIN, ABOVE_MAX)
        ]
        for feature in FEATURES
    }


# --- RangeWatch -------------------------------------------------------------------------------------


class Recorded:
    """Collects what a RangeWatch reports (it stands in for Metrics.observe_out_of_range)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[int]]] = []

    def __call__(self, below: Sequence[int], above: Sequence[int]) -> None:
        self.calls.append((list(below), list(above)))


@pytest.mark.parametrize("rows", [1, 3])
def test_range_watch_counts_each_side_per_feature_and_nothing_inside(rows: int) -> None:
    recorded = Recorded()
    watch = RangeWatch([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], recorded)
    watch.check(np.full((rows, 3), 0.5, dtype=np.float32))
    assert recorded.calls == []
    watch.check(np.array([[-1.0, 0.5, 2.0]] * rows, dtype=np.float32))
    assert recorded.calls == [([rows, 0, 0], [0, 0, rows])]


def test_range_watch_counts_the_right_columns_whatever_the_memory_layout() -> None:
    recorded = Recorded()
    watch = RangeWatch([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], recorded)
    rows = np.array([[0.5, 2.0, 0.5], [0.5, 2.0, -1.0], [-1.0, 0.5, 0.5], [0.5, 0.5, 0.5]], dtype=np.float32)
    for layout in (rows, np.asfortranarray(rows), rows[::-1]):
        watch.check(layout)
    assert recorded.calls == [([1, 0, 1], [0, 2, 0])] * 3


def test_range_watch_keeps_the_training_bounds_inside_in_float32(iris_bundle: Bundle) -> None:
    """4.3 and 7.9 are no float32 numbers: compared in float64, the training max itself would be 'above'."""
    recorded = Recorded()
    watch = RangeWatch.for_model(iris_bundle.metadata, recorded)
    assert watch is not None
    stats = iris_bundle.metadata.features
    for bounds in ([s.min for s in stats], [s.max for s in stats]):
        watch.check(np.array([bounds], dtype=np.float32))
        watch.check(np.array([bounds, bounds], dtype=np.float32))
    assert recorded.calls == []


def test_range_watch_ignores_features_without_a_range_and_bundles_without_any(iris_bundle: Bundle) -> None:
    metadata = iris_bundle.metadata
    specs = metadata.input_schema().features
    partial = [
        specs[0],
        FeatureSpec(name=specs[1].name),
        FeatureSpec(name=specs[2].name, kind=CATEGORY),
        specs[3],
    ]
    recorded = Recorded()
    watch = RangeWatch.for_model(with_inputs(metadata, partial), recorded)
    assert watch is not None
    watch.check(np.array([[100.0, 100.0, 100.0, 1.0]], dtype=np.float32))
    assert recorded.calls == [([0, 0, 0, 0], [1, 0, 0, 0])]
    unranged = [FeatureSpec(name=spec.name) for spec in specs]
    assert RangeWatch.for_model(with_inputs(metadata, unranged), recorded) is None


def test_range_watch_reads_the_ranges_of_bundles_written_before_input_schemas(iris_bundle: Bundle) -> None:
    old = msgspec.structs.replace(
        iris_bundle.metadata, inputs=None, features=iris_bundle.metadata.features[:1]
    )
    recorded = Recorded()
    watch = RangeWatch.for_model(old, recorded)
    assert watch is not None
    watch.check(np.array([[100.0, 100.0, 100.0, 100.0]], dtype=np.float32))
    assert recorded.calls == [([0, 0, 0, 0], [1, 0, 0, 0])]


def with_inputs(metadata: Metadata, specs: list[FeatureSpec]) -> Metadata:
    return msgspec.structs.replace(metadata, inputs=InputSchema(features=specs))


def test_a_columns_model_is_watched_on_its_numeric_inputs_at_their_schema_places(iris_bundle: Bundle) -> None:
    specs = [
        FeatureSpec(name="size", min=1.0, max=9.0, onnx_input="size_in"),
        FeatureSpec(name="colour", kind=CATEGORY, categories=["red"], onnx_input="colour_in"),
        FeatureSpec(name="age", onnx_input="age_in"),  # no range: never outside
        FeatureSpec(name="weight", min=0.0, max=2.0, missing=True, onnx_input="weight_in"),
    ]
    metadata = msgspec.structs.replace(
        iris_bundle.metadata, inputs=InputSchema(layout=COLUMNS_LAYOUT, features=specs)
    )
    assert RangeWatch.for_model(metadata, Recorded()) is None  # its batcher holds feeds, not one array
    assert FeedsRangeWatch.for_model(iris_bundle.metadata, Recorded()) is None  # a tensor model
    recorded = Recorded()
    watch = FeedsRangeWatch.for_model(metadata, recorded)
    assert watch is not None

    def feeds(*rows: tuple[float, str, float, float]) -> dict[str, np.ndarray]:
        columns = list(zip(*rows, strict=True))
        return {
            spec.onnx_input: np.array(values, dtype=object if spec.kind == CATEGORY else np.float32).reshape(
                -1, 1
            )
            for spec, values in zip(specs, columns, strict=True)
        }

    watch.check(feeds((5.0, "red", 1e9, 1.0)))
    assert recorded.calls == []  # inside, whatever an unranged feature holds
    watch.check(feeds((10.0, "red", 0.0, float("nan"))))  # one row; a missing value is never outside
    watch.check(feeds((0.0, "red", 0.0, 3.0), (5.0, "red", 0.0, 1.0), (20.0, "red", 0.0, -1.0)))
    assert recorded.calls == [([0, 0, 0, 0], [1, 0, 0, 0]), ([1, 0, 0, 1], [1, 0, 0, 1])]


# --- SlidingCounts and training shares -------------------------------------------------------------


class ManualClock:
    """A clock the test moves by hand (time.monotonic stand-in)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_counts_forget_what_left_the_window() -> None:
    clock = ManualClock()
    window = SlidingCounts(2, seconds=60, slots=6, clock=clock)
    assert not window
    window.add(0, 3)
    clock.now += 30
    window.add(1, 2)
    assert window.totals() == [3, 2]
    clock.now += 35  # the first slot is now more than 60 s old
    assert window.totals() == [0, 2]
    clock.now += 60
    assert window.totals() == [0, 0]
    assert not window


def test_training_shares_come_from_the_held_out_class_counts(iris_bundle: Bundle) -> None:
    metadata = iris_bundle.metadata
    assert training_class_shares(metadata) == pytest.approx([1 / 3] * 3)
    skewed = with_metrics(metadata, per_class=None, confusion_matrix=[[8, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert training_class_shares(skewed) == pytest.approx([0.8, 0.2, 0.0])
    assert training_class_shares(with_metrics(metadata, per_class=None, confusion_matrix=None)) is None


def with_metrics(metadata: Metadata, **metrics: object) -> Metadata:
    kept = {key: value for key, value in metadata.metrics.items() if key not in metrics}
    given = {key: value for key, value in metrics.items() if value is not None}
    return msgspec.structs.replace(metadata, metrics=kept | given)


# --- through the app ---------------------------------------------------------------------------------


def test_out_of_range_values_are_counted_per_feature_and_side(client: InProcessClient) -> None:
    before = outside(client)
    assert client.post_json("/predict", {"features": [1.0, 3.0, 9.0, 0.2]}).status == 200
    assert (
        client.post_json("/predict", {"instances": [[1.0, 9.0, 1.4, 0.2], [8.0, 3.0, 0.5, 3.0]]}).status
        == 200
    )
    assert client.post_json("/predict", {"instances": [NOTES_ROW, VIRGINICA]}).status == 200
    assert delta(outside(client), before) == {
        "sepal_length_cm": [2, 1],
        "sepal_width_cm": [0, 1],
        "petal_length_cm": [1, 1],
        "petal_width_cm": [0, 1],
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict/proba", {"features": [1.0, 3.0, 1.4, 0.2]}),
        ("/v1/models/iris:predict", {"instances": [[1.0, 3.0, 1.4, 0.2]]}),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 3.0, 1.4, 0.2]}
                ]
            },
        ),
    ],
)
def test_every_prediction_route_is_checked(client: InProcessClient, path: str, body: object) -> None:
    before = outside(client)
    assert client.post_json(path, body).status == 200
    assert delta(outside(client), before)["sepal_length_cm"] == [1, 0]


def test_values_inside_the_range_and_refused_requests_count_nothing(client: InProcessClient) -> None:
    before = outside(client)
    card = client.get("/model").json()
    low = [feature["min"] for feature in card["features"]]
    high = [feature["max"] for feature in card["features"]]
    assert client.post_json("/predict", {"instances": [low, high, NOTES_ROW]}).status == 200
    assert client.post_json("/predict", {"features": high}).status == 200
    assert client.post_json("/predict", {"features": [1e9, 1e9, 1e9]}).status == 422  # wrong width
    assert client.post_json("/predict", {"features": [1e39, 1.0, 1.0, 1.0]}).status == 422  # over float32
    assert all(counts == [0, 0] for counts in delta(outside(client), before).values())


def test_hostile_requests_create_no_series(client: InProcessClient) -> None:
    hostile: list[tuple[str, object]] = [
        ("/predict", {"features": [-3.4e38, 3.4e38, -1e-45, 1e30], "feature": "evil", "reason": "x"}),
        ("/predict", {"instances": [[-1e30] * 4] * 50 + [[1e30] * 4] * 50}),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "evil", "shape": [1, 4], "datatype": "FP64", "data": [9e9] * 4}]},
        ),
    ]
    for path, body in hostile:
        client.post_json(path, body)
    labels = set(outside(client))
    assert labels == {(feature, reason) for feature in FEATURES for reason in (BELOW_MIN, ABOVE_MAX)}


def test_recent_class_shares_follow_a_known_mix(client: InProcessClient) -> None:
    before = recent(client)
    mix = [NOTES_ROW] * 5 + [VERSICOLOR] * 2 + [VIRGINICA] * 3
    assert client.post_json("/predict", {"instances": mix}).status == 200
    assert client.post_json("/predict", {"features": VIRGINICA}).status == 200
    after = recent(client)
    assert [a - b for a, b in zip(after, before, strict=True)] == [5, 2, 4]
    shares = {
        name: REGISTRY.get_sample_value("mlkube_training_class_share", {"class_name": name, **MODEL})
        for name in CLASSES
    }
    assert shares == pytest.approx(dict.fromkeys(CLASSES, 1 / 3))


def test_the_card_shows_the_signals(client: InProcessClient) -> None:
    first = client.get("/model").json()["drift"]
    assert (
        client.post_json(
            "/predict", {"instances": [[1.0, 3.0, 1.4, 0.2], NOTES_ROW, VIRGINICA, VIRGINICA]}
        ).status
        == 200
    )
    drift = client.get("/model").json()["drift"]
    assert drift["window_seconds"] == 300
    assert drift["rows"] - first["rows"] == 4
    sepal = drift["features"][0]
    assert sepal["name"] == "sepal_length_cm"
    assert sepal["below_min"] - first["features"][0]["below_min"] == 1
    assert sepal["share"] == round((sepal["below_min"] + sepal["above_max"]) / drift["rows"], 6)
    assert [item["name"] for item in drift["classes"]] == CLASSES
    assert [item["training"] for item in drift["classes"]] == [0.333333] * 3
    assert drift["recent"] == sum(item["recent"] for item in drift["classes"])
    assert [item["share"] for item in drift["classes"]] == [
        round(item["recent"] / drift["recent"], 6) for item in drift["classes"]
    ]


# --- dead workers' gauges --------------------------------------------------------------------------

_WRITE_A_LIVE_GAUGE = """
from prometheus_client import Gauge
Gauge("g", "g", multiprocess_mode="livesum").set(7)
"""


def test_the_live_gauges_of_a_gone_worker_are_removed(tmp_path: Path) -> None:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _WRITE_A_LIVE_GAUGE], env=environment, check=True)
    assert done.returncode == 0
    (gone,) = tmp_path.glob("gauge_livesum_*.db")
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    alive.write_bytes(gone.read_bytes())
    counter = tmp_path / "counter_12345.db"
    counter.write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([alive.name, counter.name])


def test_card_json_round_trips(client: InProcessClient) -> None:
    """The drift section is plain JSON the page can read: no NaN, numbers or null."""
    body = client.get("/model").body
    assert b"NaN" not in body
    assert json.loads(body)["drift"]["features"][0].keys() == {"name", "below_min", "above_max", "share"}
