"""Drift signals for models that are not one float tensor, over a real server: a Pipeline with one input
per column (numbers and text) as classifier and as regressor. Out-of-range values of its numeric columns
are counted per feature, its text columns never; a regressor has no class shares; the card keeps both
its own fields (task, kinds, categories) and the `drift` section.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mlkube.model.bundle import COLUMNS_LAYOUT, Bundle, read_bundle
from mlkube.model.datasets import read_table
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.zoo import write_mixed_csv
from tests.support import RunningServer, metric_value, start_server, wait_for_metric

TASKS = {"kind": "classification", "price": "regression"}


@pytest.fixture(scope="module", params=list(TASKS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Bundle, RunningServer]]:
    target: str = request.param
    folder = tmp_path_factory.mktemp(target)
    table = read_table(write_mixed_csv(folder, target), target, TASKS[target])
    trained = train_table_bundle(
        table, TrainParams(extra={"n_estimators": 5}), folder / "models", name=target
    )
    bundle = read_bundle(trained.path)
    with start_server({"MODEL_BUNDLE": str(bundle.path), "WORKERS": "1"}) as running:
        yield bundle, running


def labels(bundle: Bundle, feature: str, reason: str) -> dict[str, str]:
    metadata = bundle.metadata
    return {
        "model_name": metadata.name,
        "model_version": metadata.version,
        "feature": feature,
        "reason": reason,
    }


def numeric_range(bundle: Bundle, name: str) -> tuple[float, float]:
    spec = next(spec for spec in bundle.metadata.input_schema().features if spec.name == name)
    assert spec.min is not None
    assert spec.max is not None
    return spec.min, spec.max


def row(bundle: Bundle, **values: Any) -> dict[str, Any]:
    """A row inside every range and of known categories, with `values` put in."""
    found: dict[str, Any] = {}
    for spec in bundle.metadata.input_schema().features:
        if spec.kind == "category":
            found[spec.name] = spec.categories[0]
        else:
            assert spec.min is not None
            assert spec.max is not None
            found[spec.name] = (spec.min + spec.max) / 2
    return found | values


def test_a_columns_models_numbers_outside_the_range_are_counted_per_feature_and_side(
    served: tuple[Bundle, RunningServer],
) -> None:
    bundle, server = served
    assert bundle.metadata.input_schema().layout == COLUMNS_LAYOUT
    size, age = numeric_range(bundle, "size"), numeric_range(bundle, "age")
    rows = [
        row(bundle, size=size[1] + 100),  # alone: the one-row path
        row(bundle, age=age[0] - 5),
        row(bundle, size=size[1] + 1),
        row(bundle),
        row(bundle, size=None),  # missing: imputed, never outside
    ]
    assert server.client.post("/predict", json={"features": rows[0]}).status_code == 200
    assert server.client.post("/predict", json={"instances": rows[1:]}).status_code == 200
    model = {"model_name": bundle.metadata.name, "model_version": bundle.metadata.version}
    found = wait_for_metric(server, "mlkube_model_call_rows_sum", 5, **model)
    assert metric_value(found, "mlkube_model_call_rows_sum", **model) == 5
    total = "mlkube_feature_out_of_range_total"
    assert metric_value(found, total, **labels(bundle, "size", "above_max")) == 2
    assert metric_value(found, total, **labels(bundle, "age", "below_min")) == 1
    assert metric_value(found, total, **labels(bundle, "size", "below_min")) == 0
    assert metric_value(found, total, **labels(bundle, "age", "above_max")) == 0
    for text in ("colour", "city"):
        for reason in ("below_min", "above_max"):
            assert metric_value(found, total, **labels(bundle, text, reason)) == 0

    card = server.client.get("/model").json()
    drift = {feature["name"]: feature for feature in card["drift"]["features"]}
    assert list(drift) == ["size", "age", "colour", "city"]
    assert (drift["size"]["above_max"], drift["age"]["below_min"], drift["colour"]["above_max"]) == (2, 1, 0)
    assert card["drift"]["rows"] == 5


def test_the_card_has_the_models_own_fields_and_the_drift_section(
    served: tuple[Bundle, RunningServer],
) -> None:
    bundle, server = served
    card = server.client.get("/model").json()
    kinds = {feature["name"]: feature.get("kind", "number") for feature in card["features"]}
    assert kinds == {"size": "number", "age": "number", "colour": "category", "city": "category"}
    assert card["task"] == bundle.metadata.task
    classes = card["drift"]["classes"]
    if bundle.metadata.is_regressor:
        assert card["class_names"] == []
        assert classes == []  # a regressor has no class shares to show
    else:
        assert [share["name"] for share in classes] == card["class_names"]
