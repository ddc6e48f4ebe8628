"""The model zoo: every supported family, trained or imported, bundled, then scored by ONNX Runtime.

Each case goes train (`--estimator`) or import (a skops file the test writes) -> bundle -> the bundle's
ONNX predictor (runtime.py, as serving loads it), and its answers equal the native model's on every
held-out row: classes identical, probabilities and values within the tolerances of convert.py.
Small estimators keep the whole zoo to well under a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io

from mlkube.model.bundle import COLUMNS_LAYOUT, TENSOR_LAYOUT, read_bundle
from mlkube.model.datasets import read_table
from mlkube.model.importing import ImportOptions, import_bundle
from mlkube.model.runtime import load_skops
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.zoo import (
    SEED,
    assert_onnx_equals_native,
    mixed_frame,
    sklearn_frame,
    write_csv,
    write_mixed_csv,
)

SMALL = {"n_jobs": 1}
TRAINED = [
    # (estimator, task, data set, --param)
    ("random_forest", "classification", "wine", {"n_estimators": 10}),
    ("random_forest", "regression", "diabetes", {"n_estimators": 10}),
    ("extra_trees", "classification", "breast_cancer", {"n_estimators": 10}),
    ("extra_trees", "regression", "diabetes", {"n_estimators": 10}),
    ("gradient_boosting", "classification", "iris", {"n_estimators": 20}),
    ("gradient_boosting", "regression", "diabetes", {"n_estimators": 20}),
    ("hist_gradient_boosting", "classification", "wine", {"max_iter": 15}),
    ("hist_gradient_boosting", "regression", "diabetes", {"max_iter": 15}),
    ("logistic_regression", "classification", "iris", {}),
    ("linear_regression", "regression", "diabetes", {}),
    ("ridge", "regression", "diabetes", {"alpha": 0.5}),
    ("xgboost", "classification", "wine", {"n_estimators": 15, "max_depth": 3, **SMALL}),
    ("xgboost", "regression", "diabetes", {"n_estimators": 15, "max_depth": 3, **SMALL}),
    ("lightgbm", "classification", "iris", {"n_estimators": 15, **SMALL}),
    ("lightgbm", "regression", "diabetes", {"n_estimators": 15, **SMALL}),
]


@pytest.mark.parametrize(
    ("estimator", "task", "data", "params"), TRAINED, ids=[f"{e}-{t}-{d}" for e, t, d, _ in TRAINED]
)
def test_trained_bundle_answers_like_the_native_model(
    tmp_path: Path, estimator: str, task: str, data: str, params: dict[str, object]
) -> None:
    table = read_table(write_csv(tmp_path, data), "target", task)
    bundle = train_table_bundle(
        table, TrainParams(estimator=estimator, extra=params, seed=SEED), tmp_path / "models", name=data
    )
    bundle = read_bundle(bundle.path)
    assert bundle.metadata.task == task
    assert bundle.metadata.input_schema().layout == TENSOR_LAYOUT
    frame, _ = sklearn_frame(data)
    assert_onnx_equals_native(bundle, load_native(bundle), frame)


@pytest.mark.parametrize(("target", "task"), [("kind", "classification"), ("price", "regression")])
@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest"])
def test_mixed_csv_trains_one_pipeline_graph_with_one_input_per_column(
    tmp_path: Path, target: str, task: str, estimator: str
) -> None:
    table = read_table(write_mixed_csv(tmp_path, target), target, task)
    params = TrainParams(estimator=estimator, extra={"max_iter": 15} if estimator.startswith("hist") else {})
    bundle = read_bundle(train_table_bundle(table, params, tmp_path / "models", name="mixed").path)
    schema = bundle.metadata.input_schema()
    assert schema.layout == COLUMNS_LAYOUT
    kinds = {spec.name: (spec.kind, spec.categories, spec.missing) for spec in schema.features}
    assert kinds["colour"] == ("category", ["blue", "green", "red"], True)
    assert kinds["size"][0] == "number"
    assert [spec.onnx_input for spec in schema.features] == ["size", "age", "colour", "city"]
    assert_onnx_equals_native(bundle, load_native(bundle), mixed_frame())


def load_native(bundle: Any) -> Any:
    """The bundle's own skops estimator, trusting the boosting libraries' types for this test only."""
    if bundle.metadata.params["estimator"].startswith(("XGB", "LGBM")):
        path = bundle.file("model.skops")
        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    return load_skops(bundle)


def imported_cases() -> list[tuple[str, str, Any]]:
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [
        ("svc", "iris", SVC(probability=True, random_state=SEED)),
        ("knn", "wine", KNeighborsClassifier(n_neighbors=5)),
        (
            "mlp",
            "iris",
            make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=2000, random_state=SEED)),
        ),
        ("gaussian_nb", "wine", GaussianNB()),
    ]


# scikit-learn 1.9 deprecates SVC(probability=True) (the issue names it) and its probA_ that skl2onnx reads
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize(
    ("label", "data", "estimator"), imported_cases(), ids=[c[0] for c in imported_cases()]
)
def test_imported_skops_model_answers_like_itself(
    tmp_path: Path, label: str, data: str, estimator: Any
) -> None:
    from sklearn.model_selection import train_test_split

    frame, target = sklearn_frame(data)
    x_train, x_test, y_train, _ = train_test_split(frame, target, test_size=0.3, random_state=SEED)
    estimator.fit(x_train.to_numpy(), y_train.to_numpy())
    path = tmp_path / f"{label}.skops"
    skops.io.dump(estimator, path)
    options = ImportOptions(features=tuple(frame.columns))
    result = import_bundle(path, options, tmp_path / "models", label)
    assert result.runtime == "onnx"
    assert result.bundle.metadata.class_labels == sorted(set(target.tolist()))
    assert_onnx_equals_native(read_bundle(result.bundle.path), estimator, x_test)


def test_imported_column_transformer_pipeline_over_mixed_data(tmp_path: Path) -> None:
    """A user's own Pipeline(ColumnTransformer) fitted on a frame with text and missing cells."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = mixed_frame()
    features = frame.drop(columns=["kind", "price"])
    features["colour"] = features["colour"].fillna("")
    prepare = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), ["size", "age"]),
            ("text", OneHotEncoder(handle_unknown="ignore"), ["colour", "city"]),
        ]
    )
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=500))])
    model.fit(features.iloc[:300], frame["kind"].iloc[:300])
    path = tmp_path / "pipeline.skops"
    skops.io.dump(model, path)
    sample = tmp_path / "sample.csv"
    frame.drop(columns=["price"]).iloc[:300].to_csv(sample, index=False)
    options = ImportOptions(sample=sample, target="kind")
    result = import_bundle(path, options, tmp_path / "models", "mixed")
    metadata = read_bundle(result.bundle.path).metadata
    assert metadata.class_labels == ["basic", "premium"]
    schema = metadata.input_schema()
    assert schema.layout == COLUMNS_LAYOUT
    assert {spec.name: spec.kind for spec in schema.features} == {
        "size": "number",
        "age": "number",
        "colour": "category",
        "city": "category",
    }
    assert assert_onnx_equals_native(result.bundle, model, features.iloc[300:]) >= 0


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_imported_boosting_models_need_their_types_trusted_by_name(tmp_path: Path, library: str) -> None:
    from mlkube.model.importing import ImportRefused

    frame, target = sklearn_frame("breast_cancer")
    if library == "xgboost":
        from xgboost import XGBClassifier

        estimator: Any = XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)
    else:
        from lightgbm import LGBMClassifier

        estimator = LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1)
    estimator.fit(frame.iloc[::2], target.iloc[::2])
    path = tmp_path / f"{library}.skops"
    skops.io.dump(estimator, path)
    with pytest.raises(ImportRefused, match=rf"holds types mlkube does not trust: .*{library}") as refused:
        import_bundle(path, ImportOptions(), tmp_path / "models", library)
    assert "--trust " in str(refused.value)
    trust = tuple(skops.io.get_untrusted_types(file=path))
    result = import_bundle(path, ImportOptions(trust=trust), tmp_path / "models", library)
    assert result.bundle.metadata.feature_names == list(frame.columns)
    assert_onnx_equals_native(result.bundle, estimator, pd.DataFrame(frame.iloc[1::2]))
