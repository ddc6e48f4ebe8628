"""No pickle is ever loaded at serving time: a malicious pickle planted where a bundle file should be, with
hashes that match, is refused and never executed (its payload would create a marker file).

tests/model/test_runtime.py proves it of the skops loader in-process; these prove it of the real server.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import skops.io

from mlkube.model.bundle import ONNX_FILE, SKOPS_FILE, Bundle
from mlkube.model.runtime import TRUSTED_SKOPS_TYPES
from tests.reliability.report import record
from tests.support import NOTES_ROW, rehash, start_server


class CreatesFile:
    """Unpickling this runs `open(path, "w")`: the marker file appears if the pickle is ever executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def plant(bundle: Path, file_name: str, data: bytes) -> None:
    """Write `data` as `file_name` and list it in metadata.json with its true hash."""
    (bundle / file_name).write_bytes(data)
    rehash(bundle, file_name)


def test_the_payload_is_live_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    pickle.loads(pickle.dumps(CreatesFile(marker))).close()  # noqa: S301 - proving the payload works
    assert marker.exists()


@pytest.mark.parametrize(
    ("file_name", "runtime", "reason"),
    [
        (ONNX_FILE, "onnx", "ONNX Runtime cannot load it"),
        (SKOPS_FILE, "sklearn", "not a readable skops file"),
    ],
)
def test_a_pickle_in_place_of_a_model_file_is_refused_and_never_executed(
    bundle_copy: Path, tmp_path: Path, file_name: str, runtime: str, reason: str
) -> None:
    bundle = bundle_copy
    marker = tmp_path / "executed"
    plant(bundle, file_name, pickle.dumps(CreatesFile(marker)))
    with start_server({"MODEL_BUNDLE": str(bundle), "WORKERS": "1", "MODEL_RUNTIME": runtime}) as server:
        ready = server.client.get("/ready")
        predict = server.client.post("/predict", json={"features": NOTES_ROW})
    record(f"pickle_as_{file_name}", ready_status=ready.status_code, marker_created=marker.exists())
    assert ready.status_code == 503
    assert reason in ready.json()["reason"]
    assert predict.status_code == 503
    assert not marker.exists()


def test_pickle_and_joblib_files_beside_the_model_are_never_loaded(bundle_copy: Path, tmp_path: Path) -> None:
    bundle = bundle_copy
    marker = tmp_path / "executed"
    for name in ("model.pkl", "model.joblib", "model.pickle"):
        plant(bundle, name, pickle.dumps(CreatesFile(marker)))
    for runtime in ("onnx", "sklearn"):
        with start_server({"MODEL_BUNDLE": str(bundle), "WORKERS": "1", "MODEL_RUNTIME": runtime}) as server:
            assert server.client.post("/predict", json={"features": NOTES_ROW}).status_code == 200
    assert not marker.exists()


def test_the_trained_skops_file_holds_no_type_outside_the_allowlist(iris_bundle: Bundle) -> None:
    untrusted = set(skops.io.get_untrusted_types(file=iris_bundle.file(SKOPS_FILE)))
    record("skops_untrusted_types", types=sorted(untrusted), allowlist=sorted(TRUSTED_SKOPS_TYPES))
    assert untrusted <= TRUSTED_SKOPS_TYPES
