"""To ONNX and back: convert a fitted estimator for an input schema, and prove the graph answers as it does.

Parity is checked in float32, as serving feeds the graph: the native model gets the same float32 values
(widened to float64). Classes must be identical; probabilities may differ by PROBABILITY_TOLERANCE and
regression values by VALUE_TOLERANCE times the largest |value| (float32 keeps about 7 digits, and a
forest or a boosted ensemble sums hundreds of float32 terms). Needs the training extras.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlkube.errors import MlkubeError
from mlkube.model.bundle import CATEGORY, TENSOR_LAYOUT, InputSchema
from mlkube.model.datasets import TrainingError
from mlkube.model.feeds import onnx_feeds
from mlkube.model.runtime import ClassIndex, onnx_session_from_bytes

PROBABILITY_TOLERANCE = 1e-4
VALUE_TOLERANCE = 1e-5
_ML_OPSET = 3  # onnxmltools' XGBoost and LightGBM converters write ai.onnx.ml 3
_ADJUST_POSITION = 7  # add_tree_to_attribute_pairs_hist_gradient_boosting's adjust_threshold_for_sklearn


class ParityError(TrainingError):
    """ONNX Runtime answers otherwise than the native model."""


class NativeModelError(MlkubeError):
    """The native model itself cannot score the parity rows (not a reason to fall back: a reason to stop)."""


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    tolerance: float


def convert(estimator: Any, schema: InputSchema, classifier: bool) -> bytes:
    """The estimator (or Pipeline) as one ONNX graph with the schema's inputs; classifiers without ZipMap."""
    from skl2onnx import get_latest_tested_opset_version, to_onnx

    from mlkube.model.estimators import register_boosting_converters

    _patch_skl2onnx_leaf_flags()
    register_boosting_converters()
    if "lightgbm" in _libraries(estimator):
        _patch_lightgbm_thresholds()
    options = {"zipmap": False} if classifier else None
    opset = {"": min(get_latest_tested_opset_version(), 21), "ai.onnx.ml": _ML_OPSET}
    try:
        model = to_onnx(
            _xgboost_without_names(estimator),
            initial_types=initial_types(schema),
            options=options,
            target_opset=opset,
        )
    except Exception as error:
        raise TrainingError(f"ONNX cannot express {_describe(estimator)}: {_first_line(error)}") from error
    return bytes(model.SerializeToString())


def _libraries(estimator: Any) -> set[str]:
    steps = getattr(estimator, "steps", None) or [("", estimator)]
    return {type(step).__module__.split(".")[0] for _, step in steps}


