"""Shared by the model zoo tests: data made from scikit-learn's bundled sets, and the parity assertion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlkube.model.bundle import Bundle
from mlkube.model.convert import PROBABILITY_TOLERANCE, VALUE_TOLERANCE, native_input
from mlkube.model.feeds import onnx_feeds
from mlkube.model.runtime import ClassIndex, load_predictor

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
