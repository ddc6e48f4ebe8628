"""`mlkube train --data FILE.csv` for any table: numeric and text columns, missing values, either task.

A table of numbers only, complete, for classification trains exactly as before (`train.train_bundle`).
Otherwise the model is one scikit-learn Pipeline that converts to one ONNX graph, so serving stays free
of scikit-learn: numbers go through a median SimpleImputer, text columns through a OneHotEncoder that
ignores values it never saw (a missing text value is "", its own level). With a text column the graph
takes one input per column (the `columns` layout); with numbers only, one float tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.model.bundle import (
    CATEGORY,
    COLUMNS_LAYOUT,
    ONNX_FILE,
    SKOPS_FILE,
    TENSOR_LAYOUT,
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
from mlkube.model.convert import check_parity, convert
from mlkube.model.datasets import CLASSIFICATION, Dataset, Table
from mlkube.model.estimators import build_estimator
from mlkube.model.feeds import MISSING_CATEGORY
from mlkube.model.report import table_report_files
from mlkube.model.train import (
    TrainParams,
    evaluate,
    fit,
    library_versions,
    to_skops_bytes,
    train_bundle,
)

PROBE_ROWS = 500


def train_table_bundle(
    table: Table, params: TrainParams, root: Path, name: str = "model", version: str | None = None
) -> Bundle:
    """Fit, evaluate, convert, prove parity on every row and on random ones, write the bundle."""
    validate_name("model name", name)
    if table.task == CLASSIFICATION and not table.categorical and not table.has_missing:
        return train_bundle(as_dataset(table), params, root, name=name, version=version)
    schema = table_schema(table)
    model = build_estimator(params.estimator, table.task, params.estimator_params(), params.seed)
    pipeline = build_pipeline(table, schema, model)
    train_rows, test_rows = split(table, params)
    fit_float32_exact(pipeline, model_input(table, schema, train_rows), table.targets[train_rows])
    metrics = score(pipeline, table, schema, test_rows)
    metrics["n_train"] = len(train_rows)
    classifier = table.task == CLASSIFICATION
    onnx_bytes = convert(pipeline, schema, classifier)
    probe = probe_columns(table, schema, params.seed)
    parity = check_parity(pipeline, onnx_bytes, schema, probe, [] if classifier else None)
    metadata = Metadata(
        format_version=0,
        name=name,
        version=version or next_version(root, name),
        created_at=utc_now(),
        feature_names=table.feature_names,
        class_names=table.class_names,
        n_features=len(table.feature_names),
        metrics=metrics | {"onnx_max_abs_diff": parity.max_abs_diff, "parity_rows": parity.rows},
        params=params.recorded(pipeline),
        library_versions=library_versions(params.estimator, "pandas"),
        data_sha256=table.fingerprint,
        files={},
        features=[
            FeatureStats(spec.name, spec.min, spec.max, spec.mean)
            for spec in schema.features
            if spec.kind != CATEGORY
            and spec.min is not None
            and spec.max is not None
            and spec.mean is not None
        ],
        description=table.description,
        task=table.task,
        inputs=schema,
    )
    artifacts = {ONNX_FILE: onnx_bytes, SKOPS_FILE: to_skops_bytes(pipeline)}
    artifacts |= table_report_files(metadata, table.targets)
    return write_bundle(root, metadata, artifacts)


def as_dataset(table: Table) -> Dataset:
    return Dataset(
        features=table.frame[table.numeric].to_numpy(dtype=np.float64),
        targets=np.asarray(table.targets, dtype=np.int64),
        feature_names=table.feature_names,
        class_names=table.class_names,
        description=table.description,
    )


def table_schema(table: Table) -> InputSchema:
    """Each column's kind, range or categories; missing values allowed wherever an imputer stands."""
    layout = COLUMNS_LAYOUT if table.categorical else TENSOR_LAYOUT
    specs = []
    for name in table.feature_names:
        column = table.frame[name]
        onnx_input = name if layout == COLUMNS_LAYOUT else ""
        if name in table.categorical:
            seen = sorted({str(value) for value in column} - {MISSING_CATEGORY})
            specs.append(
                FeatureSpec(name=name, kind=CATEGORY, categories=seen, missing=True, onnx_input=onnx_input)
            )
            continue
        values = column.to_numpy(dtype=np.float64)
        specs.append(number_spec(name, values, missing=True, onnx_input=onnx_input))
    return InputSchema(layout=layout, features=specs)


