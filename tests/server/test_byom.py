"""Bring your own model, over a real server: the model zoo's families answer through every protocol as the
native model does, on every row of their data set.

One case per family and shape (tests/server/test_zoo_server.py serves all 26 zoo cases through `/predict`,
V1 and V2 with the same checks, tests/server/zoo_http.py): the notes' Iris forest
(one float tensor), a diabetes regressor, a Pipeline over a table with categories and missing values (one
input per column; as classifier and as regressor), an XGBoost classifier and a LightGBM regressor. Each
row goes through `/predict` (by name and in order), KServe V1, V2 and MLflow's `/invocations`; classes
must be identical, probabilities and values within convert.py's tolerances.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from mlkube.model.bundle import Bundle
from mlkube.model.runtime import load_skops
from tests.model.zoo import ZooCase, sklearn_frame, trained_case
from tests.server.zoo_http import (
    assert_probabilities,
    assert_values,
    check_kserve_v1,
    check_predict,
    check_v2,
    expected,
    lists,
    records,
)
from tests.support import RunningServer, start_server

CASES: dict[str, tuple[str, str, str, dict[str, object]] | None] = {
    "iris-forest-tensor": None,  # the notes' model: the session's model_dir
    "diabetes-forest-regressor": ("random_forest", "regression", "diabetes", {"n_estimators": 10}),
    "mixed-pipeline-classifier": ("hist_gradient_boosting", "classification", "mixed", {"max_iter": 15}),
    "mixed-pipeline-regressor": ("random_forest", "regression", "mixed", {"n_estimators": 10}),
    "wine-xgboost-classifier": ("xgboost", "classification", "wine", {"n_estimators": 10, "n_jobs": 1}),
    "diabetes-lightgbm-regressor": ("lightgbm", "regression", "diabetes", {"n_estimators": 10, "n_jobs": 1}),
}


@pytest.fixture(scope="module", params=list(CASES))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, iris_bundle: Bundle
) -> Iterator[tuple[ZooCase, RunningServer]]:
    spec = CASES[request.param]
    if spec is None:
        frame = sklearn_frame("iris")[0]
        frame.columns = iris_bundle.metadata.feature_names
        case = ZooCase(iris_bundle, load_skops(iris_bundle), frame)
    else:
        case = trained_case(tmp_path_factory.mktemp(request.param), *spec)
    env = {"MODEL_BUNDLE": str(case.bundle.path), "WORKERS": "1"}
    with start_server(env) as running:
        yield case, running


def test_predict_in_order_by_name_and_one_row(served: tuple[ZooCase, RunningServer]) -> None:
    case, server = served
    batch = check_predict(case, server, lists(case))
    assert check_predict(case, server, records(case)) == batch
    one = server.client.post("/predict", json={"features": records(case)[0]})
    assert one.status_code == 200, one.text
    assert one.json() == batch[0]


def test_probabilities_match_the_native_model(served: tuple[ZooCase, RunningServer]) -> None:
    case, server = served
    if case.bundle.metadata.is_regressor:
        answer = server.client.post("/predict/proba", json={"features": records(case)[0]}).json()
        assert list(answer) == ["prediction", "version"]
        return
    response = server.client.post("/predict/proba", json={"instances": records(case)})
    assert_probabilities(case, [answer["probabilities"] for answer in response.json()["predictions"]])


def test_kserve_v1_answers_as_the_native_model(served: tuple[ZooCase, RunningServer]) -> None:
    check_kserve_v1(*served)


def test_v2_answers_as_the_native_model(served: tuple[ZooCase, RunningServer]) -> None:
    check_v2(*served)


def test_mlflow_invocations_answer_as_mlflow_would(served: tuple[ZooCase, RunningServer]) -> None:
    """`mlflow models serve` answers `model.predict(frame)`: the labels themselves, or the values."""
    case, server = served
    names = [spec.name for spec in case.bundle.metadata.input_schema().features]
    split = {"columns": names, "data": lists(case)}
    by_column = dict(zip(names, map(list, zip(*lists(case), strict=True)), strict=True))
    bodies: list[dict[str, Any] | str] = [
        {"dataframe_split": split},
        {"dataframe_records": records(case)},
        {"inputs": lists(case)},
        {"instances": by_column},
    ]
    native = case.native.predict(expected(case))
    csv_body = csv_text(names, lists(case))
    for body in [*bodies, csv_body]:  # and MLflow's text/csv: a header row, then the rows
        if isinstance(body, str):
            response = server.client.post("/invocations", content=body, headers={"content-type": "text/csv"})
        else:
            response = server.client.post("/invocations", json=body)
        assert response.status_code == 200, (body if isinstance(body, str) else list(body), response.text)
        predictions = response.json()["predictions"]
        if case.bundle.metadata.is_regressor:
            assert_values(case, predictions)
        else:
            assert [str(label) for label in predictions] == [str(label) for label in native.tolist()]


def csv_text(names: list[str], rows: list[list[Any]]) -> str:
    """A frame as `DataFrame.to_csv(index=False)` writes it: a header row, missing values as empty cells."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(
        [
            ["" if value is None else repr(value) if isinstance(value, float) else value for value in row]
            for row in rows
        ]
    )
    return text.getvalue()
