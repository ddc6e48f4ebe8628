"""From feature values to what the ONNX graph is fed, as the bundle's input schema says.

Pure and free of scikit-learn and pandas: serving uses it. Values arrive column by column, keyed by
feature name: numbers as floats (NaN when missing), categories as text ("" when missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.model.bundle import CATEGORY, TENSOR_LAYOUT, InputSchema

MISSING_CATEGORY = ""


def onnx_feeds(schema: InputSchema, columns: Mapping[str, Sequence[Any] | NDArray[Any]]) -> dict[str, Any]:
    """The graph's feeds: one float32 [N, k] tensor, or one [N, 1] input per feature."""
    if schema.layout == TENSOR_LAYOUT:
        stacked = [np.asarray(columns[spec.name], dtype=np.float32) for spec in schema.features]
        return {schema.tensor_input: np.ascontiguousarray(np.stack(stacked, axis=1))}
    feeds: dict[str, Any] = {}
    for spec in schema.features:
        values = columns[spec.name]
        if spec.kind == CATEGORY:
            feeds[spec.onnx_input] = np.asarray(values, dtype=object).reshape(-1, 1)
        else:
            feeds[spec.onnx_input] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    return feeds


def typical_columns(schema: InputSchema) -> dict[str, list[Any]]:
    """One row of typical values (training mean, first category): the warm-up row."""
    row: dict[str, list[Any]] = {}
    for spec in schema.features:
        if spec.kind == CATEGORY:
            row[spec.name] = [spec.categories[0] if spec.categories else MISSING_CATEGORY]
        else:
            row[spec.name] = [spec.mean if spec.mean is not None else 0.0]
    return row
