"""The data plane: everything a prediction route does that is not its protocol's wire format.

One `DataPlane` per worker, and every route goes through it: the simple API, the model page, KServe V1
and the Open Inference Protocol (V2). It owns

- readiness: the model loaded and its warm-up passed, and the worker not draining (`why_not_ready`);
  `ModelNotReady` (503) is raised here, never by a route;
- scoring: rows are checked and made the model's input (`ModelService.rows_to_array` for the lists of
  numbers of a one-tensor model, as ever; `features.FeatureReader` for named features and text), joined
  with other requests' rows by the worker's `MicroBatcher`, scored, and counted in the prediction metrics
  (`mlkube_predictions`, `mlkube_prediction_confidence`, `mlkube_model_call_rows`) whichever route asked;
- the drift signals: each model call's rows checked against the training ranges (`drift.RangeWatch`, on
  the joined batch, not per request), and the merged signals of all workers in the card;
- the answers: the simple API's four keys per row, with every class's probability for the page;
- the model's identity (name, version, the model check of the V1/V2 paths) and its card.

The hot path (`POST /predict`) calls two plain methods around one await: `submit(rows)` returns the
batcher's future, `answers(scores)` shapes and counts the result. No coroutine of its own, so routing
through the data plane costs the request nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from mlkube.api.page import ClassScores, FeatureCard, ModelCard, ProbaPrediction
from mlkube.api.simple import Prediction, ValuePrediction
from mlkube.errors import ModelNotReady, NotFound
from mlkube.model.bundle import Bundle
from mlkube.model.runtime import Scores
from mlkube.server.batching import Batch, MicroBatcher, feed_rows, join_feeds
from mlkube.server.drift import (
    FeedsRangeWatch,
    RangeWatch,
    drift_signals,
    forget_dead_workers,
    merged_samples,
    training_class_shares,
    watched_features,
)
from mlkube.server.features import FeatureReader
from mlkube.server.metrics import Metrics
from mlkube.server.service import ModelService, plain_values
from mlkube.settings import Settings

DRAINING = "shutting down"
_FOLDERS = re.compile(r"(?<![\w.~+-])(?:[\w.~+-]*/)+(?=[\w.~+-])")
_HASH_PREFIX = re.compile(r"\b[0-9a-f]{8,}…|\b[0-9a-f]{16,}\b")  # "3f2a9c41deadbe…" or whole digests
_SCALAR_METRICS = ("accuracy", "f1_macro", "r2", "mae", "rmse", "n_train", "n_test", "onnx_max_abs_diff")


class DataPlane:
    """One worker's model behind every route: readiness, scoring with micro-batching and metrics, the card."""

    def __init__(self, settings: Settings, service: ModelService, drain_marker: Path) -> None:
        self.settings = settings
        self.service = service
        self.metrics = Metrics(service.name, service.version)
        metadata = service.bundle.metadata if service.bundle is not None else None
        observe_call, observe_outside = self.metrics.observe_model_call, self.metrics.observe_out_of_range
        watch = RangeWatch.for_model(metadata, observe_outside) if metadata else None
        self.batcher = MicroBatcher(_scoring(service.score, watch), settings.micro_batch_rows, observe_call)
        feeds_watch = FeedsRangeWatch.for_model(metadata, observe_outside) if metadata else None
        self.feed_batcher = MicroBatcher(
            _scoring(service.score_feeds, feeds_watch),
            settings.micro_batch_rows,
            observe_call,
            rows=feed_rows,
            join=join_feeds,
        )
        """A columns model's feeds, joined input by input; the array batcher is the Iris path's, unchanged."""
        self._training_shares = training_class_shares(metadata) if metadata else None
        self._drain_marker = str(drain_marker)
        self._card: ModelCard | None = None

    def start(self, loop: Any) -> None:
        """In the worker, before the first request: load and warm the model, attach the timers."""
        self.service.load()
        self.metrics.set_model_info(self.settings.model_runtime, self.service.ready)
        forget_dead_workers()
        if self.service.bundle is not None and self.service.ready:
            features = watched_features(self.service.bundle.metadata)
            self.metrics.watch_drift(features, self.service.class_names, self._training_shares)
        self.metrics.attach(loop.call_later)
        self.batcher.attach(loop)
        self.feed_batcher.attach(loop)

    # --- identity and readiness -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def version(self) -> str:
        return self.service.version

    @property
    def n_features(self) -> int:
        return self.service.n_features

    @property
    def class_names(self) -> list[str]:
        return self.service.class_names

    @property
    def is_regressor(self) -> bool:
        return self.service.is_regressor

    @property
    def features(self) -> FeatureReader:
        """The input schema's checks: named features, text columns, missing values."""
        return self.service.features

    @property
    def model_ready(self) -> bool:
        """The model is loaded and warm (what a model-level probe asks; draining is the server's)."""
        return self.service.ready

    def why_not_ready(self) -> str | None:
        """None when the worker should get traffic: model loaded and warm, no SIGTERM yet; else why not."""
        if os.path.exists(self._drain_marker):  # noqa: PTH110 - a stat per probe; the marker is a str path
            return DRAINING
        if not self.service.ready:
            return public_reason(self.service.reason)
        return None

    def require_model(self) -> Bundle:
        """The loaded model's bundle, or ModelNotReady."""
        service = self.service
        if service.predictor is None or service.bundle is None:
            raise ModelNotReady(public_reason(service.reason))
        return service.bundle

    def check_model(self, params: Mapping[str, str]) -> None:
        """404 unless a V1/V2 path names this model (and, when it names one, this version)."""
        service = self.service
        if params["name"] != service.name:
            raise NotFound(f"unknown model {params['name']!r}: this server serves {service.name!r}")
        version = params.get("version")
        if version is not None and version != service.version:
            raise NotFound(
                f"model {service.name!r} has no version {version!r}: this server serves {service.version!r}"
            )

    # --- scoring ----------------------------------------------------------------------------------

    def submit(self, rows: list[list[float]]) -> asyncio.Future[Scores]:
        """Check `rows` and queue them for this turn's model call; ModelNotReady if there is no model."""
        service = self.service
        if service.predictor is None:
            raise ModelNotReady(public_reason(service.reason))
        return self.batcher.score(service.rows_to_array(rows))

    def submit_array(self, rows: Batch) -> asyncio.Future[Scores]:
        """As `submit`, for rows a protocol has already made the model's input (`features.FeatureReader`)."""
        service = self.service
        if service.predictor is None:
            raise ModelNotReady(public_reason(service.reason))
        if isinstance(rows, dict):
            return self.feed_batcher.score(rows)
        return self.batcher.score(rows)

    def answers(self, scores: Scores) -> list[Prediction]:
        """The four keys per row (prediction, class_name, confidence, version); the rows are counted."""
        service = self.service
        confidences = service.confidences(scores)
        answers = service.predictions(scores.classes.tolist(), confidences)
        self.metrics.observe_scores(service.class_names, scores, confidences)
        return answers

    def value_answers(self, scores: Scores) -> list[ValuePrediction]:
        """A regressor's answer per row, `prediction` (its value) and `version`; the values are counted."""
        answers = self.service.value_predictions(scores)
        self.metrics.observe_values(scores)
        return answers

    def labels(self, scores: Scores) -> list[int | str] | list[int] | list[float]:
        """What the model predicts per row (its `classes_` values, or a regressor's values), counted."""
        self.observe(scores)
        if self.is_regressor:
            return plain_values(scores)
        labels = self.require_model().metadata.class_labels
        indexes: list[int] = scores.classes.tolist()
        return [labels[index] for index in indexes] if labels else list(indexes)

    def answers_with_probabilities(self, scores: Scores) -> list[ProbaPrediction]:
        """`answers` plus every class's probability (6 decimals), in class order."""
        # + 0.0: a boosting model's softmax can round to -0.0, which JSON would print as such
        probabilities = (np.round(scores.probabilities.astype(np.float64), 6) + 0.0).tolist()
        return [
            ProbaPrediction(answer.prediction, answer.class_name, answer.confidence, answer.version, row)
            for answer, row in zip(self.answers(scores), probabilities, strict=True)
        ]

    def observe(self, scores: Scores) -> Scores:
        """Count scores a protocol shapes itself (V1, V2) in the prediction metrics; return them."""
        service = self.service
        if service.is_regressor:
            self.metrics.observe_values(scores)
            return scores
        self.metrics.observe_scores(service.class_names, scores, service.confidences(scores))
        return scores

    # --- the model card ---------------------------------------------------------------------------

    def card(self) -> ModelCard:
        """The served model's card: the bundle's metadata with the display class names and version."""
        bundle = self.require_model()
        if self._card is None:
            self._card = _model_card(bundle, self.service, self.settings.model_runtime)
        return self._card

    def card_with_drift(self) -> ModelCard:
        """The card with the drift signals of every running worker, merged as /metrics merges them."""
        card = self.card()
        self.metrics.flush()
        samples = merged_samples(self.name, self.version)
        metadata = self.require_model().metadata
        features = watched_features(metadata)
        signals = drift_signals(samples, features, self.class_names, self._training_shares)
        return msgspec.structs.replace(card, drift=signals)


