"""What a server says about a model that is not the Iris forest: its OpenAPI document, model card, V2
metadata and metrics, for a regressor and for a Pipeline with text columns, over a real socket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from mlkube.model.bundle import Bundle, read_bundle
from mlkube.model.datasets import read_table
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.zoo import write_csv, write_mixed_csv
from tests.server.openapi_documents import JSON, request_validator
from tests.support import RunningServer, start_server

SHOP_ROW = {"size": 50.0, "age": 3.0, "colour": "red", "city": "Oslo"}


def trained(folder: Path, csv: Path, target: str, task: str, name: str) -> Bundle:
    table = read_table(csv, target, task)
    params = TrainParams(extra={"n_estimators": 5})
    return read_bundle(train_table_bundle(table, params, folder / "models", name=name).path)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("diabetes")
    bundle = trained(folder, write_csv(folder, "diabetes"), "target", "regression", "diabetes")
    with start_server({"MODEL_BUNDLE": str(bundle.path), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("shop")
    bundle = trained(folder, write_mixed_csv(folder, "kind"), "kind", "classification", "shop")
    with start_server({"MODEL_BUNDLE": str(bundle.path), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(params=["regressor", "shop"])
def any_server(request: pytest.FixtureRequest) -> RunningServer:
    server: RunningServer = request.getfixturevalue(request.param)
    return server


def test_the_document_is_valid_and_its_examples_are_answered(any_server: RunningServer) -> None:
    document: dict[str, Any] = any_server.client.get("/openapi.json").json()
    validate(document)
    name = any_server.client.get("/model").json()["name"]
    examples = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get(JSON, {})
            if "example" not in body:
                continue
            examples += 1
            assert request_validator(document, method, path).is_valid(body["example"]), path
            concrete = path.replace("{name}", name).replace("{version}", "v1")
            answer = any_server.client.request(method, concrete, json=body["example"])
            assert answer.status_code == 200, (path, answer.text)
    assert examples == 6


def test_the_predict_schema_takes_rows_by_name_with_text(shop: RunningServer) -> None:
    document = shop.client.get("/openapi.json").json()
    validator = request_validator(document, "POST", "/predict")
    assert validator.is_valid({"features": SHOP_ROW})
    assert validator.is_valid({"features": {"age": 3.0}})  # every column of this model imputes
    assert validator.is_valid({"instances": [list(SHOP_ROW.values()), SHOP_ROW]})
    assert not validator.is_valid({"features": {**SHOP_ROW, "colour": "purple"}})
    assert not validator.is_valid({"features": {**SHOP_ROW, "weight": 1.0}})
    assert not validator.is_valid({"features": {**SHOP_ROW, "size": "big"}})
    invocations = request_validator(document, "POST", "/invocations")
    assert invocations.is_valid({"dataframe_records": [SHOP_ROW]})
    assert not invocations.is_valid({"dataframe_records": [SHOP_ROW], "inputs": [SHOP_ROW]})


def test_the_card_shows_categories_and_the_task(shop: RunningServer, regressor: RunningServer) -> None:
    card = shop.client.get("/model").json()
    assert card["task"] == "classification"
    colour = next(feature for feature in card["features"] if feature["name"] == "colour")
    assert colour["kind"] == "category"
    assert colour["categories"] == ["blue", "green", "red"]
    assert colour["missing"] is True
    size = next(feature for feature in card["features"] if feature["name"] == "size")
    assert "kind" not in size  # a number: the fields Iris's card has, no more
    values = regressor.client.get("/model").json()
    assert values["task"] == "regression"
    assert values["class_names"] == []


def test_v2_metadata_lists_what_each_model_takes_and_answers(
    shop: RunningServer, regressor: RunningServer
) -> None:
    columns = shop.client.get("/v2/models/shop").json()
    assert [(i["name"], i["datatype"], i["shape"]) for i in columns["inputs"]] == [
        ("size", "FP32", [-1, 1]),
        ("age", "FP32", [-1, 1]),
        ("colour", "BYTES", [-1, 1]),
        ("city", "BYTES", [-1, 1]),
    ]
    values = regressor.client.get("/v2/models/diabetes").json()
    assert values["inputs"][0]["name"] == "features"
    assert values["outputs"] == [{"name": "predict", "datatype": "FP32", "shape": [-1]}]
    refused = regressor.client.post(
        "/v2/models/diabetes/infer",
        json={
            "inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP32", "data": [0.0] * 10}],
            "outputs": [{"name": "label"}],
        },
    )
    assert refused.status_code == 400
    assert "a regressor answers 'predict'" in refused.json()["error"]


def test_a_regressor_counts_its_values_in_a_histogram_not_classes(regressor: RunningServer) -> None:
    rows = [[0.01 * index] * 10 for index in range(7)]
    answer = regressor.client.post("/predict", json={"instances": rows}).json()
    assert all(list(row) == ["prediction", "version"] for row in answer["predictions"])
    text = regressor.client.get("/metrics").text
    count = re.search(
        r'mlkube_prediction_value_count\{model_name="diabetes",model_version="v1"\} (\S+)', text
    )
    assert count is not None
    assert float(count.group(1)) >= 7
    assert "mlkube_predictions_total{" not in text  # no class counts for a regressor
