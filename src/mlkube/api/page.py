"""The model page's bodies: the model card (`GET /model`) and `POST /predict/proba`'s answer."""

from __future__ import annotations

import msgspec


class FeatureCard(msgspec.Struct, omit_defaults=True):
    """A feature's training range; a category's known values (`kind`, `categories`, `missing` appear only
    where they differ from a number the model needs)."""

    name: str
    min: float | None
    max: float | None
    mean: float | None
    kind: str = "number"
    categories: list[str] = []
    missing: bool = False


class ClassScores(msgspec.Struct):
    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None


class ModelCard(msgspec.Struct):
    """What `GET /model` answers: everything the page shows about the model."""

    name: str
    version: str
    created_at: str
    description: str
    runtime: str
    class_names: list[str]
    features: list[FeatureCard]
    samples: list[list[float]]
    metrics: dict[str, object]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]
    params: dict[str, object]
    task: str = "classification"
    """`classification` or `regression` (no classes: the page shows the predicted value)."""


class ProbaPrediction(msgspec.Struct):
    """/predict's four keys plus every class's probability, in class order."""

    prediction: int
    class_name: str
    confidence: float
    version: str
    probabilities: list[float]


class ProbaBatch(msgspec.Struct):
    predictions: list[ProbaPrediction]
