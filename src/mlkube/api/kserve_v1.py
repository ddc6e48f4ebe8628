"""KServe's V1 protocol (TensorFlow Serving's row format): its request and answer bodies."""

from __future__ import annotations

import msgspec


class V1PredictRequest(msgspec.Struct):
    """One list of feature values per row."""

    instances: list[list[float]]


class V1NamedRequest(msgspec.Struct):
    """Rows as lists in the model's feature order or as objects by feature name; text for categories."""

    instances: list[list[float | str | None] | dict[str, float | str | None]]


class V1Predictions(msgspec.Struct):
    """The predicted class index of every row, in order."""

    predictions: list[int]


class V1Values(msgspec.Struct):
    """A regressor's predicted value of every row, in order."""

    predictions: list[float]


class V1Models(msgspec.Struct):
    models: list[str]


class V1ModelStatus(msgspec.Struct):
    name: str
    ready: bool


class V1Liveness(msgspec.Struct):
    """`GET /` for a client that does not ask for HTML: KServe's SDK checks `status == "alive"`."""

    status: str
