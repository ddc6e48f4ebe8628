"""Training: the notes' model, reproducibly; metrics kept; a user's CSV; ONNX parity with scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlkube.errors import BundleError
from mlkube.model.bundle import Bundle, read_bundle
from mlkube.model.runtime import OnnxPredictor, SklearnPredictor, load_skops
from mlkube.model.train import (
    TrainingError,
    TrainParams,
    load_iris_dataset,
    parity_probe,
    read_csv_dataset,
    train_bundle,
)


def test_same_seed_gives_the_same_model(tmp_path: Path) -> None:
    dataset = load_iris_dataset()
    first = train_bundle(dataset, TrainParams(seed=7), tmp_path, name="iris")
    second = train_bundle(dataset, TrainParams(seed=7), tmp_path, name="iris")
    assert (first.metadata.version, second.metadata.version) == ("v1", "v2")
    assert first.metadata.files["model.onnx"] == second.metadata.files["model.onnx"]
    assert first.metadata.metrics == second.metadata.metrics
    assert first.metadata.data_sha256 == second.metadata.data_sha256


def test_other_seed_gives_another_model(tmp_path: Path) -> None:
    dataset = load_iris_dataset()
    first = train_bundle(dataset, TrainParams(seed=1), tmp_path, name="iris")
    second = train_bundle(dataset, TrainParams(seed=2), tmp_path, name="iris")
    assert first.metadata.files["model.onnx"] != second.metadata.files["model.onnx"]


def test_defaults_reproduce_the_notes_forest(iris_bundle: Bundle) -> None:
    params = iris_bundle.metadata.params
    assert params["estimator"] == "RandomForestClassifier"
    assert params["n_estimators"] == 10
    metrics = iris_bundle.metadata.metrics
    assert metrics["n_test"] == 30
    assert isinstance(metrics["accuracy"], float)
    assert metrics["accuracy"] > 0.85
    assert sum(map(sum, metrics["confusion_matrix"])) == 30  # type: ignore[call-overload]


def test_onnx_probabilities_match_scikit_learn_inside_and_outside_the_range(iris_bundle: Bundle) -> None:
    estimator = load_skops(iris_bundle)
    rows = parity_probe(load_iris_dataset(), seed=123, n_random=2000).astype(np.float32)
    onnx = OnnxPredictor(iris_bundle).predict(rows)
    assert np.array_equal(onnx.classes, estimator.predict(rows))
    assert np.max(np.abs(onnx.probabilities - estimator.predict_proba(rows))) <= 1e-6


def test_all_150_iris_rows_score_identically_in_both_runtimes(iris_bundle: Bundle) -> None:
    rows = load_iris_dataset().features.astype(np.float32)
    onnx = OnnxPredictor(iris_bundle).predict(rows)
    sklearn = SklearnPredictor(iris_bundle).predict(rows)
    assert np.array_equal(onnx.classes, sklearn.classes)
    assert np.max(np.abs(onnx.probabilities - sklearn.probabilities)) <= 1e-6


def test_csv_model_keeps_its_own_feature_and_class_names(tmp_path: Path) -> None:
    csv_path = write_fruit_csv(tmp_path / "fruit.csv")
    dataset = read_csv_dataset(csv_path, "fruit")
    assert dataset.feature_names == ["weight_g", "diameter_cm"]
    assert dataset.class_names == ["apple", "cherry"]
    bundle = train_bundle(dataset, TrainParams(n_estimators=5), tmp_path / "models", name="fruit")
    assert read_bundle(bundle.path).metadata.class_names == ["apple", "cherry"]


def write_fruit_csv(path: Path) -> Path:
    lines = ["weight_g,fruit,diameter_cm"]
    for i in range(20):
        lines.append(f"{150 + i},apple,{7 + i % 3}")
        lines.append(f"{8 + i % 4},cherry,{2 + i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("a,b\n1,x\n", "missing", "no column 'missing'"),
        ("a,b\n1,x\n2,x\n", "b", "needs at least two classes"),
        ("a,b\nheavy,x\n2,y\n", "b", "feature values must be numbers"),
        ("a,b\n1,x,3\n", "b", "3 values, the header has 2"),
        ("a,b\n", "b", "needs a header row and at least one data row"),
        ("a,b\nnan,x\n1,y\n", "b", "must be finite"),
    ],
)
def test_bad_csv_is_refused_with_the_line(tmp_path: Path, content: str, target: str, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(TrainingError, match=message):
        read_csv_dataset(path, target)


def test_invalid_model_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="invalid model name"):
        train_bundle(load_iris_dataset(), TrainParams(), tmp_path, name="../escape")


def test_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    train_bundle(load_iris_dataset(), TrainParams(n_estimators=2), tmp_path, version="v1")
    with pytest.raises(BundleError, match="already exists"):
        train_bundle(load_iris_dataset(), TrainParams(n_estimators=2), tmp_path, version="v1")
