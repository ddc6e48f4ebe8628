"""Open Inference Protocol (V2) bodies and their tensors, converted to and from numpy in whole arrays.

The JSON shapes are the spec's (kserve/open-inference-protocol `inference_rest.md`); the types decode and
check a request in one msgspec pass, and `/openapi.json` is generated from the same types. The `data` of
an input is kept raw and decoded once its datatype is known, by a decoder for exactly that datatype and
nesting, so `[1.5]` is refused for INT32 and `[true]` for FP32 without a Python loop over the values.

Triton's binary tensor data extension is understood as well: an input whose `parameters` give
`binary_data_size` reads its little-endian values from the bytes after the JSON header
(`Inference-Header-Content-Length`), and outputs asked for with `binary_data` are answered that way.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from mlkube.errors import RequestError
from mlkube.model.runtime import Scores

Datatype = Literal[
    "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"
]
OutputName = Literal["predict", "predict_proba", "label"]
OUTPUT_NAMES: tuple[OutputName, ...] = ("predict", "predict_proba", "label")
INPUT_NAME = "features"
BINARY_HEADER = "inference-header-content-length"
ParameterValue = str | int | float | bool
Parameters = dict[str, ParameterValue]

_FLOAT_TYPES: dict[str, type[np.floating[Any]]] = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
_INTEGER_TYPES: dict[str, type[np.integer[Any]]] = {
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
_NUMPY: dict[str, type[np.number[Any]]] = {**_FLOAT_TYPES, **_INTEGER_TYPES}
INTEGER_DATATYPES = tuple(_INTEGER_TYPES)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_NESTED = re.compile(rb"\s*\[\s*\[")
TENSOR_DATA_SCHEMA = {
    "description": "The values in row-major order: flat, or one array per row.",
    "anyOf": [
        {"type": "array", "items": {"type": "number"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
    ],
}


def _values_rule(datatype: str) -> dict[str, Any]:
    """JSON Schema 2020-12 (OpenAPI 3.1): the values one datatype's decoder and range check accept."""
    if datatype in _INTEGER_TYPES:
        info = np.iinfo(_INTEGER_TYPES[datatype])
        value: dict[str, Any] = {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    else:
        limit = _FLOAT16_MAX if datatype == "FP16" else _FLOAT32_MAX
        value = {"type": "number", "minimum": -limit, "maximum": limit}
    flat = {"type": "array", "items": value}
    return {
        "if": {"properties": {"datatype": {"const": datatype}}, "required": ["datatype"]},
        "then": {"properties": {"data": {"anyOf": [flat, {"type": "array", "items": flat}]}}},
    }


# exactly one of `data` and parameters.binary_data_size, which is a byte count
_BINARY_OR_DATA = {
    "oneOf": [
        {"required": ["data"]},
        {
            "required": ["parameters"],
            "properties": {"parameters": {"type": "object", "required": ["binary_data_size"]}},
        },
    ],
    "properties": {
        "parameters": {"properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
    },
}


class InferenceError(RequestError):
    """A V2 request the client can fix; the spec answers these with 400 and `{"error": ...}`."""

    status = 400


class MetadataTensor(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(msgspec.Struct):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(msgspec.Struct):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerLive(msgspec.Struct):
    live: bool


class ServerReady(msgspec.Struct, omit_defaults=True):
    ready: bool
    reason: str | None = None


class ModelReady(msgspec.Struct):
    name: str
    ready: bool


class RequestInput(msgspec.Struct, kw_only=True):
    name: str
    shape: list[Annotated[int, msgspec.Meta(ge=0)]]
    datatype: Datatype
    parameters: Parameters | None = None
    # absent (empty) when the values come as binary; decoded once the datatype is known
    data: Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema=TENSOR_DATA_SCHEMA)] = msgspec.field(
        default_factory=msgspec.Raw
    )


class RequestOutput(msgspec.Struct, kw_only=True):
    name: OutputName
    parameters: Parameters | None = None


_Input = Annotated[
    RequestInput,
    msgspec.Meta(extra_json_schema={"allOf": [*(_values_rule(name) for name in _NUMPY), _BINARY_OR_DATA]}),
]


class InferenceRequest(msgspec.Struct, kw_only=True):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: Annotated[list[_Input], msgspec.Meta(min_length=1, max_length=1)]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[int | float | str] | None = None


class InferenceResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


_decode_request = msgspec.json.Decoder(InferenceRequest).decode
_encode = msgspec.json.Encoder().encode
# (integer datatype, nested rows) -> the decoder of `data`
_DECODERS: dict[tuple[bool, bool], Callable[[Any], list[Any]]] = {
    (False, False): msgspec.json.Decoder(list[float]).decode,
    (False, True): msgspec.json.Decoder(list[list[float]]).decode,
    (True, False): msgspec.json.Decoder(list[int]).decode,
    (True, True): msgspec.json.Decoder(list[list[int]]).decode,
}


def decode_request(body: bytes, binary_header: str | None) -> tuple[InferenceRequest, memoryview]:
    """The request and the bytes after its JSON header (empty unless the binary extension is used)."""
    header_length = _header_length(binary_header, len(body))
    view = memoryview(body)
    header = view[:header_length] if header_length is not None else view
    try:
        request = _decode_with_integral_floats(_decode_request, header)
    except msgspec.ValidationError as error:
        raise InferenceError(_readable(str(error))) from None
    except msgspec.DecodeError as error:
        raise InferenceError(f"body is not valid JSON: {error}") from None
    return request, view[header_length:] if header_length is not None else view[:0]


def _decode_with_integral_floats(decode: Callable[[Any], Any], raw: Any) -> Any:
    """Decode strictly; if an integer arrived as an integral float (`4.0`), accept it as JSON Schema does.

    The OpenAPI document says "integer", and for JSON Schema 4.0 is one; msgspec's int refuses it. Only a
    request that fails that way pays for the second pass; `4.5` and `"4"` are still refused.
    """
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


def _header_length(value: str | None, body_length: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) > body_length:
        raise InferenceError(f"Inference-Header-Content-Length {value!r} is not a length within the body")
    return int(value)


def input_rows(
    tensor: RequestInput, binary: memoryview, n_features: int, max_rows: int
) -> NDArray[np.float32]:
    """The input as the model's float32 [rows, n_features] array, after every check the spec implies."""
    if tensor.name != INPUT_NAME:
        raise InferenceError(f"unknown input {tensor.name!r}: the model takes one input {INPUT_NAME!r}")
    rows = _check_shape(tensor.shape, n_features, max_rows)
    size = _binary_size(tensor.parameters)
    if size is not None:
        if len(tensor.data):
            raise InferenceError("input 'features' has both 'data' and parameters.binary_data_size: send one")
        values = _from_binary(tensor.datatype, binary, size, rows * n_features)
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


def _binary_size(parameters: Parameters | None) -> int | None:
    if not parameters or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON Schema's "integer", which the document promises, counts 16403.0 as one
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InferenceError(f"binary_data_size {size!r} is not a byte count")
    return size


def _from_binary(datatype: str, binary: memoryview, size: int, count: int) -> NDArray[Any]:
    dtype = np.dtype(_NUMPY[datatype]).newbyteorder("<")
    if size > len(binary):
        raise InferenceError(f"binary_data_size {size} is more than the {len(binary)} bytes sent")
    if size != count * dtype.itemsize:
        raise InferenceError(
            f"binary_data_size {size} does not hold {count} {datatype} values "
            f"({count * dtype.itemsize} bytes)"
        )
    return np.frombuffer(binary[:size], dtype=dtype)


def _from_json(datatype: str, data: msgspec.Raw, rows: int, n_features: int) -> NDArray[Any]:
    nested = _NESTED.match(data) is not None
    integers = datatype in _INTEGER_TYPES
    try:
        values = _decode_with_integral_floats(_DECODERS[integers, nested], data)
    except msgspec.ValidationError as error:
        message = _readable(str(error)).replace("at $", "at $.inputs[0].data")
        raise InferenceError(f"{datatype} input: {message}") from None
    except msgspec.DecodeError as error:  # a number msgspec cannot hold, such as 1e999
        raise InferenceError(f"{datatype} input: {error}") from None
    if nested:
        if len(values) != rows or any(len(row) != n_features for row in values):
            raise InferenceError(f"'data' is not {rows} rows of {n_features} values, as shape says")
    elif len(values) != rows * n_features:
        needed = rows * n_features
        raise InferenceError(f"'data' has {len(values)} values, shape [{rows}, {n_features}] needs {needed}")
    return _integers(datatype, values) if integers else np.asarray(values, dtype=np.float64)


def _integers(datatype: str, values: list[Any]) -> NDArray[Any]:
    """Exact integers, then the datatype's range: numpy refuses what does not fit in 64 bits."""
    info = np.iinfo(_INTEGER_TYPES[datatype])
    try:
        array = np.asarray(values, dtype=np.uint64 if datatype == "UINT64" else np.int64)
    except OverflowError:
        array = None
    if array is None or array.min() < info.min or array.max() > info.max:
        raise InferenceError(f"{datatype} values must lie within [{info.min}, {info.max}]")
    return array


def _to_float32(datatype: str, values: NDArray[Any]) -> NDArray[np.float32]:
    """The model's input type; floats are checked against the range first so none turns into ±inf."""
    if datatype in INTEGER_DATATYPES:
        return values.astype(np.float32)
    limit = _FLOAT16_MAX if datatype == "FP16" else _FLOAT32_MAX
    if not np.abs(values).max() <= limit:  # also true for NaN
        raise InferenceError(f"{datatype} values must be finite and lie within ±{limit:.6g}")
    if datatype == "FP16":
        values = values.astype(np.float16)  # JSON numbers keep FP16's precision, as the sender meant
    return values.astype(np.float32)


def output_tensors(
    requested: Sequence[RequestOutput] | None,
    all_binary: bool,
    scores: Scores,
    class_names: Sequence[str],
) -> tuple[list[ResponseOutput], list[bytes]]:
    """The outputs asked for (all when none are), and the bytes of those asked for in binary."""
    wanted = [(output.name, _wants_binary(output, all_binary)) for output in requested or ()]
    if not wanted:
        wanted = [(name, all_binary) for name in OUTPUT_NAMES]
    outputs: list[ResponseOutput] = []
    blobs: list[bytes] = []
    for name, binary in wanted:
        output, blob = _output(name, binary, scores, class_names)
        outputs.append(output)
        if blob is not None:
            blobs.append(blob)
    return outputs, blobs


def _wants_binary(output: RequestOutput, default: bool) -> bool:
    value = (output.parameters or {}).get("binary_data", default)
    return value is True


def _output(
    name: OutputName, binary: bool, scores: Scores, class_names: Sequence[str]
) -> tuple[ResponseOutput, bytes | None]:
    rows = len(scores.classes)
    data: list[Any]
    if name == "predict":
        shape, datatype = [rows], "INT64"
        blob = scores.classes.astype("<i8").tobytes() if binary else None
        data = [] if binary else scores.classes.tolist()
    elif name == "predict_proba":
        shape, datatype = list(scores.probabilities.shape), "FP32"
        blob = scores.probabilities.astype("<f4").tobytes() if binary else None
        data = [] if binary else _rounded(scores.probabilities)
    else:
        shape, datatype = [rows], "BYTES"
        labels = [class_names[index] for index in scores.classes.tolist()]
        blob = _bytes_tensor(labels) if binary else None
        data = labels
    if blob is not None:
        parameters: Parameters = {"binary_data_size": len(blob)}
        return ResponseOutput(name=name, shape=shape, datatype=datatype, parameters=parameters), blob
    return ResponseOutput(name=name, shape=shape, datatype=datatype, data=data), None


def _rounded(probabilities: NDArray[np.float32]) -> list[Any]:
    """6 decimals: float32 sums of tree votes would print as 0.8999999761581421."""
    if len(probabilities) == 1:  # one row: plain Python beats numpy's per-call overhead
        return [round(value, 6) for value in probabilities[0].tolist()]
    rounded: list[Any] = np.round(probabilities.astype(np.float64), 6).ravel().tolist()
    return rounded


def _bytes_tensor(values: Sequence[str]) -> bytes:
    """BYTES in the binary extension: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(encoded)) + encoded for encoded in (v.encode() for v in values))


def encode_response(response: InferenceResponse, blobs: Sequence[bytes]) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary outputs follow it."""
    header = _encode(response)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _readable(message: str) -> str:
    """msgspec says "Expected `float`, got `str` - at `$.inputs[0]`"; keep it, drop the markup."""
    return message.replace("`", "")
