"""The Open Inference Protocol (V2) over REST: its bodies and tensors, as the spec writes them.

The shapes are kserve/open-inference-protocol `inference_rest.md`'s. A request decodes and is type-checked
in one msgspec pass; the `data` of an input is kept raw and decoded once its datatype is known (see
`server/tensors/decoding.py`). The JSON Schema annotations narrow each datatype's values to its range, so
/openapi.json states what the server takes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from mlkube.api.numbers import FLOAT16_MAX, FLOAT32_MAX

Datatype = Literal[
    "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BYTES"
]
FLOAT_DATATYPES = ("FP16", "FP32", "FP64")
INTEGER_DATATYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
NUMBER_DATATYPES = (*FLOAT_DATATYPES, *INTEGER_DATATYPES)
MAX_INPUTS = 4096
"""Most inputs in one request: a model with text features takes one input per feature."""
OutputName = Literal["predict", "predict_proba", "label"]
OUTPUT_NAMES: tuple[OutputName, ...] = ("predict", "predict_proba", "label")
INPUT_NAME = "features"
BINARY_HEADER = "inference-header-content-length"
"""Triton's binary tensor extension: the length of the JSON header before the binary tensors."""
ParameterValue = str | int | float | bool
Parameters = dict[str, ParameterValue]
_ITEM = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
TENSOR_DATA_SCHEMA = {
    "description": (
        "The values in row-major order: flat, or one array per row. Numbers; text for BYTES; null only "
        "for a missing value of a model's column that imputes it."
    ),
    "anyOf": [
        {"type": "array", "items": _ITEM},
        {"type": "array", "items": {"type": "array", "items": _ITEM}},
    ],
}


def integer_range(datatype: str) -> tuple[int, int]:
    """The values an INTn or UINTn datatype holds."""
    bits = int(datatype.removeprefix("U").removeprefix("INT"))
    if datatype.startswith("U"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def float_limit(datatype: str) -> float:
    """The largest finite value the model's float32 input takes from a datatype (FP16's own range)."""
    return FLOAT16_MAX if datatype == "FP16" else FLOAT32_MAX


def _values_rule(datatype: str) -> dict[str, Any]:
    """JSON Schema 2020-12 (OpenAPI 3.1): the values one datatype's decoder and range check accept."""
    if datatype in INTEGER_DATATYPES:
        low, high = integer_range(datatype)
        value: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    else:
        limit = float_limit(datatype)
        value = {"type": "number", "minimum": -limit, "maximum": limit}
    flat = {"type": "array", "items": value}
    return {
        "if": {"properties": {"datatype": {"const": datatype}}, "required": ["datatype"]},
        "then": {"properties": {"data": {"anyOf": [flat, {"type": "array", "items": flat}]}}},
    }


_TEXTS = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}
_BYTES_RULE = {
    "if": {"properties": {"datatype": {"const": "BYTES"}}, "required": ["datatype"]},
    "then": {"properties": {"data": {"anyOf": [_TEXTS, {"type": "array", "items": _TEXTS}]}}},
}
"""BYTES: text (a category's value), flat or one array per row; null for a missing value."""

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
    msgspec.Meta(
        extra_json_schema={
            "allOf": [
                *(_values_rule(name) for name in NUMBER_DATATYPES),
                _BYTES_RULE,
                _BINARY_OR_DATA,
            ]
        }
    ),
]


class InferenceRequest(msgspec.Struct, kw_only=True):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: Annotated[list[_Input], msgspec.Meta(min_length=1, max_length=MAX_INPUTS)]
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
