"""Training: the notes' model, reproducibly; metrics kept; a user's CSV; ONNX parity with scikit-learn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube.errors import BundleError
from mlkube.model import train
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
from tests.support import write_fruit_csv


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


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("a,b\n1,x\n", "missing", "no column 'missing'"),
        ("a,b\n1,x\n2,x\n", "b", "needs at least two classes"),
        ("a,b\n", "b", "needs a header row and at least one data row"),
    ],
)
def test_bad_csv_is_refused_with_the_reason(tmp_path: Path, content: str, target: str, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(TrainingError, match=message):
        read_csv_dataset(path, target)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("a,b\n1,x\nheavy,y\n", 3, "feature values must be numbers"),
        ("a,b\n1,x\n2,y\n3,x,3\n", 4, "3 values, the header has 2"),
        ("a,b\nnan,x\n1,y\n", 2, "feature values must be finite"),
    ],
)
def test_bad_csv_row_is_refused_with_its_line_number(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(TrainingError) as refused:
        read_csv_dataset(path, "b")
    assert str(refused.value).startswith(f"{path}:{line}: {message}")


def test_invalid_model_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="invalid model name"):
        train_bundle(load_iris_dataset(), TrainParams(), tmp_path, name="../escape")


def test_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    train_bundle(load_iris_dataset(), TrainParams(n_estimators=2), tmp_path, version="v1")
    with pytest.raises(BundleError, match="already exists"):
        train_bundle(load_iris_dataset(), TrainParams(n_estimators=2), tmp_path, version="v1")


# --- parity: training refuses a bundle whose ONNX model answers differently ---------------------------


def with_probabilities_scaled(onnx_bytes: bytes, factor: float) -> bytes:
    """The same ONNX model with its `probabilities` output multiplied by `factor` (classes unchanged)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    for node in model.graph.node:
        node.output[:] = ["unscaled" if name == "probabilities" else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), "factor"))
    model.graph.node.append(helper.make_node("Mul", ["unscaled", "factor"], ["probabilities"]))
    return bytes(model.SerializeToString())


def test_training_refuses_onnx_probabilities_that_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    convert = train.to_onnx_bytes
    monkeypatch.setattr(
        train, "to_onnx_bytes", lambda estimator, n: with_probabilities_scaled(convert(estimator, n), 0.999)
    )
    with pytest.raises(
        TrainingError, match=r"^ONNX probabilities differ from the native model's by 1\.00e-03 \(> 1e-06\)$"
    ):
        train_bundle(load_iris_dataset(), TrainParams(n_estimators=3), tmp_path, name="iris")
    assert list(tmp_path.iterdir()) == []


def test_training_refuses_an_onnx_model_that_predicts_other_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    dataset = load_iris_dataset()
    stump = RandomForestClassifier(n_estimators=1, max_depth=1, random_state=0)
    stump.fit(dataset.features, dataset.targets)  # at most two of the three classes
    other_model = train.to_onnx_bytes(stump, dataset.features.shape[1])

    def convert_another_model(estimator: Any, n_features: int) -> bytes:
        return other_model

    monkeypatch.setattr(train, "to_onnx_bytes", convert_another_model)
    params = TrainParams(n_estimators=3)
    probed = len(parity_probe(dataset, params.seed))  # every training row and the random ones
    refusal = (
        rf"^ONNX Runtime predicts other classes than the native model on \d+ of {probed} rows \(first: row"
    )
    with pytest.raises(TrainingError, match=refusal):
        train_bundle(dataset, params, tmp_path, name="iris")
    assert list(tmp_path.iterdir()) == []
