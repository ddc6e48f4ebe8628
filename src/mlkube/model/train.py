"""Training: pure fit/evaluate/convert functions; reading data and writing the bundle stay at the edges.

Needs the training extras (scikit-learn, skl2onnx, skops). Serving never imports this module.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from mlkube.errors import MlkubeError
from mlkube.model.bundle import (
    ONNX_FILE,
    SKOPS_FILE,
    Bundle,
    FeatureStats,
    Metadata,
    next_version,
    utc_now,
    validate_name,
    write_bundle,
)
from mlkube.model.report import class_samples, report_files

PARITY_TOLERANCE = 1e-6
_LIBRARIES = ("mlkube", "scikit-learn", "skl2onnx", "skops", "onnx", "onnxruntime", "numpy")


class TrainingError(MlkubeError):
    """The data or the parameters cannot give a servable model."""


@dataclass(frozen=True)
class Dataset:
    """Features as float64, targets as class indexes 0..k-1 into `class_names`."""

    features: NDArray[np.float64]
    targets: NDArray[np.int64]
    feature_names: list[str]
    class_names: list[str]
    description: str

    @property
    def fingerprint(self) -> str:
        """sha256 of the values and names, independent of where they were read from."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.features, dtype="<f8").tobytes())
        digest.update(np.ascontiguousarray(self.targets, dtype="<i8").tobytes())
        digest.update(msgspec.json.encode([self.feature_names, self.class_names]))
        return digest.hexdigest()


@dataclass(frozen=True)
class TrainParams:
    n_estimators: int = 10
    max_depth: int | None = None
    seed: int = 42
    test_size: float = 0.2


@dataclass(frozen=True)
class TrainedModel:
    estimator: Any
    metrics: dict[str, object]
    params: TrainParams
    holdout: NDArray[np.float64] = field(repr=False)


