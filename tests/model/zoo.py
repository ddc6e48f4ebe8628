"""Shared by the model zoo tests: data made from scikit-learn's bundled sets, every zoo case's builder
(train or import -> bundle, with its native model and held-out rows), and the parity assertion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io

from mlkube.model.bundle import Bundle, read_bundle
from mlkube.model.convert import PROBABILITY_TOLERANCE, VALUE_TOLERANCE, native_input
from mlkube.model.datasets import read_table
from mlkube.model.feeds import onnx_feeds
from mlkube.model.importing import ImportOptions, import_bundle
from mlkube.model.runtime import ClassIndex, load_predictor, load_skops
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams

SEED = 0


def sklearn_frame(name: str) -> tuple[pd.DataFrame, pd.Series]:
    """One of scikit-learn's bundled data sets (nothing is downloaded) as a frame and its target."""
    from sklearn import datasets

    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }[name]
    data = loader(as_frame=True)
    frame = data.data.copy()
    frame.columns = [str(column).replace(" ", "_").replace("(", "").replace(")", "") for column in frame]
    return frame, data.target


def write_csv(folder: Path, name: str, target: str = "target") -> Path:
    frame, labels = sklearn_frame(name)
    frame[target] = labels.to_numpy()
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def mixed_frame(rows: int = 400) -> pd.DataFrame:
    """Numbers and text with missing cells in both; `kind` (a class) and `price` (a value) to predict."""
    rng = np.random.default_rng(SEED)
    size = rng.normal(50, 15, rows)
    age = rng.uniform(0, 30, rows)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    city = rng.choice(["Lyon", "Oslo", "Quito", "Perth"], rows).astype(object)
    price = 3 * size - 2 * age + np.where(colour == "red", 40, 0) + np.where(city == "Oslo", 25, 0)
    price = price + rng.normal(0, 5, rows)
    kind = np.where(price > np.median(price), "premium", "basic")
    frame = pd.DataFrame({"size": size, "age": age, "colour": colour, "city": city})
    frame.loc[rng.random(rows) < 0.08, "size"] = np.nan
    frame.loc[rng.random(rows) < 0.08, "colour"] = None
    frame["kind"] = kind
    frame["price"] = price.round(2)
    return frame


def write_mixed_csv(folder: Path, target: str) -> Path:
    path = folder / f"mixed-{target}.csv"
    other = "price" if target == "kind" else "kind"
    mixed_frame().drop(columns=[other]).to_csv(path, index=False)
    return path


def columns_of(frame: pd.DataFrame, bundle: Bundle) -> dict[str, Any]:
    """A frame's feature columns as serving passes them: numbers as floats (NaN), text as str ("")."""
    columns: dict[str, Any] = {}
    for spec in bundle.metadata.input_schema().features:
        column = frame[spec.name]
        if spec.kind == "category":
            columns[spec.name] = column.astype(object).where(column.notna(), "").map(str).to_numpy()
        else:
            columns[spec.name] = column.to_numpy(dtype=np.float64)
    return columns


def assert_onnx_equals_native(bundle: Bundle, native: Any, frame: pd.DataFrame) -> float:
    """Through runtime.py's ONNX predictor: classes identical, probabilities / values within tolerance."""
    schema = bundle.metadata.input_schema()
    columns = columns_of(frame, bundle)
    scores = load_predictor(bundle, "onnx", any_schema=True).predict_feeds(onnx_feeds(schema, columns))
    rows = native_input(native, schema, columns)
    if bundle.metadata.is_regressor:
        expected = np.asarray(native.predict(rows), dtype=np.float64)
        assert scores.values is not None
        difference = float(np.max(np.abs(scores.values - expected)))
        assert difference <= VALUE_TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
        return difference
    expected_classes = ClassIndex(bundle.metadata.class_labels)(native.predict(rows))
    assert np.array_equal(scores.classes, expected_classes)
    difference = float(np.max(np.abs(scores.probabilities - native.predict_proba(rows))))
    assert difference <= PROBABILITY_TOLERANCE
    return difference


@dataclass
class ZooCase:
    """A bundle, the native model it was made from, and the held-out rows (feature columns) to compare on."""

    bundle: Bundle
    native: Any
    frame: pd.DataFrame


