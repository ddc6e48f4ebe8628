"""The serving runtimes: ONNX by default, skops-loaded scikit-learn on request, pickle never."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import skops.io

from mlkube.errors import BundleError
from mlkube.model.bundle import ONNX_FILE, SKOPS_FILE, Bundle, read_bundle
from mlkube.model.runtime import load_predictor, load_skops
from tests.support import edit_metadata, rehash


def test_onnx_runtime_scores_the_notes_row(iris_bundle: Bundle) -> None:
    scores = load_predictor(iris_bundle, "onnx").predict(np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    assert scores.classes.tolist() == [0]
    assert scores.probabilities.shape == (1, 3)


def test_sklearn_runtime_gives_the_same_answer(iris_bundle: Bundle) -> None:
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    onnx = load_predictor(iris_bundle, "onnx").predict(rows)
    sklearn = load_predictor(iris_bundle, "sklearn").predict(rows)
    assert onnx.classes.tolist() == sklearn.classes.tolist()


def rehashed(bundle_dir: Path) -> Bundle:
    """The bundle with the skops file's hash rewritten: only the skops type check stands in the way."""
    rehash(bundle_dir, SKOPS_FILE)
    return read_bundle(bundle_dir)


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle was executed",))


def test_skops_file_with_untrusted_types_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / SKOPS_FILE).write_bytes(
        skops.io.dumps({"callable": np.ones(2), "estimator": pickle.loads})
    )
    with pytest.raises(BundleError, match="holds types mlkube does not trust"):
        load_skops(rehashed(bundle_copy))


def test_a_pickle_in_place_of_the_skops_file_is_never_executed(
    bundle_copy: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (bundle_copy / SKOPS_FILE).write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(BundleError, match=r"model\.skops: not a readable skops file"):
        load_skops(rehashed(bundle_copy))
    assert "pickle was executed" not in capfd.readouterr().out


def test_the_sklearn_runtime_loads_only_a_listed_skops_file(bundle_copy: Path) -> None:
    """Deleting model.skops from `files` must not let an unverified estimator load."""
    files = dict(read_bundle(bundle_copy).metadata.files)
    del files[SKOPS_FILE]
    edit_metadata(bundle_copy, files=files)
    bundle = read_bundle(bundle_copy)  # every listed file is fine
    with pytest.raises(BundleError, match=r"does not list model.skops, so it cannot be verified"):
        load_predictor(bundle, "sklearn")


@pytest.mark.parametrize(("runtime", "file_name"), [("onnx", ONNX_FILE), ("sklearn", SKOPS_FILE)])
def test_a_model_file_swapped_after_verification_is_never_loaded(
    bundle_copy: Path, runtime: str, file_name: str
) -> None:
    """What a respawned worker meets: a verified bundle in memory, a different file on disk."""
    bundle = read_bundle(bundle_copy)
    (bundle_copy / file_name).write_bytes((bundle_copy / file_name).read_bytes() + b"\0")
    with pytest.raises(BundleError, match=rf"{file_name}: sha256 mismatch"):
        load_predictor(bundle, runtime)
