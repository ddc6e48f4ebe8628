"""Named features and text columns over a real server: what each is answered, and every way to get it wrong.

The notes' Iris forest takes its four features by name too (the same answer, byte for byte, as the list);
a Pipeline over a table with categories and missing values takes text and nulls. Unknown names, missing
features, wrong types, unknown categories and enormous objects get a 4xx naming the problem, on every
route that takes rows: `/predict` (422), KServe V1 (422), V2 and `/invocations` (400, as their protocols
answer errors).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from mlkube.model.bundle import Bundle, read_bundle
from mlkube.model.datasets import read_table
from mlkube.model.importing import ImportOptions, import_bundle
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.zoo import write_mixed_csv
from tests.support import NOTES_ROW, RunningServer, start_server

IRIS_NAMES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
NOTES_BY_NAME = dict(zip(IRIS_NAMES, NOTES_ROW, strict=True))
ROW = {"size": 50.0, "age": 3.0, "colour": "red", "city": "Oslo"}


@pytest.fixture(scope="module")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    folder = tmp_path_factory.mktemp("mixed")
    table = read_table(write_mixed_csv(folder, "kind"), "kind", "classification")
    params = TrainParams(estimator="hist_gradient_boosting", extra={"max_iter": 10})
    return read_bundle(train_table_bundle(table, params, folder / "models", name="shop").path)


@pytest.fixture(scope="module")
def mixed(mixed_bundle: Bundle) -> Iterator[RunningServer]:
    with start_server({"MODEL_BUNDLE": str(mixed_bundle.path), "WORKERS": "1"}) as running:
        yield running


def test_iris_by_name_answers_byte_for_byte_as_the_list(server: RunningServer) -> None:
    by_list = server.client.post("/predict", json={"features": NOTES_ROW})
    by_name = server.client.post("/predict", json={"features": NOTES_BY_NAME})
    assert by_name.status_code == 200
    assert by_name.content == by_list.content
    batch = server.client.post("/predict", json={"instances": [NOTES_BY_NAME, NOTES_ROW]}).json()
    assert batch["predictions"][0] == batch["predictions"][1] == by_list.json()


def test_the_schema_says_which_features_may_be_missing(mixed_bundle: Bundle) -> None:
    specs = {spec.name: spec for spec in mixed_bundle.metadata.input_schema().features}
    assert specs["colour"].kind == "category"
    assert specs["colour"].categories == ["blue", "green", "red"]
    assert specs["size"].missing
    assert specs["colour"].missing


def test_a_row_with_text_by_name_in_order_and_with_missing_values(mixed: RunningServer) -> None:
    by_name = mixed.client.post("/predict", json={"features": ROW})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["class_name"] in ("basic", "premium")
    in_order = mixed.client.post("/predict", json={"features": list(ROW.values())})
    assert in_order.content == by_name.content
    missing = {"age": 3.0, "city": "Oslo", "size": None}  # colour absent, size null: both imputed
    assert mixed.client.post("/predict", json={"features": missing}).status_code == 200
    assert mixed.client.post("/predict", json={"features": [None, 3.0, "", "Oslo"]}).status_code == 200


BAD_ROWS = [
    pytest.param(
        {**ROW, "colour": "purple"}, "feature 'colour': unknown category 'purple'", id="unknown-category"
    ),
    pytest.param({**ROW, "weight": 3}, "unknown feature 'weight'", id="unknown-name"),
    pytest.param({**ROW, "size": "big"}, "feature 'size' takes a number, got text", id="text-for-number"),
    pytest.param({**ROW, "colour": 3}, "feature 'colour' takes text", id="number-for-category"),
    pytest.param({**ROW, "age": True}, "got bool", id="boolean"),
    pytest.param({**ROW, "age": [1]}, "got array", id="list"),
    pytest.param({**ROW, "age": 1e39}, "feature 'age': values must be finite", id="beyond-float32"),
    pytest.param(["red", 3.0, "red", "Oslo"], "feature 'size' takes a number", id="text-in-place-of-number"),
    pytest.param([50.0, 3.0, "red"], "features has 3 values, expected 4", id="short-list"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_named_rows_get_422_naming_the_problem(mixed: RunningServer, row: Any, message: str) -> None:
    response = mixed.client.post("/predict", json={"features": row})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
    v1 = mixed.client.post("/v1/models/shop:predict", json={"instances": [row]})
    assert v1.status_code == 422
    invocations = mixed.client.post("/invocations", json={"inputs": [row]})
    assert invocations.status_code == 400
    assert list(invocations.json()) == ["error"]


def test_iris_by_name_refuses_unknown_and_missing_names(server: RunningServer) -> None:
    unknown = server.client.post("/predict", json={"features": {**NOTES_BY_NAME, "petal_colour": 1.0}})
    assert unknown.status_code == 422
    assert "unknown feature 'petal_colour'" in unknown.json()["error"]
    missing = {k: v for k, v in NOTES_BY_NAME.items() if k != "petal_width_cm"}
    answer = server.client.post("/predict", json={"instances": [NOTES_BY_NAME, missing]})
    assert answer.status_code == 422
    assert "missing feature 'petal_width_cm' in row 1" in answer.json()["error"]
    text = server.client.post("/predict", json={"features": {**NOTES_BY_NAME, "sepal_width_cm": "3.5"}})
    assert text.status_code == 422
    assert "feature 'sepal_width_cm' takes a number, got text" in text.json()["error"]
    null = server.client.post("/predict", json={"features": {**NOTES_BY_NAME, "sepal_width_cm": None}})
    assert null.status_code == 422
    assert "missing feature 'sepal_width_cm'" in null.json()["error"]


def test_a_huge_object_is_refused_quickly_with_a_short_message(mixed: RunningServer) -> None:
    huge = {f"k{index}": 1.0 for index in range(60_000)}
    megabyte_key = {"k" * 900_000: 1.0}
    for row in (huge, megabyte_key, {**ROW, **huge}):
        started = time.monotonic()
        response = mixed.client.post("/predict", json={"features": row})
        assert time.monotonic() - started < 5
        assert response.status_code == 422
        assert len(response.content) < 1000
        assert "unknown feature" in response.json()["error"]
    assert mixed.client.get("/health").status_code == 200


def test_v2_takes_one_input_per_column_and_names_what_is_wrong(mixed: RunningServer) -> None:
    def column(name: str, value: Any, datatype: str) -> dict[str, Any]:
        return {"name": name, "shape": [1, 1], "datatype": datatype, "data": [value]}

    good = [
        column("size", 50.0, "FP32"),
        column("age", 3, "INT64"),
        column("colour", "red", "BYTES"),
        column("city", "Oslo", "BYTES"),
    ]
    metadata = mixed.client.get("/v2/models/shop").json()
    assert [(tensor["name"], tensor["datatype"]) for tensor in metadata["inputs"]] == [
        ("size", "FP32"),
        ("age", "FP32"),
        ("colour", "BYTES"),
        ("city", "BYTES"),
    ]
    answer = mixed.client.post("/v2/models/shop/infer", json={"inputs": good})
    assert answer.status_code == 200, answer.text
    expected = mixed.client.post("/predict", json={"features": ROW}).json()
    assert {o["name"]: o["data"] for o in answer.json()["outputs"]}["label"] == [expected["class_name"]]
    bad = {
        "unknown-category": ([*good[:2], column("colour", "purple", "BYTES"), good[3]], "unknown category"),
        "unknown": ([*good, column("weight", 1.0, "FP32")], "unknown feature 'weight'"),
        "twice": ([*good, good[0]], "input 'size' is sent twice"),
        "text-as-number": ([column("size", "big", "BYTES"), *good[1:]], "feature 'size' takes a number"),
        "shape": ([good[0] | {"shape": [1, 2]}, *good[1:]], "expected [rows] or [rows, 1]"),
        "rows": ([good[0] | {"shape": [2, 1]}, *good[1:]], "'data' has 1 values, shape [2, 1] needs 2"),
    }
    imputed = mixed.client.post("/v2/models/shop/infer", json={"inputs": good[:3]})  # city: missing
    assert imputed.status_code == 200, imputed.text
    for name, (inputs, message) in bad.items():
        response = mixed.client.post("/v2/models/shop/infer", json={"inputs": inputs})
        assert response.status_code == 400, name
        assert message in response.json()["error"], (name, response.text)


def test_invocations_follows_mlflows_rules(mixed: RunningServer) -> None:
    both = mixed.client.post("/invocations", json={"inputs": [ROW], "instances": [ROW]})
    assert both.status_code == 400
    assert "exactly one of the input fields" in both.json()["error"]
    none = mixed.client.post("/invocations", json={"data": [ROW]})
    assert none.status_code == 400
    split = {"columns": ["size", "age"], "data": [[1.0, 2.0, 3.0]]}
    ragged = mixed.client.post("/invocations", json={"dataframe_split": split})
    assert ragged.status_code == 400
    assert "dataframe_split: row 0 has 3 values for 2 columns" in ragged.json()["error"]
    labels = mixed.client.post("/invocations", json={"dataframe_records": [ROW]}).json()
    assert labels["predictions"][0] in (0, 1)  # what this model's own predict() returns, as MLflow answers
    assert mixed.client.get("/ping").status_code == 200


CSV_TYPE = {"content-type": "text/csv"}


def test_invocations_takes_mlflows_csv_bodies_by_header_name(mixed: RunningServer) -> None:
    """`mlflow models serve`'s text/csv: a header row, then rows; any column order, empty cells missing."""
    body = b"city,colour,age,size\nOslo,red,3,50\n\nLyon,,3,\n"
    answer = mixed.client.post("/invocations", content=body, headers=CSV_TYPE)
    assert answer.status_code == 200, answer.text
    records = [ROW, {"size": None, "age": 3.0, "colour": None, "city": "Lyon"}]
    assert answer.json() == mixed.client.post("/invocations", json={"dataframe_records": records}).json()
    charset = {"content-type": "text/csv; charset=utf-8"}
    assert mixed.client.post("/invocations", content=body, headers=charset).json() == answer.json()
    bad = {
        "unknown-column": (b"size,age,colour,city,weight\n50,3,red,Oslo,1\n", "unknown feature 'weight'"),
        "ragged": (b"size,age,colour,city\n50,3,red,Oslo\n50,3\n", "row 1 has 2 values for 4 columns"),
        "non-numeric": (
            b"size,age,colour,city\n50,old,red,Oslo\n",
            "feature 'age' takes a number, got 'old'",
        ),
        "unknown-category": (b"size,age,colour,city\n50,3,purple,Oslo\n", "unknown category 'purple'"),
        "infinite": (b"size,age,colour,city\ninf,3,red,Oslo\n", "values must be finite"),
        "twice": (b"size,size,age,colour,city\n1,50,3,red,Oslo\n", "a column is named twice"),
        "empty": (b"", "no header row"),
        "header-only": (b"size,age,colour,city\n", "no rows to score"),
        "not-utf8": (b"size,age,colour,city\n50,3,r\xe9d,Oslo\n", "not UTF-8"),
        "too-many-rows": (b"size,age,colour,city\n" + b"50,3,red,Oslo\n" * 1001, "MAX_BATCH_SIZE=1000"),
    }
    for name, (content, message) in bad.items():
        response = mixed.client.post("/invocations", content=content, headers=CSV_TYPE)
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {"error": response.json()["error"]}
        assert response.json()["error"].startswith("text/csv: "), name
        assert message in response.json()["error"], (name, response.text)
    other = mixed.client.post("/predict", content=b"size,age\n1,2\n", headers=CSV_TYPE)
    assert other.status_code == 415  # text/csv is MLflow's: only /invocations takes it


