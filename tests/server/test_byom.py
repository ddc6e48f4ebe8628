"""Bring your own model, over a real server: the model zoo's families answer through every protocol as the
native model does, on every row of their data set.

One case per family and shape (tests/model/test_zoo.py covers all 26 in process): the notes' Iris forest
(one float tensor), a diabetes regressor, a Pipeline over a table with categories and missing values (one
input per column; as classifier and as regressor), an XGBoost classifier and a LightGBM regressor. Each
row goes through `/predict` (by name and in order), KServe V1, V2 and MLflow's `/invocations`; classes
must be identical, probabilities and values within convert.py's tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlkube.model.bundle import CATEGORY, Bundle, read_bundle
from mlkube.model.convert import PROBABILITY_TOLERANCE, VALUE_TOLERANCE, native_input
from mlkube.model.datasets import read_table
from mlkube.model.runtime import ClassIndex, load_skops
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.test_zoo import load_native
from tests.model.zoo import SEED, columns_of, mixed_frame, sklearn_frame, write_csv, write_mixed_csv
from tests.support import RunningServer, start_server


@dataclass
class Case:
    bundle: Bundle
    native: Any
    frame: pd.DataFrame


def trained(tmp: Path, data: str, task: str, estimator: str, params: dict[str, object]) -> Case:
    if data.startswith("mixed"):
        target = "kind" if task == "classification" else "price"
        table = read_table(write_mixed_csv(tmp, target), target, task)
        frame = mixed_frame().drop(columns=["kind", "price"])
    else:
        table = read_table(write_csv(tmp, data), "target", task)
        frame = sklearn_frame(data)[0]
    bundle = train_table_bundle(
        table, TrainParams(estimator=estimator, extra=params, seed=SEED), tmp / "models", name=data
    )
    bundle = read_bundle(bundle.path)
    return Case(bundle, load_native(bundle), frame)


CASES: dict[str, tuple[str, str, str, dict[str, object]] | None] = {
    "iris-forest-tensor": None,  # the notes' model: the session's model_dir
    "diabetes-forest-regressor": ("diabetes", "regression", "random_forest", {"n_estimators": 10}),
    "mixed-pipeline-classifier": ("mixed", "classification", "hist_gradient_boosting", {"max_iter": 15}),
    "mixed-pipeline-regressor": ("mixed", "regression", "random_forest", {"n_estimators": 10}),
    "wine-xgboost-classifier": ("wine", "classification", "xgboost", {"n_estimators": 10, "n_jobs": 1}),
    "diabetes-lightgbm-regressor": ("diabetes", "regression", "lightgbm", {"n_estimators": 10, "n_jobs": 1}),
}


@pytest.fixture(scope="module", params=list(CASES))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, iris_bundle: Bundle
) -> Iterator[tuple[Case, RunningServer]]:
    spec = CASES[request.param]
    if spec is None:
        frame = sklearn_frame("iris")[0]
        frame.columns = iris_bundle.metadata.feature_names
        case = Case(iris_bundle, load_skops(iris_bundle), frame)
    else:
        case = trained(tmp_path_factory.mktemp(request.param), *spec)
    env = {"MODEL_BUNDLE": str(case.bundle.path), "WORKERS": "1"}
    with start_server(env) as running:
        yield case, running


def json_value(value: Any) -> Any:
    """A frame cell as a client sends it: NaN/None as null, numbers as floats, text as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)


def records(case: Case) -> list[dict[str, Any]]:
    """One object per row; a missing value is left out (the model imputes it)."""
    names = [spec.name for spec in case.bundle.metadata.input_schema().features]
    rows = case.frame[names].astype(object).to_dict(orient="records")
    return [{k: json_value(v) for k, v in row.items() if json_value(v) is not None} for row in rows]


def lists(case: Case) -> list[list[Any]]:
    names = [spec.name for spec in case.bundle.metadata.input_schema().features]
    return [[json_value(v) for v in row] for row in case.frame[names].astype(object).itertuples(index=False)]


def expected(case: Case) -> Any:
    schema = case.bundle.metadata.input_schema()
    return native_input(case.native, schema, columns_of(case.frame, case.bundle))


def assert_values(case: Case, values: list[float]) -> None:
    wanted = np.asarray(case.native.predict(expected(case)), dtype=np.float64)
    tolerance = VALUE_TOLERANCE * max(1.0, float(np.max(np.abs(wanted))))
    assert len(values) == len(wanted)
    assert float(np.max(np.abs(np.asarray(values) - wanted))) <= tolerance


def assert_classes(case: Case, classes: list[int]) -> None:
    wanted = ClassIndex(case.bundle.metadata.class_labels)(case.native.predict(expected(case)))
    assert classes == wanted.tolist()


