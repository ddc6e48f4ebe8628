"""A V2 request in, the model's float32 rows out, after every check the spec implies.

The `data` of the input is decoded once its datatype is known, by a decoder for exactly that datatype and
nesting, so `[1.5]` is refused for INT32 and `[true]` for FP32 without a Python loop over the values.
Every failure is an `InferenceError` (400, as the spec answers them), never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from mlkube.api.open_inference import (
    INPUT_NAME,
    INTEGER_DATATYPES,
    NUMBER_DATATYPES,
    InferenceRequest,
    RequestInput,
    float_limit,
    integer_range,
)
from mlkube.errors import InferenceError
from mlkube.server.http import decode_json
from mlkube.server.tensors.binary import binary_size, from_binary, header_length

_NESTED = re.compile(rb"\s*\[\s*\[")
_encode = msgspec.json.Encoder().encode


def decode_request(body: bytes, binary_header: str | None) -> tuple[InferenceRequest, memoryview]:
    """The request and the bytes after its JSON header (empty unless the binary extension is used)."""
    length = header_length(binary_header, len(body))
    view = memoryview(body)
    header = view[:length] if length is not None else view
    request = decode_json(_decode_request, header, InferenceError)
    return request, view[length:] if length is not None else view[:0]


def _integral_floats_accepted(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`decode`, strict; if an integer arrived as an integral float (`4.0`), accepted as JSON Schema does.

    The OpenAPI document says "integer", and for JSON Schema 4.0 is one; msgspec's int refuses it. Only a
    request that fails that way pays for the second pass; `4.5` and `"4"` are still refused.
    """

    def decode_leniently(raw: Any) -> Any:
        try:
            return decode(raw)
        except msgspec.ValidationError as error:
            if "got `float`" not in str(error):
                raise
            original = error
        try:
            return decode(_encode(_integral_floats_as_ints(msgspec.json.decode(raw))))
        except msgspec.ValidationError:
            raise original from None

    return decode_leniently


def _integral_floats_as_ints(value: Any) -> Any:
    """`value` with every float that is a whole number replaced by that int (iteratively: no recursion)."""
    pending: list[Any] = []

    def visit(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer():
            return int(item)
        if isinstance(item, (list, dict)):
            pending.append(item)
        return item

    root = visit(value)
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            container[:] = [visit(item) for item in container]
        else:
            for key, item in container.items():
                container[key] = visit(item)
    return root


_decode_request = _integral_floats_accepted(msgspec.json.Decoder(InferenceRequest).decode)
# (integer datatype, nested rows) -> the decoder of `data`
_DECODERS: dict[tuple[bool, bool], Callable[[Any], list[Any]]] = {
    (integers, nested): _integral_floats_accepted(msgspec.json.Decoder(kind).decode)
    for (integers, nested), kind in {
        (False, False): list[float],
        (False, True): list[list[float]],
        (True, False): list[int],
        (True, True): list[list[int]],
    }.items()
}


def input_rows(
    tensor: RequestInput, binary: memoryview, n_features: int, max_rows: int
) -> NDArray[np.float32]:
    """The input as the model's float32 [rows, n_features] array, after every check the spec implies."""
    if tensor.name != INPUT_NAME:
        raise InferenceError(f"unknown input {tensor.name!r}: the model takes one input {INPUT_NAME!r}")
    if tensor.datatype not in NUMBER_DATATYPES:
        raise InferenceError(
            f"input {INPUT_NAME!r} takes numbers: {tensor.datatype} is not a number datatype"
        )
    rows = _check_shape(tensor.shape, n_features, max_rows)
    size = binary_size(tensor.parameters)
    if size is not None:
        if len(tensor.data):
            raise InferenceError("input 'features' has both 'data' and parameters.binary_data_size: send one")
        values = from_binary(tensor.datatype, binary, size, rows * n_features)
    elif len(tensor.data):
        values = _from_json(tensor.datatype, tensor.data, rows, n_features)
    else:
        raise InferenceError("input 'features' has no 'data'")
    if len(binary) != (size or 0):
        raise InferenceError(f"{len(binary) - (size or 0)} bytes after the JSON header belong to no input")
    return _to_float32(tensor.datatype, values).reshape(rows, n_features)


def _check_shape(shape: Sequence[int], n_features: int, max_rows: int) -> int:
    if len(shape) != 2 or shape[1] != n_features:
        raise InferenceError(f"input 'features' has shape {list(shape)}, expected [-1, {n_features}]")
    rows = shape[0]
    if rows == 0:
        raise InferenceError("no rows to score: shape[0] must be at least 1")
    if rows > max_rows:
        raise InferenceError(f"{rows} rows is more than MAX_BATCH_SIZE={max_rows}")
    return rows


def _from_json(datatype: str, data: msgspec.Raw, rows: int, n_features: int) -> NDArray[Any]:
    nested = _NESTED.match(data) is not None
    integers = datatype in INTEGER_DATATYPES
    try:
        values = decode_json(_DECODERS[integers, nested], data, InferenceError, where="'data'")
    except InferenceError as error:  # say which input and where in the whole body
        raise InferenceError(
            f"{datatype} input: {str(error).replace('at $', 'at $.inputs[0].data')}"
        ) from None
    if nested:
        if len(values) != rows or any(len(row) != n_features for row in values):
            raise InferenceError(f"'data' is not {rows} rows of {n_features} values, as shape says")
    elif len(values) != rows * n_features:
        needed = rows * n_features
        raise InferenceError(f"'data' has {len(values)} values, shape [{rows}, {n_features}] needs {needed}")
    return _integers(datatype, values) if integers else np.asarray(values, dtype=np.float64)


def _integers(datatype: str, values: list[Any]) -> NDArray[Any]:
    """Exact integers, then the datatype's range: numpy refuses what does not fit in 64 bits."""
    low, high = integer_range(datatype)
    try:
        array = np.asarray(values, dtype=np.uint64 if datatype == "UINT64" else np.int64)
    except OverflowError:
        array = None
    if array is None or array.min() < low or array.max() > high:
        raise InferenceError(f"{datatype} values must lie within [{low}, {high}]")
    return array


def _to_float32(datatype: str, values: NDArray[Any]) -> NDArray[np.float32]:
    """The model's input type; floats are checked against the range first so none turns into ±inf."""
    if datatype in INTEGER_DATATYPES:
        return values.astype(np.float32)
    limit = float_limit(datatype)
    if not np.abs(values).max() <= limit:  # also true for NaN
        raise InferenceError(f"{datatype} values must be finite and lie within ±{limit:.6g}")
    if datatype == "FP16":
        values = values.astype(np.float16)  # JSON numbers keep FP16's precision, as the sender meant
    return values.astype(np.float32)
