"""The simple API's bodies: `POST /predict`, `GET /health`, `GET /ready`, and every route's error body."""

from __future__ import annotations

import msgspec


class PredictRequest(msgspec.Struct, kw_only=True):
    """`{"features": [...]}` (one row) or `{"instances": [[...], ...]}` (a batch)."""

    features: list[float] | None = None
    instances: list[list[float]] | None = None


class Prediction(msgspec.Struct, gc=False):
    """One row's answer, exactly these four keys (scalars only: the garbage collector need not track it)."""

    prediction: int
    class_name: str
    confidence: float
    version: str


class BatchPrediction(msgspec.Struct):
    predictions: list[Prediction]


FeatureValue = float | str | None
"""A number, a category's text, or null for a missing value (where the model imputes it)."""


class NamedPredictRequest(msgspec.Struct, kw_only=True):
    """`/predict`'s body with features by name or text values: `{"features": {"name": value, ...}}`,
    `{"instances": [{...}, ...]}`, or rows in schema order holding text (a model with categories)."""

    features: list[FeatureValue] | dict[str, FeatureValue] | None = None
    instances: list[list[FeatureValue] | dict[str, FeatureValue]] | None = None


class ValuePrediction(msgspec.Struct, gc=False):
    """A regressor's answer for one row: the predicted value and the model version (no class fields)."""

    prediction: float
    version: str


class BatchValuePrediction(msgspec.Struct):
    predictions: list[ValuePrediction]


class ErrorBody(msgspec.Struct):
    error: str


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, omit_defaults=True):
    status: str
    model: str | None = None
    version: str | None = None
    runtime: str | None = None
    reason: str | None = None