def load_iris_dataset() -> Dataset:
    """The notes' data set; scikit-learn ships it, nothing is downloaded."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    return Dataset(
        features=np.asarray(iris.data, dtype=np.float64),
        targets=np.asarray(iris.target, dtype=np.int64),
        feature_names=[_clean_feature_name(name) for name in iris.feature_names],
        class_names=[str(name) for name in iris.target_names],
        description="Iris (scikit-learn's bundled copy of Fisher's data, 150 rows)",
    )


def _clean_feature_name(name: str) -> str:
    return name.replace(" (cm)", "_cm").replace(" ", "_")


def read_csv_dataset(path: Path, target: str) -> Dataset:
    """A CSV with a header row: numeric feature columns plus a `target` column of class labels."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
    except OSError as error:
        raise TrainingError(f"{path}: cannot be read ({error.strerror})") from None
    if len(rows) < 2:
        raise TrainingError(f"{path}: needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise TrainingError(f"{path}: no column {target!r} (columns: {', '.join(header)})")
    target_index = header.index(target)
    feature_names = [name for i, name in enumerate(header) if i != target_index]
    features, labels = _parse_rows(path, rows[1:], target_index, len(header))
    class_names = sorted(set(labels))
    if len(class_names) < 2:
        raise TrainingError(f"{path}: column {target!r} needs at least two classes")
    index = {name: i for i, name in enumerate(class_names)}
    return Dataset(
        features=np.asarray(features, dtype=np.float64),
        targets=np.asarray([index[label] for label in labels], dtype=np.int64),
        feature_names=feature_names,
        class_names=class_names,
        description=f"{path.name} ({len(labels)} rows, target column {target!r})",
    )


def _parse_rows(
    path: Path, rows: list[list[str]], target_index: int, width: int
) -> tuple[list[list[float]], list[str]]:
    features: list[list[float]] = []
    labels: list[str] = []
    for line_number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise TrainingError(f"{path}:{line_number}: {len(row)} values, the header has {width}")
        values = [cell.strip() for i, cell in enumerate(row) if i != target_index]
        try:
            parsed = [float(value) for value in values]
        except ValueError:
            raise TrainingError(f"{path}:{line_number}: feature values must be numbers: {values}") from None
        if not np.all(np.isfinite(parsed)):
            raise TrainingError(f"{path}:{line_number}: feature values must be finite: {values}")
        features.append(parsed)
        labels.append(row[target_index].strip())
    return features, labels


def fit_and_evaluate(dataset: Dataset, params: TrainParams) -> TrainedModel:
    """Stratified hold-out split, fit on the training part, score on the hold-out."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.targets,
        test_size=params.test_size,
        random_state=params.seed,
        stratify=dataset.targets,
    )
    estimator = RandomForestClassifier(
        n_estimators=params.n_estimators, max_depth=params.max_depth, random_state=params.seed
    )
    estimator.fit(x_train, y_train)
    metrics = evaluate(estimator, x_test, y_test, dataset.class_names)
    metrics["n_train"] = len(y_train)
    return TrainedModel(estimator=estimator, metrics=metrics, params=params, holdout=x_test)


def evaluate(
    estimator: Any, features: NDArray[np.float64], targets: NDArray[np.int64], class_names: list[str]
) -> dict[str, object]:
    """Accuracy, macro-F1, confusion matrix and per-class precision/recall/F1 on held-out rows."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    predicted = estimator.predict(features)
    labels = list(range(len(class_names)))
    report = classification_report(
        targets, predicted, labels=labels, target_names=class_names, output_dict=True, zero_division=0
    )
    return {
        "accuracy": round(float(accuracy_score(targets, predicted)), 6),
        "f1_macro": round(float(f1_score(targets, predicted, average="macro", zero_division=0)), 6),
        "n_test": len(targets),
        "confusion_matrix": confusion_matrix(targets, predicted, labels=labels).tolist(),
        "per_class": {
            name: {key: round(float(report[name][key]), 6) for key in ("precision", "recall", "f1-score")}
            | {"support": int(report[name]["support"])}
            for name in class_names
        },
    }


def to_onnx_bytes(estimator: Any, n_features: int) -> bytes:
    """Convert with skl2onnx: float input `X` of shape [N, n_features]; outputs `label`, `probabilities`."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    model = to_onnx(estimator, sample, options={"zipmap": False})
    return bytes(model.SerializeToString())


def to_skops_bytes(estimator: Any) -> bytes:
    import skops.io

    return bytes(skops.io.dumps(estimator))


def check_parity(estimator: Any, onnx_bytes: bytes, features: NDArray[np.float64]) -> float:
    """Largest probability difference between ONNX Runtime and scikit-learn; classes must be identical."""
    from mlkube.model.runtime import onnx_session_from_bytes

    session = onnx_session_from_bytes(onnx_bytes)
    labels, probabilities = session.run(["label", "probabilities"], {"X": features.astype(np.float32)})
    expected = estimator.predict_proba(features)
    if not np.array_equal(np.asarray(labels), estimator.predict(features)):
        raise TrainingError(
            "ONNX Runtime predicts other classes than scikit-learn: use MODEL_RUNTIME=sklearn"
        )
    difference = float(np.max(np.abs(np.asarray(probabilities) - expected)))
    if difference > PARITY_TOLERANCE:
        raise TrainingError(f"ONNX probabilities differ from scikit-learn's by {difference:.2e}")
    return difference


def parity_probe(dataset: Dataset, seed: int, n_random: int = 1000) -> NDArray[np.float64]:
    """All training rows plus random rows from twice the training range (inside and outside it)."""
    rng = np.random.default_rng(seed)
    low, high = dataset.features.min(axis=0), dataset.features.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    random_rows = rng.uniform(low - span / 2, high + span / 2, size=(n_random, dataset.features.shape[1]))
    return np.vstack([dataset.features, random_rows])


def feature_stats(dataset: Dataset) -> list[FeatureStats]:
    columns = dataset.features.T
    return [
        FeatureStats(name, float(column.min()), float(column.max()), round(float(column.mean()), 6))
        for name, column in zip(dataset.feature_names, columns, strict=False)
    ]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def train_bundle(
    dataset: Dataset,
    params: TrainParams,
    root: Path,
    name: str = "iris",
    version: str | None = None,
) -> Bundle:
    """The whole `mlkube train`: fit, evaluate, convert, prove parity, write the bundle and its report."""
    validate_name("model name", name)
    trained = fit_and_evaluate(dataset, params)
    onnx_bytes = to_onnx_bytes(trained.estimator, dataset.features.shape[1])
    difference = check_parity(trained.estimator, onnx_bytes, parity_probe(dataset, params.seed))
    metadata = Metadata(
        format_version=0,
        name=name,
        version=version or next_version(root, name),
        created_at=utc_now(),
        feature_names=dataset.feature_names,
        class_names=dataset.class_names,
        n_features=len(dataset.feature_names),
        metrics=trained.metrics | {"onnx_max_abs_diff": difference},
        params={
            "estimator": "RandomForestClassifier",
            "n_estimators": params.n_estimators,
            "max_depth": params.max_depth,
            "seed": params.seed,
            "test_size": params.test_size,
        },
        library_versions=library_versions(),
        data_sha256=dataset.fingerprint,
        files={},
        features=feature_stats(dataset),
        description=dataset.description,
        samples=class_samples(dataset, trained.estimator.predict(dataset.features)),
    )
    artifacts = {ONNX_FILE: onnx_bytes, SKOPS_FILE: to_skops_bytes(trained.estimator)}
    artifacts |= report_files(metadata, dataset, trained.estimator)
    return write_bundle(root, metadata, artifacts)
