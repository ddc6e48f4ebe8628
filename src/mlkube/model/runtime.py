"""The model adapter serving runs: `load()` once, then `predict()` is pure and knows nothing of HTTP.

ONNX Runtime is the default (about 6 µs a row, no scikit-learn in the image). MODEL_RUNTIME=sklearn loads
the fitted estimator from its skops file instead, for models ONNX cannot express; it needs the training
extras and refuses a file holding any type outside a short allowlist.

Each worker reads its model file once into memory, checks those bytes against the sha256 in the verified
metadata and builds the model from the same bytes: a file replaced after the master verified the bundle (a
worker respawned later reads the disk again) is refused, never loaded.

`predict(rows)` takes the float32 matrix of a `tensor` bundle (Iris); `predict_feeds(feeds)` takes what
`feeds.onnx_feeds` builds from the input schema, for any bundle (text columns, one input per column).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mlkube.errors import BundleError
from mlkube.model.bundle import CATEGORY, ONNX_FILE, SKOPS_FILE, TENSOR_LAYOUT, Bundle
from mlkube.model.feeds import onnx_feeds, typical_columns

# skops reports these as "untrusted" only because they are not on its default list; they are scikit-learn's
# own fitted containers (trees, boosting predictors, neighbour indexes and their metric, MLP optimisers) and
# numpy's dtype, found in the estimators mlkube trains and the zoo imports. Anything else refuses to load
# unless named on `mlkube import`'s command line (--trust); this list lives in mlkube, never in a model file.
TRUSTED_SKOPS_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "numpy.dtype",
    }
)


@dataclass(frozen=True)
class Scores:
    """Per row: the class index and the probability of every class; or, from a regressor, its value.

    A regressor's Scores have `values` and empty `classes` and `probabilities` (shape [n, 0]).
    """

    classes: NDArray[np.int64]
    probabilities: NDArray[np.float32]
    values: NDArray[np.float32] | None = None

    @classmethod
    def regression(cls, values: NDArray[Any]) -> Scores:
        flat = np.asarray(values, dtype=np.float32).reshape(-1)
        empty = np.zeros((len(flat), 0), dtype=np.float32)
        return cls(np.zeros(0, dtype=np.int64), empty, flat)


class Predictor(Protocol):
    runtime: str

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        """Score `rows` of shape [n, n_features] (already validated, float32) of a `tensor` bundle."""
        ...

    def predict_feeds(self, feeds: Mapping[str, Any]) -> Scores:
        """Score the feeds `feeds.onnx_feeds` built from the bundle's input schema."""
        ...


class ClassIndex:
    """Turns the labels a model predicts (its `classes_` values) into class indexes 0..k-1."""

    def __init__(self, labels: list[int | str]) -> None:
        self.identity = not labels or labels == list(range(len(labels)))
        self._lookup = {str(label): index for index, label in enumerate(labels)}

    def __call__(self, predicted: Any) -> NDArray[np.int64]:
        array = np.asarray(predicted).reshape(-1)
        if self.identity and array.dtype.kind in "iu":
            return array.astype(np.int64, copy=False)
        try:
            return np.asarray([self._lookup[str(_plain(value))] for value in array], dtype=np.int64)
        except KeyError as error:
            raise BundleError(f"the model predicted a label outside its classes: {error}") from None


