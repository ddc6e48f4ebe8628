"""V2 inputs of a model with text features: one input per feature, named as the feature.

Each input is a column: shape [rows] or [rows, 1], numbers in any FP or (U)INT datatype, text as BYTES,
null for a missing value where the model imputes it. The values are decoded here by datatype and then
checked by the data plane's `FeatureReader` (kinds, categories, missing values, float32's range), like
every other route's. Binary tensor data is for numbers in one tensor: refused here with a clear 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from mlkube.api.open_inference import INTEGER_DATATYPES, RequestInput
from mlkube.errors import InferenceError
from mlkube.server.http import decode_json
from mlkube.server.tensors.binary import binary_size

_NESTED = re.compile(rb"\s*\[\s*\[")
_KINDS: dict[str, Any] = {"float": float | None, "int": int | None, "text": str | None}
_DECODERS: dict[tuple[str, bool], Callable[[Any], list[Any]]] = {
    (kind, nested): msgspec.json.Decoder(list[list[item]] if nested else list[item]).decode  # type: ignore[valid-type]
    for kind, item in _KINDS.items()
    for nested in (False, True)
}


def input_columns(inputs: Sequence[RequestInput], binary: memoryview) -> dict[str, list[Any]]:
    """Each input's values by its name, one value per row, as the shape says."""
    if len(binary):
        raise InferenceError("binary tensor data is not taken for inputs by column: send each input's 'data'")
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        if tensor.name in columns:
            raise InferenceError(f"input {tensor.name!r} is sent twice")
        if binary_size(tensor.parameters) is not None:
            raise InferenceError(f"input {tensor.name!r}: binary_data_size is not taken for inputs by column")
        columns[tensor.name] = _column(tensor)
    return columns


def _column(tensor: RequestInput) -> list[Any]:
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise InferenceError(f"input {tensor.name!r} has shape {shape}, expected [rows] or [rows, 1]")
    if not len(tensor.data):
        raise InferenceError(f"input {tensor.name!r} has no 'data'")
    kind = (
        "text" if tensor.datatype == "BYTES" else "int" if tensor.datatype in INTEGER_DATATYPES else "float"
    )
    nested = _NESTED.match(tensor.data) is not None
    where = f"input {tensor.name!r} ({tensor.datatype})"
    values = decode_json(_DECODERS[kind, nested], tensor.data, InferenceError, where=f"{where} 'data'")
    if nested:
        if any(len(row) != 1 for row in values):
            raise InferenceError(f"{where}: 'data' rows must hold one value each")
        values = [row[0] for row in values]
    if len(values) != shape[0]:
        raise InferenceError(f"{where}: 'data' has {len(values)} values, shape {shape} needs {shape[0]}")
    return values