def _xgboost_without_names(estimator: Any) -> Any:
    """onnxmltools reads XGBoost's split features as f0, f1...: a copy without the column names fitted."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if steps else estimator
    if type(final).__module__.split(".")[0] != "xgboost" or final.get_booster().feature_names is None:
        return estimator
    copied = copy.deepcopy(estimator)
    copied_final = copied.steps[-1][1] if steps else copied
    copied_final.get_booster().feature_names = None
    return copied


def initial_types(schema: InputSchema) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if schema.layout == TENSOR_LAYOUT:
        return [(schema.tensor_input, FloatTensorType([None, len(schema.features)]))]
    return [
        (
            spec.onnx_input,
            StringTensorType([None, 1]) if spec.kind == CATEGORY else FloatTensorType([None, 1]),
        )
        for spec in schema.features
    ]


def native_input(estimator: Any, schema: InputSchema, columns: Mapping[str, Any]) -> Any:
    """What the native model is fed for `columns`: the float32 values serving uses, widened to float64."""
    named = schema.layout != TENSOR_LAYOUT or hasattr(estimator, "feature_names_in_")
    values = {
        spec.name: np.asarray(columns[spec.name], dtype=object)
        if spec.kind == CATEGORY
        else np.asarray(columns[spec.name], dtype=np.float32).astype(np.float64)
        for spec in schema.features
    }
    if not named:
        return np.stack([values[spec.name] for spec in schema.features], axis=1)
    import pandas as pd

    return pd.DataFrame(values)


def check_parity(
    estimator: Any,
    onnx_bytes: bytes,
    schema: InputSchema,
    columns: Mapping[str, Any],
    class_labels: list[int | str] | None,
    tolerance: float | None = None,
) -> Parity:
    """Score `columns` both ways; raise ParityError naming the difference. `class_labels` None: regressor."""
    session = onnx_session_from_bytes(onnx_bytes)
    feeds = onnx_feeds(schema, columns)
    native = native_input(estimator, schema, columns)
    rows = len(next(iter(feeds.values())))
    expected = _native_answers(estimator, native, class_labels is not None)
    if class_labels is None:
        return _value_parity(expected[0], session.run(None, feeds)[0], rows, tolerance)
    index = ClassIndex(class_labels)
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    expected_classes = index(expected[0])
    differing = np.flatnonzero(index(labels) != expected_classes)
    if len(differing):
        raise ParityError(
            f"ONNX Runtime predicts other classes than the native model on {len(differing)} of {rows} rows "
            f"(first: row {int(differing[0])})"
        )
    limit = PROBABILITY_TOLERANCE if tolerance is None else tolerance
    difference = float(np.max(np.abs(np.asarray(probabilities) - expected[1])))
    if difference > limit:
        raise ParityError(
            f"ONNX probabilities differ from the native model's by {difference:.2e} (> {limit:g})"
        )
    return Parity(rows, difference, limit)


def _native_answers(estimator: Any, native: Any, classifier: bool) -> tuple[Any, Any]:
    try:
        return estimator.predict(native), estimator.predict_proba(native) if classifier else None
    except (ValueError, TypeError, KeyError) as error:
        raise NativeModelError(f"the model itself cannot score the parity rows: {error}") from None


def _value_parity(expected: Any, actual: Any, rows: int, tolerance: float | None) -> Parity:
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    scale = max(1.0, float(np.max(np.abs(expected))))
    limit = (VALUE_TOLERANCE if tolerance is None else tolerance) * scale
    difference = float(np.max(np.abs(np.asarray(actual, dtype=np.float64).reshape(-1) - expected)))
    if difference > limit:
        raise ParityError(f"ONNX values differ from the native model's by {difference:.3g} (> {limit:.3g})")
    return Parity(rows, difference, limit)


@functools.cache
def _patch_skl2onnx_leaf_flags() -> None:
    """Two fixes to skl2onnx 1.20's HistGradientBoosting converter, both as skl2onnx itself means them.

    It writes a Python bool for a leaf's missing-value flag, which protobuf 7 refuses ("cannot use boolean
    in onnx", its own comment says): passed as an int. And it rounds HistGradientBoosting's float64
    thresholds to float32 without the adjustment it applies to every other tree (`sklearn_threshold`),
    so a float32 value just above a threshold went left in ONNX and right in scikit-learn: adjusted.
    """
    from skl2onnx.common import tree_ensemble
    from skl2onnx.operator_converters import random_forest

    add_node = tree_ensemble.add_node
    add_hist_tree = random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting

    @functools.wraps(add_node)
    def add_node_with_int_flag(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return add_node(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    @functools.wraps(add_hist_tree)
    def add_hist_tree_adjusted(*args: Any, **kwargs: Any) -> Any:
        if len(args) > _ADJUST_POSITION:
            args = (*args[:_ADJUST_POSITION], True, *args[_ADJUST_POSITION + 1 :])
        else:
            kwargs["adjust_threshold_for_sklearn"] = True
        return add_hist_tree(*args, **kwargs)

    tree_ensemble.add_node = add_node_with_int_flag
    random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting = add_hist_tree_adjusted


def float32_at_most(threshold: float) -> float:
    """The largest float32 <= `threshold`: for any float32 x, `x <= threshold` iff `x <= this`."""
    rounded = np.float32(threshold)
    if float(rounded) > threshold:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


@functools.cache
def _patch_lightgbm_thresholds() -> None:
    """onnxmltools rounds LightGBM's float64 `<=` thresholds to the nearest float32, sometimes upwards,
    so a float32 value just above a threshold went left in ONNX and right in LightGBM. The booster dump it
    converts gets the float32 threshold that splits float32 values exactly as LightGBM does."""
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    dump = LightGbm.dump_booster_model

    @functools.wraps(dump)
    def dump_adjusted(*args: Any, **kwargs: Any) -> Any:
        text, info = dump(*args, **kwargs)
        for tree in text.get("tree_info", []):
            _adjust_lightgbm_node(tree.get("tree_structure", {}))
        return text, info

    LightGbm.dump_booster_model = dump_adjusted


def _adjust_lightgbm_node(node: dict[str, Any]) -> None:
    pending = [node]
    while pending:
        current = pending.pop()
        threshold = current.get("threshold")
        if current.get("decision_type") == "<=" and isinstance(threshold, float):
            current["threshold"] = float32_at_most(threshold)
        pending += [current[side] for side in ("left_child", "right_child") if side in current]


def _describe(estimator: Any) -> str:
    return type(estimator).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