def _plain(value: Any) -> Any:
    """1.0 from a float label array is the class 1; numpy scalars print as their Python value."""
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def onnx_session_from_bytes(model: bytes) -> Any:
    """A single-threaded session: the server scales with processes, and spinning threads waste the CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    runtime = "onnx"

    def __init__(self, bundle: Bundle) -> None:
        metadata = bundle.metadata
        if ONNX_FILE not in metadata.files:
            raise BundleError(
                f"{bundle.path}: holds no {ONNX_FILE} (ONNX could not express this model when it was "
                "imported): serve it with MODEL_RUNTIME=sklearn"
            )
        model = bundle.read_verified(ONNX_FILE)
        try:
            self._session = onnx_session_from_bytes(model)
        except Exception as error:
            raise BundleError(f"{bundle.file(ONNX_FILE)}: ONNX Runtime cannot load it ({error})") from error
        self._input = self._session.get_inputs()[0].name
        self._regressor = metadata.is_regressor
        outputs = metadata.outputs
        self._outputs = [outputs.value] if self._regressor else [outputs.label, outputs.probabilities]
        self._class_index = ClassIndex(metadata.class_labels)
        self._plain_classifier = not self._regressor and self._class_index.identity
        self._check_shape(bundle)

    def _check_shape(self, bundle: Bundle) -> None:
        if bundle.metadata.input_schema().layout != TENSOR_LAYOUT:
            return
        width = self._session.get_inputs()[0].shape[-1]
        if isinstance(width, int) and width != bundle.metadata.n_features:
            raise BundleError(
                f"{bundle.file(ONNX_FILE)}: takes {width} features, metadata.json says "
                f"{bundle.metadata.n_features}"
            )

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        if self._plain_classifier:  # the Iris path, per request: no label mapping, no feed copy
            labels, probabilities = self._session.run(self._outputs, {self._input: rows})
            return Scores(np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32))
        return self.predict_feeds({self._input: rows})

    def predict_feeds(self, feeds: Mapping[str, Any]) -> Scores:
        answers = self._session.run(self._outputs, dict(feeds))
        if self._regressor:
            return Scores.regression(answers[0])
        labels, probabilities = answers
        return Scores(self._class_index(labels), np.asarray(probabilities, dtype=np.float32))


class SklearnPredictor:
    runtime = "sklearn"

    def __init__(self, bundle: Bundle) -> None:
        self._estimator = load_skops(bundle)
        self._schema = bundle.metadata.input_schema()
        self._regressor = bundle.metadata.is_regressor
        self._class_index = ClassIndex(bundle.metadata.class_labels)
        self._named = hasattr(self._estimator, "feature_names_in_")

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        if self._named:
            import pandas as pd

            return self._score(pd.DataFrame(rows, columns=[spec.name for spec in self._schema.features]))
        return self._score(rows)

    def predict_feeds(self, feeds: Mapping[str, Any]) -> Scores:
        if self._schema.layout == TENSOR_LAYOUT:
            return self.predict(next(iter(feeds.values())))
        import pandas as pd

        columns = {}
        for spec in self._schema.features:
            values = np.asarray(feeds[spec.onnx_input]).reshape(-1)
            columns[spec.name] = values.astype(object) if spec.kind == CATEGORY else values.astype(np.float64)
        return self._score(pd.DataFrame(columns))

    def _score(self, table: Any) -> Scores:
        if self._regressor:
            return Scores.regression(self._estimator.predict(table))
        probabilities = self._estimator.predict_proba(table)
        return Scores(
            self._class_index(self._estimator.predict(table)),
            np.asarray(probabilities, dtype=np.float32),
        )


def load_skops(bundle: Bundle) -> Any:
    """The estimator from the verified bytes of model.skops (which metadata.json must list)."""
    path = bundle.file(SKOPS_FILE)
    try:
        import skops.io
    except ImportError:
        raise BundleError(
            "MODEL_RUNTIME=sklearn needs the training extras: pip install 'mlkube[train]'"
        ) from None
    data = bundle.read_verified(SKOPS_FILE)
    try:
        untrusted = set(skops.io.get_untrusted_types(data=data))
    except Exception as error:  # noqa: BLE001 - zipfile, json and skops errors all mean "not a skops file"
        raise BundleError(f"{path}: not a readable skops file ({error})") from None
    refused = sorted(untrusted - TRUSTED_SKOPS_TYPES)
    if refused:
        raise BundleError(f"{path}: holds types mlkube does not trust: {', '.join(refused)}")
    return skops.io.loads(data, trusted=sorted(untrusted))


def load_predictor(bundle: Bundle, runtime: str, *, any_schema: bool = False) -> Predictor:
    """Build the predictor for `runtime` and prove it answers with one warm-up row.

    A caller that feeds only `predict(rows)` and reads classes (the server before the data plane) gets a
    refusal at load for a regressor or a one-input-per-column bundle, never an error per request;
    `any_schema=True` is for callers that build feeds from the input schema and handle `Scores.values`.
    """
    if not any_schema:
        require_tensor_classifier(bundle)
    predictor: Predictor = SklearnPredictor(bundle) if runtime == "sklearn" else OnnxPredictor(bundle)
    warm_up(predictor, bundle)
    return predictor


def require_tensor_classifier(bundle: Bundle) -> None:
    metadata = bundle.metadata
    if metadata.is_regressor:
        raise BundleError(f"{bundle.path}: a regressor; this server answers with classes")
    if metadata.input_schema().layout != TENSOR_LAYOUT:
        raise BundleError(
            f"{bundle.path}: takes one input per column (text features); this server feeds one tensor"
        )


def warm_up(predictor: Predictor, bundle: Bundle) -> None:
    """Score one typical row; a model that cannot do that must not take traffic."""
    metadata = bundle.metadata
    if metadata.inputs is None:
        means = [stat.mean for stat in metadata.features] or [0.0] * metadata.n_features
        scores = predictor.predict(np.asarray([means], dtype=np.float32))
    else:
        scores = predictor.predict_feeds(onnx_feeds(metadata.inputs, typical_columns(metadata.inputs)))
    if metadata.is_regressor:
        if scores.values is None or scores.values.shape != (1,):
            raise BundleError(f"{bundle.path}: the regressor does not answer one value per row")
        return
    if scores.probabilities.shape != (1, metadata.n_classes):
        raise BundleError(
            f"{bundle.path}: the model answers {scores.probabilities.shape[-1]} class probabilities, "
            f"metadata.json lists {metadata.n_classes} classes"
        )