SMALL = {"n_jobs": 1}
TRAINED: list[tuple[str, str, str, dict[str, object]]] = [
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
MIXED_TRAINED = [
    # (estimator, task): one Pipeline graph over the mixed table, one ONNX input per column
    (estimator, task)
    for estimator in ["hist_gradient_boosting", "random_forest"]
    for task in ["classification", "regression"]
]
IMPORTED = ["svc", "knn", "mlp", "gaussian_nb"]
BOOSTING = ["xgboost", "lightgbm"]


def mixed_params(estimator: str) -> dict[str, object]:
    return {"max_iter": 15} if estimator.startswith("hist") else {}


def load_native(bundle: Bundle) -> Any:
    """The bundle's own skops estimator, trusting the boosting libraries' types for tests only."""
    if str(bundle.metadata.params["estimator"]).startswith(("XGB", "LGBM")):
        path = bundle.file("model.skops")
        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    return load_skops(bundle)


def trained_case(tmp: Path, estimator: str, task: str, data: str, params: dict[str, object]) -> ZooCase:
    """`mlkube train --estimator` on one of the bundled sets, or on the mixed table ("mixed")."""
    if data == "mixed":
        target = "kind" if task == "classification" else "price"
        table = read_table(write_mixed_csv(tmp, target), target, task)
        frame = mixed_frame().drop(columns=["kind", "price"])
    else:
        table = read_table(write_csv(tmp, data), "target", task)
        frame = sklearn_frame(data)[0]
    made = train_table_bundle(
        table, TrainParams(estimator=estimator, extra=params, seed=SEED), tmp / "models", name=data
    )
    bundle = read_bundle(made.path)
    return ZooCase(bundle, load_native(bundle), frame)


def imported_estimator(label: str) -> tuple[str, Any]:
    """The data set and the unfitted estimator of an imported zoo case."""
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {
        "svc": ("iris", SVC(probability=True, random_state=SEED)),
        "knn": ("wine", KNeighborsClassifier(n_neighbors=5)),
        "mlp": (
            "iris",
            make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=2000, random_state=SEED)),
        ),
        "gaussian_nb": ("wine", GaussianNB()),
    }[label]


def imported_case(tmp: Path, label: str) -> ZooCase:
    """A user's own estimator fitted on 70% of a set, written as skops, imported; the other 30% held out."""
    from sklearn.model_selection import train_test_split

    data, estimator = imported_estimator(label)
    frame, target = sklearn_frame(data)
    x_train, x_test, y_train, _ = train_test_split(frame, target, test_size=0.3, random_state=SEED)
    estimator.fit(x_train.to_numpy(), y_train.to_numpy())
    path = tmp / f"{label}.skops"
    skops.io.dump(estimator, path)
    result = import_bundle(path, ImportOptions(features=tuple(frame.columns)), tmp / "models", label)
    assert result.runtime == "onnx"
    return ZooCase(read_bundle(result.bundle.path), estimator, x_test)


def imported_pipeline_case(tmp: Path) -> ZooCase:
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
    path = tmp / "pipeline.skops"
    skops.io.dump(model, path)
    sample = tmp / "sample.csv"
    frame.drop(columns=["price"]).iloc[:300].to_csv(sample, index=False)
    result = import_bundle(path, ImportOptions(sample=sample, target="kind"), tmp / "models", "mixed")
    return ZooCase(read_bundle(result.bundle.path), model, features.iloc[300:])


def boosting_estimator(library: str) -> Any:
    if library == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1)


def write_boosting_skops(tmp: Path, library: str) -> tuple[Path, Any]:
    """A boosting classifier fitted on breast_cancer's even rows, written as skops."""
    frame, target = sklearn_frame("breast_cancer")
    estimator = boosting_estimator(library)
    estimator.fit(frame.iloc[::2], target.iloc[::2])
    path = tmp / f"{library}.skops"
    skops.io.dump(estimator, path)
    return path, estimator


def imported_boosting_case(tmp: Path, library: str) -> ZooCase:
    """Imported with its library's types trusted by name; breast_cancer's odd rows held out."""
    path, estimator = write_boosting_skops(tmp, library)
    trust = tuple(skops.io.get_untrusted_types(file=path))
    result = import_bundle(path, ImportOptions(trust=trust), tmp / "models", library)
    frame = pd.DataFrame(sklearn_frame("breast_cancer")[0].iloc[1::2])
    return ZooCase(read_bundle(result.bundle.path), estimator, frame)


def zoo_builders() -> dict[str, Callable[[Path], ZooCase]]:
    """Every zoo case by id: the trained sets, the mixed Pipelines, the imported files."""
    builders: dict[str, Callable[[Path], ZooCase]] = {}
    for estimator, task, data, params in TRAINED:
        builders[f"{estimator}-{task}-{data}"] = partial(trained_case, **_kw(estimator, task, data, params))
    for estimator, task in MIXED_TRAINED:
        kw = _kw(estimator, task, "mixed", mixed_params(estimator))
        builders[f"{estimator}-{task}-mixed"] = partial(trained_case, **kw)
    for label in IMPORTED:
        builders[f"imported-{label}"] = partial(imported_case, label=label)
    builders["imported-column-transformer-pipeline"] = imported_pipeline_case
    for library in BOOSTING:
        builders[f"imported-{library}"] = partial(imported_boosting_case, library=library)
    return builders


def _kw(estimator: str, task: str, data: str, params: dict[str, object]) -> dict[str, Any]:
    return {"estimator": estimator, "task": task, "data": data, "params": params}
