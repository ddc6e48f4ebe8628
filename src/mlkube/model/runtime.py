"""The model adapter serving runs: `load()` once, then `predict()` is pure and knows nothing of HTTP.

ONNX Runtime is the default (about 6 µs a row, no scikit-learn in the image). MODEL_RUNTIME=sklearn loads
the fitted estimator from its skops file instead, for models ONNX cannot express; it needs the training
extras and refuses a file holding any type outside a short allowlist.

Each worker reads its model file once into memory, checks those bytes against the sha256 in the verified
metadata and builds the model from the same bytes: a file replaced after the master verified the bundle (a
worker respawned later reads the disk again) is refused, never loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mlkube.errors import BundleError
from mlkube.model.bundle import ONNX_FILE, SKOPS_FILE, Bundle

# skops reports these as "untrusted" only because they are not on its default list; they are plain
# scikit-learn tree containers that a RandomForest needs. Anything else refuses to load.
TRUSTED_SKOPS_TYPES = frozenset({"sklearn.tree._tree.Tree"})


@dataclass(frozen=True)
class Scores:
    """Per row: the class index and the probability of every class."""

    classes: NDArray[np.int64]
    probabilities: NDArray[np.float32]


class Predictor(Protocol):
    runtime: str

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        """Score `rows` of shape [n, n_features] (already validated, float32)."""
        ...


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
        model = bundle.read_verified(ONNX_FILE)
        try:
            self._session = onnx_session_from_bytes(model)
        except Exception as error:
            raise BundleError(f"{bundle.file(ONNX_FILE)}: ONNX Runtime cannot load it ({error})") from error
        self._input = self._session.get_inputs()[0].name
        self._check_shape(bundle)

    def _check_shape(self, bundle: Bundle) -> None:
        width = self._session.get_inputs()[0].shape[-1]
        if isinstance(width, int) and width != bundle.metadata.n_features:
            raise BundleError(
                f"{bundle.file(ONNX_FILE)}: takes {width} features, metadata.json says "
                f"{bundle.metadata.n_features}"
            )

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        labels, probabilities = self._session.run(["label", "probabilities"], {self._input: rows})
        return Scores(np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32))


class SklearnPredictor:
    runtime = "sklearn"

    def __init__(self, bundle: Bundle) -> None:
        self._estimator = load_skops(bundle)

    def predict(self, rows: NDArray[np.float32]) -> Scores:
        probabilities = self._estimator.predict_proba(rows)
        return Scores(
            np.asarray(self._estimator.predict(rows), dtype=np.int64),
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


def load_predictor(bundle: Bundle, runtime: str) -> Predictor:
    """Build the predictor for `runtime` and prove it answers with one warm-up row."""
    predictor: Predictor = SklearnPredictor(bundle) if runtime == "sklearn" else OnnxPredictor(bundle)
    warm_up(predictor, bundle)
    return predictor


def warm_up(predictor: Predictor, bundle: Bundle) -> None:
    """Score one row of training means; a model that cannot do that must not take traffic."""
    means = [stat.mean for stat in bundle.metadata.features] or [0.0] * bundle.metadata.n_features
    scores = predictor.predict(np.asarray([means], dtype=np.float32))
    if scores.probabilities.shape != (1, bundle.metadata.n_classes):
        raise BundleError(
            f"{bundle.path}: the model answers {scores.probabilities.shape[-1]} class probabilities, "
            f"metadata.json lists {bundle.metadata.n_classes} classes"
        )
