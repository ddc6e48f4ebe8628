"""Training: pure fit/evaluate/convert functions; reading data and writing the bundle stay at the edges.

Needs the training extras (scikit-learn, skl2onnx, skops). Serving never imports this module.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.model.bundle import (
    ONNX_FILE,
    SKOPS_FILE,
    Bundle,
    FeatureSpec,
    FeatureStats,
    InputSchema,
    Metadata,
    next_version,
    utc_now,
    validate_name,
    write_bundle,
)
from mlkube.model.datasets import (
    CLASSIFICATION,
    Dataset,
    TrainingError,
    load_iris_dataset,
    read_csv_dataset,
)
from mlkube.model.estimators import DEFAULT_ESTIMATOR, build_estimator
from mlkube.model.report import class_samples, report_files

__all__ = [  # the datasets moved to datasets.py; these names stay importable from here
    "Dataset",
    "TrainingError",
    "load_iris_dataset",
    "read_csv_dataset",
]

PARITY_TOLERANCE = 1e-6
"""The notes' forest: ONNX Runtime and scikit-learn agree to 1e-6 on every probability."""
_LIBRARIES = ("mlkube", "scikit-learn", "skl2onnx", "skops", "onnx", "onnxruntime", "numpy")
_EXTRA_LIBRARIES = {
    "xgboost": ("xgboost", "xgboost-cpu", "onnxmltools"),
    "lightgbm": ("lightgbm", "onnxmltools"),
}


@dataclass(frozen=True)
class TrainParams:
    """`n_estimators` and `max_depth` are the notes' forest's; other estimators take `extra` (--param)."""

    n_estimators: int = 10
    max_depth: int | None = None
    seed: int = 42
    test_size: float = 0.2
    estimator: str = DEFAULT_ESTIMATOR
    extra: Mapping[str, object] = field(default_factory=dict)

    def estimator_params(self) -> dict[str, object]:
        if self.estimator == DEFAULT_ESTIMATOR:
            return {"n_estimators": self.n_estimators, "max_depth": self.max_depth} | dict(self.extra)
        return dict(self.extra)

    def recorded(self, estimator: Any) -> dict[str, object]:
        """What metadata.json and the report list as the parameters."""
        return (
            {"estimator": _estimator_name(estimator)}
            | {key: _plain(value) for key, value in self.estimator_params().items()}
            | {"seed": self.seed, "test_size": self.test_size}
        )


@dataclass(frozen=True)
class TrainedModel:
    estimator: Any
    metrics: dict[str, object]
    params: TrainParams
    holdout: NDArray[np.float64] = field(repr=False)


def fit_and_evaluate(dataset: Dataset, params: TrainParams) -> TrainedModel:
    """Stratified hold-out split, fit on the training part, score on the hold-out."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.targets,
        test_size=params.test_size,
        random_state=params.seed,
        stratify=dataset.targets,
    )
    estimator = build_estimator(params.estimator, CLASSIFICATION, params.estimator_params(), params.seed)
    fit(estimator, x_train, y_train)
    metrics = evaluate(estimator, x_test, y_test, dataset.class_names)
    metrics["n_train"] = len(y_train)
    return TrainedModel(estimator=estimator, metrics=metrics, params=params, holdout=x_test)


def fit(estimator: Any, features: Any, targets: Any) -> Any:
    """Fit; scikit-learn's refusal of a parameter value becomes a one-line TrainingError."""
    try:
        return estimator.fit(features, targets)
    except (ValueError, TypeError) as error:
        raise TrainingError(f"{_estimator_name(estimator)} cannot be fitted: {error}") from None


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    return type(steps[-1][1] if steps else estimator).__name__


def _plain(value: object) -> object:
    return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)


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
    from mlkube.model.convert import convert

    return convert(
        estimator, InputSchema(features=[FeatureSpec(name=f"x{i}") for i in range(n_features)]), True
    )


def to_skops_bytes(estimator: Any) -> bytes:
    import skops.io

    return bytes(skops.io.dumps(estimator))


def check_parity(estimator: Any, onnx_bytes: bytes, features: NDArray[np.float64]) -> float:
    """Largest probability difference between ONNX Runtime and scikit-learn; classes must be identical."""
    from mlkube.model import convert

    names = [f"x{i}" for i in range(features.shape[1])]
    schema = InputSchema(features=[FeatureSpec(name=name) for name in names])
    columns = dict(zip(names, features.T, strict=True))
    tolerance = PARITY_TOLERANCE if params_is_forest(estimator) else convert.PROBABILITY_TOLERANCE
    return convert.check_parity(estimator, onnx_bytes, schema, columns, [], tolerance).max_abs_diff


def params_is_forest(estimator: Any) -> bool:
    return type(estimator).__name__ in {"RandomForestClassifier", "ExtraTreesClassifier"}


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


def _number_spec(stat: FeatureStats) -> FeatureSpec:
    return FeatureSpec(name=stat.name, min=stat.min, max=stat.max, mean=stat.mean)


def library_versions(estimator_key: str = DEFAULT_ESTIMATOR, *more: str) -> dict[str, str]:
    """Versions of what made the bundle: Python, mlkube's libraries, the estimator's own library."""
    versions = {"python": platform.python_version()}
    for name in (*_LIBRARIES, *more, *_EXTRA_LIBRARIES.get(estimator_key, ())):
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
        params=params.recorded(trained.estimator),
        library_versions=library_versions(params.estimator),
        data_sha256=dataset.fingerprint,
        files={},
        features=feature_stats(dataset),
        description=dataset.description,
        samples=class_samples(dataset, trained.estimator.predict(dataset.features)),
        task=CLASSIFICATION,
        inputs=InputSchema(features=[_number_spec(stat) for stat in feature_stats(dataset)]),
    )
    artifacts = {ONNX_FILE: onnx_bytes, SKOPS_FILE: to_skops_bytes(trained.estimator)}
    artifacts |= report_files(metadata, dataset, trained.estimator)
    return write_bundle(root, metadata, artifacts)