def number_spec(name: str, values: NDArray[np.float64], missing: bool, onnx_input: str = "") -> FeatureSpec:
    """A number's spec with its range and mean over the values present (none when all are missing)."""
    known = values[~np.isnan(values)]
    if not len(known):
        return FeatureSpec(name=name, missing=missing, onnx_input=onnx_input)
    return FeatureSpec(
        name=name,
        min=float(known.min()),
        max=float(known.max()),
        mean=round(float(known.mean()), 6),
        missing=missing,
        onnx_input=onnx_input,
    )


def stats_of(schema: InputSchema) -> list[FeatureStats]:
    """The numbers' training ranges in the older `features` list (the model page and card read it)."""
    return [
        FeatureStats(spec.name, spec.min, spec.max, spec.mean)
        for spec in schema.features
        if spec.min is not None and spec.max is not None and spec.mean is not None
    ]


def build_pipeline(table: Table, schema: InputSchema, model: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numbers = SimpleImputer(strategy="median", keep_empty_features=True)
    if schema.layout == TENSOR_LAYOUT:
        return Pipeline([("impute", numbers), ("model", model)])
    parts: list[tuple[str, Any, list[str]]] = []
    if table.numeric:
        parts.append(("numbers", numbers, table.numeric))
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    parts.append(("categories", encoder, table.categorical))
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", model)])


def fit_float32_exact(pipeline: Any, features: Any, targets: NDArray[Any]) -> None:
    """Fit, then make the imputers' fill values float32 numbers and fit the model again on their output.

    ONNX imputes in float32: a median that float32 cannot hold became another number there, and a tree
    whose threshold sits right at that median (many training rows share it) sent those rows elsewhere.
    """
    fit(pipeline, features, targets)
    imputers = [step for step in _steps(pipeline) if type(step).__name__ == "SimpleImputer"]
    for imputer in imputers:
        imputer.statistics_ = imputer.statistics_.astype(np.float32).astype(np.float64)
    if imputers:
        fit(pipeline.steps[-1][1], pipeline[:-1].transform(features), targets)


def _steps(estimator: Any) -> list[Any]:
    found = [estimator]
    for _, inner in getattr(estimator, "steps", []):
        found += _steps(inner)
    for _, inner, _ in getattr(estimator, "transformers_", []):
        found += _steps(inner)
    return found


def split(table: Table, params: TrainParams) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(table.targets))
    stratify = table.targets if table.task == CLASSIFICATION else None
    train_rows, test_rows = train_test_split(
        rows, test_size=params.test_size, random_state=params.seed, stratify=stratify
    )
    return np.sort(train_rows), np.sort(test_rows)


def model_input(table: Table, schema: InputSchema, rows: NDArray[np.intp]) -> Any:
    part = table.frame.iloc[rows]
    return part.to_numpy(dtype=np.float64) if schema.layout == TENSOR_LAYOUT else part


def score(pipeline: Any, table: Table, schema: InputSchema, rows: NDArray[np.intp]) -> dict[str, object]:
    features, targets = model_input(table, schema, rows), table.targets[rows]
    if table.task == CLASSIFICATION:
        return evaluate(pipeline, features, targets, table.class_names)
    return evaluate_regression(pipeline.predict(features), targets)


def evaluate_regression(predicted: Any, targets: NDArray[Any]) -> dict[str, object]:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "r2": round(float(r2_score(targets, predicted)), 6),
        "mae": round(float(mean_absolute_error(targets, predicted)), 6),
        "rmse": round(float(root_mean_squared_error(targets, predicted)), 6),
        "n_test": len(targets),
    }


def probe_columns(table: Table, schema: InputSchema, seed: int, n_random: int = PROBE_ROWS) -> dict[str, Any]:
    """Every row of the table, then random rows from twice each range, missing values and every category."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for spec in schema.features:
        known = table.frame[spec.name].to_numpy()
        if spec.kind == CATEGORY:
            choices = [*spec.categories, MISSING_CATEGORY]
            columns[spec.name] = np.concatenate([known.astype(object), rng.choice(choices, n_random)])
            continue
        low = spec.min if spec.min is not None else -1.0
        high = spec.max if spec.max is not None else 1.0
        span = high - low if high > low else 1.0
        random = rng.uniform(low - span / 2, high + span / 2, n_random)
        random[rng.random(n_random) < 0.05] = np.nan
        columns[spec.name] = np.concatenate([known.astype(np.float64), random])
    return columns
