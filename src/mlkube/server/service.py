"""The model service: the loaded model, its rows checked and scored, the simple API's answer per row.

Knows nothing of HTTP; the data plane (`dataplane.py`) drives it for every route.

`load()` builds the predictor and proves it with a warm-up row; until that passes, `ready` is False and
`reason` says why, so a bad bundle keeps a pod out of the Service instead of crashing it in a loop.
"""

from __future__ import annotations

import logging
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.api.numbers import FLOAT32_MAX
from mlkube.api.simple import Prediction, ValuePrediction
from mlkube.errors import InvalidInput, MlkubeError
from mlkube.model.bundle import Bundle, InputSchema
from mlkube.model.runtime import Predictor, Scores, load_predictor
from mlkube.server.features import FeatureReader
from mlkube.settings import Settings

log = logging.getLogger("mlkube.server")
_OUT_OF_RANGE = f"feature values must lie within ±{FLOAT32_MAX:.3e}"


class ModelService:
    def __init__(self, settings: Settings, bundle: Bundle | None, load_error: str | None = None) -> None:
        self.settings = settings
        self.bundle = bundle
        self.reason = load_error or "model not loaded yet"
        self.predictor: Predictor | None = None
        self.class_names: list[str] = []
        self.version = settings.model_version or (bundle.metadata.version if bundle else "unknown")
        self.name = bundle.metadata.name if bundle else settings.model_name
        self.n_features = bundle.metadata.n_features if bundle else 0
        self.is_regressor = bundle.metadata.is_regressor if bundle else False
        schema = bundle.metadata.input_schema() if bundle else InputSchema()
        self.features = FeatureReader(schema, settings.max_batch_size)
        """Checks named features and text columns against the input schema (the Iris list path never does)."""

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def load(self) -> None:
        """Load the predictor; on failure stay not-ready with one log line naming the problem."""
        if self.bundle is None:
            return  # the runner refused the bundle and said why, once: not once more per worker
        try:
            self.class_names = self._display_class_names(self.bundle)
            self.predictor = load_predictor(self.bundle, self.settings.model_runtime, any_schema=True)
        except MlkubeError as error:
            self.reason = str(error)
            log.error("model not loaded: %s", self.reason)

    def _display_class_names(self, bundle: Bundle) -> list[str]:
        configured = self.settings.class_names
        if configured is None:
            return list(bundle.metadata.class_names)
        if len(configured) != bundle.metadata.n_classes:
            raise MlkubeError(
                f"CLASS_NAMES lists {len(configured)} names but model {bundle.metadata.name} "
                f"{bundle.metadata.version} has {bundle.metadata.n_classes} classes "
                f"({', '.join(bundle.metadata.class_names)})"
            )
        return list(configured)

    def rows_to_array(self, rows: list[list[float]]) -> NDArray[np.float32]:
        """Check the batch size, the width of every row and the float32 range; return the model's input."""
        if not rows:
            raise InvalidInput("no rows to score: send at least one")
        if len(rows) > self.settings.max_batch_size:
            raise InvalidInput(f"{len(rows)} rows is more than MAX_BATCH_SIZE={self.settings.max_batch_size}")
        self._check_widths(rows)
        if len(rows) == 1:  # a single row: checking 4 Python floats beats numpy's per-call overhead
            row = rows[0]
            if not (min(row) >= -FLOAT32_MAX and max(row) <= FLOAT32_MAX):
                raise InvalidInput(_OUT_OF_RANGE)
            return np.array(rows, dtype=np.float32)
        values = chain.from_iterable(rows)  # flat: numpy builds it twice as fast as from nested lists
        with np.errstate(over="ignore"):  # values beyond float32's range become ±inf, refused just below
            array = np.fromiter(values, dtype=np.float32, count=len(rows) * self.n_features)
        if not np.isfinite(array).all():
            raise InvalidInput(_OUT_OF_RANGE)
        return array.reshape(len(rows), self.n_features)

    def _check_widths(self, rows: list[list[float]]) -> None:
        width = self.n_features
        if (len(rows) == 1 and len(rows[0]) == width) or set(map(len, rows)) == {width}:
            return
        for index, row in enumerate(rows):
            if len(row) != width:
                where = f"row {index}" if len(rows) > 1 else "features"
                raise InvalidInput(f"{where} has {len(row)} values, expected {width}")

    def score(self, rows: NDArray[np.float32]) -> Scores:
        if self.predictor is None:
            raise MlkubeError(f"model not ready: {self.reason}")
        return self.predictor.predict(rows)

    def score_feeds(self, feeds: dict[str, NDArray[Any]]) -> Scores:
        """A columns model's feeds, one [rows, 1] array per graph input (`features.FeatureReader`)."""
        if self.predictor is None:
            raise MlkubeError(f"model not ready: {self.reason}")
        return self.predictor.predict_feeds(feeds)

    @staticmethod
    def confidences(scores: Scores) -> list[float]:
        """The top probability per row, to 6 decimals (float32 sums of tree votes give 1.0000001)."""
        probabilities = scores.probabilities
        if len(probabilities) == 1:  # a single row: plain Python beats numpy's per-call overhead
            return [round(max(probabilities[0].tolist()), 6)]
        top: NDArray[np.float64] = probabilities.max(axis=1).astype(np.float64)
        return np.round(top, 6).tolist()  # type: ignore[no-any-return]

    def predictions(self, classes: list[int], confidences: list[float]) -> list[Prediction]:
        """The simple API's four keys per row."""
        names = self.class_names
        version = self.version
        return [
            Prediction(index, names[index], confidence, version)
            for index, confidence in zip(classes, confidences, strict=True)
        ]

    def value_predictions(self, scores: Scores) -> list[ValuePrediction]:
        """A regressor's answer per row: its value and the version."""
        version = self.version
        return [ValuePrediction(value, version) for value in plain_values(scores)]


def plain_values(scores: Scores) -> list[float]:
    """A regressor's float32 values as the shortest decimals that read back as the same float32."""
    values = scores.values
    if values is None:
        return []
    return [float(str(value)) for value in values]
