"""The model page's bodies: the model card (`GET /model`) and `POST /predict/proba`'s answer."""

from __future__ import annotations

import msgspec


class FeatureCard(msgspec.Struct):
    name: str
    min: float | None = None
    max: float | None = None
    mean: float | None = None


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


class ProbaPrediction(msgspec.Struct):
    """/predict's four keys plus every class's probability, in class order."""

    prediction: int
    class_name: str
    confidence: float
    version: str
    probabilities: list[float]


class ProbaBatch(msgspec.Struct):
    predictions: list[ProbaPrediction]
