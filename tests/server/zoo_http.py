"""Shared by the tests that serve zoo models: bodies built from a case's held-out rows, and the checks that
a real server's answers through `/predict`, KServe V1 and V2 equal the native model's (classes identical,
probabilities and values within convert.py's tolerances). One request per route carries every row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlkube.model.bundle import CATEGORY
from mlkube.model.convert import PROBABILITY_TOLERANCE, VALUE_TOLERANCE, native_input
from mlkube.model.runtime import ClassIndex
from tests.model.zoo import ZooCase, columns_of
from tests.support import RunningServer

PREDICT_KEYS = ["prediction", "class_name", "confidence", "version"]


def json_value(value: Any) -> Any:
    """A frame cell as a client sends it: NaN/None as null, numbers as floats, text as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)


def feature_names(case: ZooCase) -> list[str]:
    return [spec.name for spec in case.bundle.metadata.input_schema().features]


def records(case: ZooCase) -> list[dict[str, Any]]:
    """One object per row; a missing value is left out (the model imputes it)."""
    rows = case.frame[feature_names(case)].astype(object).to_dict(orient="records")
    return [{k: json_value(v) for k, v in row.items() if json_value(v) is not None} for row in rows]


def lists(case: ZooCase) -> list[list[Any]]:
    frame = case.frame[feature_names(case)].astype(object)
    return [[json_value(v) for v in row] for row in frame.itertuples(index=False)]


def expected(case: ZooCase) -> Any:
    schema = case.bundle.metadata.input_schema()
    return native_input(case.native, schema, columns_of(case.frame, case.bundle))


def assert_values(case: ZooCase, values: list[float]) -> None:
    wanted = np.asarray(case.native.predict(expected(case)), dtype=np.float64)
    tolerance = VALUE_TOLERANCE * max(1.0, float(np.max(np.abs(wanted))))
    assert len(values) == len(wanted)
    assert float(np.max(np.abs(np.asarray(values) - wanted))) <= tolerance


def assert_classes(case: ZooCase, classes: list[int]) -> None:
    wanted = ClassIndex(case.bundle.metadata.class_labels)(case.native.predict(expected(case)))
    assert classes == wanted.tolist()


def assert_probabilities(case: ZooCase, found: Any) -> None:
    wanted = case.native.predict_proba(expected(case))
    assert (
        float(np.max(np.abs(np.asarray(found).reshape(wanted.shape) - wanted)))
        <= PROBABILITY_TOLERANCE + 1e-6
    )


def check_predict_answers(case: ZooCase, answers: list[dict[str, Any]]) -> None:
    """`/predict`'s batch: a regressor's value, or the seed's four class fields, per row."""
    if case.bundle.metadata.is_regressor:
        assert all(list(answer) == ["prediction", "version"] for answer in answers)
        assert_values(case, [answer["prediction"] for answer in answers])
    else:
        assert all(list(answer) == PREDICT_KEYS for answer in answers)
        assert_classes(case, [answer["prediction"] for answer in answers])


def check_predict(case: ZooCase, server: RunningServer, rows: list[Any]) -> list[dict[str, Any]]:
    """Every row through `/predict` in one batch (`rows` named or in order); the answers returned."""
    response = server.client.post("/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["predictions"]
    check_predict_answers(case, answers)
    return answers


def check_kserve_v1(case: ZooCase, server: RunningServer) -> None:
    path = f"/v1/models/{case.bundle.metadata.name}:predict"
    response = server.client.post(path, json={"instances": records(case)})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    if case.bundle.metadata.is_regressor:
        assert_values(case, predictions)
    else:
        assert_classes(case, predictions)


def v2_inputs(case: ZooCase) -> list[dict[str, Any]]:
    """Today's single FP64 tensor for an all-number model, else one input per column (BYTES for text)."""
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


def check_v2(case: ZooCase, server: RunningServer) -> None:
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
        assert_probabilities(case, outputs["predict_proba"]["data"])
