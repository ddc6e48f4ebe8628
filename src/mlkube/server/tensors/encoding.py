"""Scores out as the V2 outputs asked for: `predict`, `predict_proba` and `label`, as JSON or binary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from mlkube.api.open_inference import (
    OUTPUT_NAMES,
    InferenceResponse,
    OutputName,
    Parameters,
    RequestOutput,
    ResponseOutput,
)
from mlkube.errors import InferenceError
from mlkube.model.runtime import Scores
from mlkube.server.tensors.binary import bytes_tensor, with_blobs

_encode = msgspec.json.Encoder().encode
VALUE_OUTPUTS: tuple[OutputName, ...] = ("predict",)
"""A regressor's one output: its FP32 value per row."""


def output_tensors(
    requested: Sequence[RequestOutput] | None,
    all_binary: bool,
    scores: Scores,
    class_names: Sequence[str],
) -> tuple[list[ResponseOutput], list[bytes]]:
    """The outputs asked for (all when none are), and the bytes of those asked for in binary.

    Each output at most once: a thousand copies of one name would make a thousand copies of its tensor.
    """
    wanted = [(output.name, _wants_binary(output, all_binary)) for output in requested or ()]
    if len({name for name, _ in wanted}) != len(wanted):
        raise InferenceError("'outputs' names an output more than once: ask for each at most once")
    if not wanted:
        names = OUTPUT_NAMES if scores.values is None else VALUE_OUTPUTS
        wanted = [(name, all_binary) for name in names]
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
    rows = len(scores.probabilities)
    data: list[Any]
    if scores.values is not None:
        if name != "predict":
            raise InferenceError(f"output {name!r} is a classifier's: a regressor answers 'predict'")
        blob = scores.values.astype("<f4").tobytes() if binary else None
        data = [] if binary else [float(str(value)) for value in scores.values]
        shape, datatype = [rows], "FP32"
    elif name == "predict":
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
        blob = bytes_tensor(labels) if binary else None
        data = labels
    if blob is not None:
        parameters: Parameters = {"binary_data_size": len(blob)}
        return ResponseOutput(name=name, shape=shape, datatype=datatype, parameters=parameters), blob
    return ResponseOutput(name=name, shape=shape, datatype=datatype, data=data), None


def _rounded(probabilities: NDArray[np.float32]) -> list[Any]:
    """6 decimals: float32 sums of tree votes would print as 0.8999999761581421."""
    if len(probabilities) == 1:  # one row: plain Python beats numpy's per-call overhead
        return [round(value, 6) + 0.0 for value in probabilities[0].tolist()]  # + 0.0: never -0.0
    rounded: list[Any] = (np.round(probabilities.astype(np.float64), 6) + 0.0).ravel().tolist()
    return rounded


def encode_response(response: InferenceResponse, blobs: Sequence[bytes]) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary outputs follow it."""
    return with_blobs(_encode(response), blobs)