def test_predict_by_name_answers_as_the_native_model(served: tuple[Case, RunningServer]) -> None:
    case, server = served
    response = server.client.post("/predict", json={"instances": records(case)})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    if case.bundle.metadata.is_regressor:
        assert all(list(answer) == ["prediction", "version"] for answer in answers)
        assert_values(case, [answer["prediction"] for answer in answers])
    else:
        keys = ["prediction", "class_name", "confidence", "version"]
        assert all(list(answer) == keys for answer in answers)
        assert_classes(case, [answer["prediction"] for answer in answers])


def test_predict_in_order_and_one_row_by_name(served: tuple[Case, RunningServer]) -> None:
    case, server = served
    batch = server.client.post("/predict", json={"instances": lists(case)}).json()["predictions"]
    one = server.client.post("/predict", json={"features": records(case)[0]})
    assert one.status_code == 200, one.text
    assert one.json() == batch[0]
    key = "prediction"
    if case.bundle.metadata.is_regressor:
        assert_values(case, [answer[key] for answer in batch])
    else:
        assert_classes(case, [answer[key] for answer in batch])


def test_probabilities_match_the_native_model(served: tuple[Case, RunningServer]) -> None:
    case, server = served
    if case.bundle.metadata.is_regressor:
        answer = server.client.post("/predict/proba", json={"features": records(case)[0]}).json()
        assert list(answer) == ["prediction", "version"]
        return
    response = server.client.post("/predict/proba", json={"instances": records(case)})
    found = np.asarray([answer["probabilities"] for answer in response.json()["predictions"]])
    wanted = case.native.predict_proba(expected(case))
    assert float(np.max(np.abs(found - wanted))) <= PROBABILITY_TOLERANCE + 1e-6


def test_kserve_v1_answers_as_the_native_model(served: tuple[Case, RunningServer]) -> None:
    case, server = served
    path = f"/v1/models/{case.bundle.metadata.name}:predict"
    response = server.client.post(path, json={"instances": records(case)})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    if case.bundle.metadata.is_regressor:
        assert_values(case, predictions)
    else:
        assert_classes(case, predictions)


def v2_inputs(case: Case) -> list[dict[str, Any]]:
    schema = case.bundle.metadata.input_schema()
    if not any(spec.kind == CATEGORY for spec in schema.features):
        rows = lists(case)
        shape = [len(rows), len(rows[0])]
        return [{"name": "features", "shape": shape, "datatype": "FP64", "data": rows}]
    columns = list(zip(*lists(case), strict=True))
    return [
        {
            "name": spec.name,
            "shape": [len(values), 1],
            "datatype": "BYTES" if spec.kind == CATEGORY else "FP64",
            "data": list(values),
        }
        for spec, values in zip(schema.features, columns, strict=True)
    ]


def test_v2_answers_as_the_native_model(served: tuple[Case, RunningServer]) -> None:
    case, server = served
    name = case.bundle.metadata.name
    metadata = server.client.get(f"/v2/models/{name}").json()
    response = server.client.post(f"/v2/models/{name}/infer", json={"inputs": v2_inputs(case)})
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert [output["name"] for output in metadata["outputs"]] == list(outputs)
    if case.bundle.metadata.is_regressor:
        assert outputs["predict"]["datatype"] == "FP32"
        assert_values(case, outputs["predict"]["data"])
    else:
        assert_classes(case, outputs["predict"]["data"])
        wanted = case.native.predict_proba(expected(case)).ravel()
        found = np.asarray(outputs["predict_proba"]["data"])
        assert float(np.max(np.abs(found - wanted))) <= PROBABILITY_TOLERANCE + 1e-6


def test_mlflow_invocations_answer_as_mlflow_would(served: tuple[Case, RunningServer]) -> None:
    """`mlflow models serve` answers `model.predict(frame)`: the labels themselves, or the values."""
    case, server = served
    names = [spec.name for spec in case.bundle.metadata.input_schema().features]
    split = {"columns": names, "data": lists(case)}
    by_column = dict(zip(names, map(list, zip(*lists(case), strict=True)), strict=True))
    bodies: list[dict[str, Any]] = [
        {"dataframe_split": split},
        {"dataframe_records": records(case)},
        {"inputs": lists(case)},
        {"instances": by_column},
    ]
    native = case.native.predict(expected(case))
    for body in bodies:
        response = server.client.post("/invocations", json=body)
        assert response.status_code == 200, (list(body), response.text)
        predictions = response.json()["predictions"]
        if case.bundle.metadata.is_regressor:
            assert_values(case, predictions)
        else:
            assert [str(label) for label in predictions] == [str(label) for label in native.tolist()]
