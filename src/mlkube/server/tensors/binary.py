"""Triton's binary tensor data extension: raw little-endian tensors after the JSON header."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.api.open_inference import Parameters
from mlkube.errors import InferenceError

DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(kind).newbyteorder("<")
    for name, kind in {
        "FP16": np.float16,
        "FP32": np.float32,
        "FP64": np.float64,
        "INT8": np.int8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "UINT8": np.uint8,
        "UINT16": np.uint16,
        "UINT32": np.uint32,
        "UINT64": np.uint64,
    }.items()
}
"""Each V2 datatype as the little-endian numpy dtype of its binary form."""


def header_length(value: str | None, body_length: int) -> int | None:
    """The JSON header's length from `Inference-Header-Content-Length`; None without the header."""
    if value is None:
        return None
    # at most 18 ASCII digits: int() of thousands of digits raises (Python's digit limit), "²" is a digit
    if not (len(value) <= 18 and value.isascii() and value.isdigit()) or int(value) > body_length:
        raise InferenceError(
            f"Inference-Header-Content-Length {value[:40]!r} is not a length within the body"
        )
    return int(value)


def binary_size(parameters: Parameters | None) -> int | None:
    """An input's `binary_data_size`, when its values come as binary."""
    if not parameters or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON Schema's "integer", which the document promises, counts 16403.0 as one
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InferenceError(f"binary_data_size {size!r} is not a byte count")
    return size


def from_binary(datatype: str, binary: memoryview, size: int, count: int) -> NDArray[Any]:
    """`count` values of `datatype` from the first `size` bytes after the header."""
    dtype = DTYPES[datatype]
    if size > len(binary):
        raise InferenceError(f"binary_data_size {size} is more than the {len(binary)} bytes sent")
    if size != count * dtype.itemsize:
        raise InferenceError(
            f"binary_data_size {size} does not hold {count} {datatype} values "
            f"({count * dtype.itemsize} bytes)"
        )
    return np.frombuffer(binary[:size], dtype=dtype)


def bytes_tensor(values: Sequence[str]) -> bytes:
    """BYTES in the binary extension: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(encoded)) + encoded for encoded in (v.encode() for v in values))


def with_blobs(header: bytes, blobs: Sequence[bytes]) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary outputs follow it."""
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
