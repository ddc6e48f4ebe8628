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
    drift: DriftSignals | None = None
    """Live signals of the running workers; filled per request by `GET /model`."""


class ProbaPrediction(msgspec.Struct):
    """/predict's four keys plus every class's probability, in class order."""

    prediction: int
    class_name: str
    confidence: float
    version: str
    probabilities: list[float]


class ProbaBatch(msgspec.Struct):
    predictions: list[ProbaPrediction]


class FeatureDrift(msgspec.Struct):
    """One feature's values outside its training range, in every row scored since the workers started."""

    name: str
    below_min: int
    above_max: int
    share: float | None
    """(below_min + above_max) / rows scored; None before the first row."""


class ClassShare(msgspec.Struct):
    """One class: its predictions in the recent window, their share, and its share in training."""

    name: str
    recent: int
    share: float | None
    """recent / all recent predictions; None when the window is empty."""
    training: float | None
    """Share of the class in the held-out rows (a stratified split: the training shares); None if unknown."""


class DriftSignals(msgspec.Struct):
    """What the running workers (all of them, merged) have seen: the model card's drift section."""

    rows: int
    """Rows scored since the workers started."""
    features: list[FeatureDrift]
    window_seconds: int
    recent: int
    """Predictions in the last `window_seconds` (the window slides in steps of a tenth of it)."""
    classes: list[ClassShare]