def _scoring(
    score: Callable[[Any], Scores], watch: RangeWatch | FeedsRangeWatch | None
) -> Callable[[Any], Scores]:
    """The model call a batcher makes: the model's, then (when the bundle has training ranges) its rows
    counted against them, once per call on the joined rows (an array, or a columns model's feeds)."""
    if watch is None:
        return score
    check = watch.check

    def score_and_check_ranges(rows: Any) -> Scores:
        scores = score(rows)
        check(rows)
        return scores

    return score_and_check_ranges


def public_reason(reason: str) -> str:
    """Why the model is not ready, as the open probes say it: file names without their folders, no hash.

    `/ready` answers anyone; the folders say how the pod is laid out and the digests which bundle it
    expects. The log line written when the bundle was refused keeps the whole reason.
    """
    return _HASH_PREFIX.sub("…", _FOLDERS.sub("", reason))


def _model_card(bundle: Bundle, service: ModelService, runtime: str) -> ModelCard:
    metadata = bundle.metadata
    features = [
        FeatureCard(spec.name, spec.min, spec.max, spec.mean, spec.kind, list(spec.categories), spec.missing)
        for spec in metadata.input_schema().features
    ]
    return ModelCard(
        name=metadata.name,
        version=service.version,
        created_at=metadata.created_at,
        description=metadata.description,
        runtime=runtime,
        class_names=service.class_names,
        features=features,
        samples=metadata.samples,
        metrics={key: metadata.metrics[key] for key in _SCALAR_METRICS if key in metadata.metrics},
        per_class=_per_class(metadata.metrics.get("per_class"), metadata.class_names),
        confusion_matrix=_matrix(metadata.metrics.get("confusion_matrix")),
        params=metadata.params,
        task=metadata.task,
    )


def _per_class(value: object, class_names: list[str]) -> list[ClassScores]:
    """metadata.json keys per-class scores by the training class names; the card lists them in order."""
    if not isinstance(value, Mapping):
        return []
    found = []
    for name in class_names:
        scores = value.get(name)
        if not isinstance(scores, Mapping):
            return []
        found.append(
            ClassScores(
                _float(scores.get("precision")),
                _float(scores.get("recall")),
                _float(scores.get("f1-score")),
                scores.get("support") if isinstance(scores.get("support"), int) else None,
            )
        )
    return found


def _matrix(value: object) -> list[list[int]]:
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        return []
    return [[int(count) for count in row] for row in value]


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