def test_class_names_at_serve_time_rename_an_imported_joblib_model(tmp_path: Path) -> None:
    """The notes' train_model.py saves classes 0, 1, 2; the ConfigMap's CLASS_NAMES names them."""
    iris = load_iris()
    model = RandomForestClassifier(n_estimators=10, random_state=42).fit(iris.data, iris.target)
    joblib.dump(model, tmp_path / "model.joblib")
    import_bundle(tmp_path / "model.joblib", ImportOptions(trust_pickle=True), tmp_path / "models", "iris")
    env = {
        "MODEL_DIR": str(tmp_path / "models"),
        "WORKERS": "1",
        "CLASS_NAMES": "setosa,versicolor,virginica",
    }
    with start_server(env) as running:
        answer = running.client.post("/predict", json={"features": NOTES_ROW}).json()
        assert answer == {"prediction": 0, "class_name": "setosa", "confidence": 1.0, "version": "v1"}
        proba = model.predict_proba(iris.data)
        rows = running.client.post("/predict", json={"instances": iris.data.tolist()}).json()["predictions"]
        assert [row["prediction"] for row in rows] == model.predict(iris.data).tolist()
        assert [row["confidence"] for row in rows] == [round(float(p.max()), 6) for p in proba]
        assert {row["class_name"] for row in rows} == {"setosa", "versicolor", "virginica"}


