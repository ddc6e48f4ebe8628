"""The estimators `mlkube train --estimator NAME` knows, and `--param k=v` turned into their arguments.

Every one converts to ONNX as a single graph (skl2onnx; onnxmltools' converters for XGBoost and LightGBM,
registered with skl2onnx so they also convert inside a Pipeline). Needs the training extras.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlkube.model.datasets import CLASSIFICATION, REGRESSION, TrainingError


@dataclass(frozen=True)
class EstimatorKind:
    """One `--estimator` name: its classifier and regressor (`module:Class`), the extra that installs it."""

    classifier: str | None
    regressor: str | None
    extra: str = "train"
    defaults: Mapping[str, object] = field(default_factory=dict)

    def class_path(self, task: str) -> str | None:
        return self.classifier if task == CLASSIFICATION else self.regressor


ESTIMATORS: dict[str, EstimatorKind] = {
    "random_forest": EstimatorKind(
        "sklearn.ensemble:RandomForestClassifier",
        "sklearn.ensemble:RandomForestRegressor",
        defaults={"n_estimators": 10},  # the notes' forest
    ),
    "extra_trees": EstimatorKind(
        "sklearn.ensemble:ExtraTreesClassifier", "sklearn.ensemble:ExtraTreesRegressor"
    ),
    "gradient_boosting": EstimatorKind(
        "sklearn.ensemble:GradientBoostingClassifier", "sklearn.ensemble:GradientBoostingRegressor"
    ),
    "hist_gradient_boosting": EstimatorKind(
        "sklearn.ensemble:HistGradientBoostingClassifier", "sklearn.ensemble:HistGradientBoostingRegressor"
    ),
    "logistic_regression": EstimatorKind(
        "sklearn.linear_model:LogisticRegression", None, defaults={"max_iter": 1000}
    ),
    "linear_regression": EstimatorKind(None, "sklearn.linear_model:LinearRegression"),
    "ridge": EstimatorKind(None, "sklearn.linear_model:Ridge"),
    "xgboost": EstimatorKind("xgboost:XGBClassifier", "xgboost:XGBRegressor", extra="xgboost"),
    "lightgbm": EstimatorKind(
        "lightgbm:LGBMClassifier", "lightgbm:LGBMRegressor", extra="lightgbm", defaults={"verbose": -1}
    ),
}
DEFAULT_ESTIMATOR = "random_forest"


def build_estimator(name: str, task: str, params: Mapping[str, object], seed: int) -> Any:
    """A fresh estimator: its defaults, then `params`; `seed` becomes `random_state` where it has one."""
    kind = ESTIMATORS.get(name)
    if kind is None:
        raise TrainingError(f"unknown estimator {name!r} (known: {', '.join(ESTIMATORS)})")
    if task not in (CLASSIFICATION, REGRESSION):
        raise TrainingError(f"unknown task {task!r}: classification or regression")
    path = kind.class_path(task)
    if path is None:
        other = CLASSIFICATION if task == REGRESSION else REGRESSION
        fits = [key for key, known in ESTIMATORS.items() if known.class_path(task)]
        raise TrainingError(f"{name} is for {other} only; for {task}: {', '.join(fits)}")
    estimator = _instantiate(name, kind, path)
    known = estimator.get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TrainingError(
            f"{type(estimator).__name__} has no parameter {', '.join(map(repr, unknown))} "
            f"(it has: {', '.join(sorted(known))})"
        )
    settings = dict(kind.defaults) | dict(params)
    if "random_state" in known and "random_state" not in params:
        settings["random_state"] = seed
    return estimator.set_params(**settings)


def _instantiate(name: str, kind: EstimatorKind, path: str) -> Any:
    module_name, class_name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise TrainingError(
            f"--estimator {name} needs its extra: pip install 'mlkube[{kind.extra}]'"
        ) from None
    return getattr(module, class_name)()


def parse_params(pairs: Sequence[str]) -> dict[str, object]:
    """`k=v` pairs; v as JSON if it parses (3, 0.1, true, null, "x"), Python's True/False/None, else text."""
    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise TrainingError(f"--param {pair!r}: write it as name=value, e.g. --param max_depth=5")
        parsed[key] = _param_value(raw.strip())
    return parsed


def _param_value(raw: str) -> object:
    python_words: dict[str, object] = {"True": True, "False": False, "None": None}
    if raw in python_words:
        return python_words[raw]
    try:
        value: object = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, str, bool)) or value is None else raw


def register_boosting_converters() -> None:
    """Teach skl2onnx XGBoost's and LightGBM's estimators (onnxmltools' converters), where installed."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        return
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options=classifier_options,
    )
    update_registered_converter(
        LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm
    )