def test_a_model_of_numbers_that_imputes_takes_null_in_its_lists(tmp_path: Path) -> None:
    """Numbers only, with empty cells: one float tensor (the list path), NaN where a value is missing."""
    from tests.model.zoo import mixed_frame

    frame = mixed_frame()[["size", "age", "kind"]]
    frame.to_csv(tmp_path / "sizes.csv", index=False)
    table = read_table(tmp_path / "sizes.csv", "kind", "classification")
    bundle = train_table_bundle(
        table, TrainParams(extra={"n_estimators": 5}), tmp_path / "models", name="sizes"
    )
    schema = read_bundle(bundle.path).metadata.input_schema()
    assert schema.layout == "tensor"
    assert [spec.missing for spec in schema.features] == [True, True]
    with start_server({"MODEL_BUNDLE": str(bundle.path), "WORKERS": "1"}) as running:
        listed = running.client.post("/predict", json={"features": [None, 3.0]})
        assert listed.status_code == 200, listed.text
        named = running.client.post("/predict", json={"features": {"age": 3.0}})
        assert named.content == listed.content
        batch = running.client.post("/predict", json={"instances": [[50.0, 3.0], [None, 3.0]]}).json()
        assert batch["predictions"][1] == listed.json()
        text = running.client.post("/predict", json={"features": ["50", 3.0]})
        assert text.status_code == 422
        assert "Expected float, got str" in text.json()["error"]  # the list path's own message
