"""Broken bundles: the server stays alive but never ready, logs one line naming the problem, /ready says why.

tests/server/test_lifecycle.py covers a tampered file (hash mismatch), no bundle at all and CLASS_NAMES that
disagree with the model; these are the other ways a bundle can be wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlkube.model.bundle import METADATA_FILE, ONNX_FILE
from tests.reliability.report import record
from tests.support import NOTES_ROW, edit_metadata, rehash, start_server

Breakage = Callable[[Path], None]


def delete_model_file(bundle: Path) -> None:
    (bundle / ONNX_FILE).unlink()


def delete_metadata(bundle: Path) -> None:
    (bundle / METADATA_FILE).unlink()


def truncate_metadata(bundle: Path) -> None:
    text = (bundle / METADATA_FILE).read_bytes()
    (bundle / METADATA_FILE).write_bytes(text[: len(text) // 2])


def truncate_model_and_rehash(bundle: Path) -> None:
    data = (bundle / ONNX_FILE).read_bytes()
    (bundle / ONNX_FILE).write_bytes(data[: len(data) // 2])
    rehash(bundle, ONNX_FILE)


def unknown_model_format(bundle: Path) -> None:
    (bundle / ONNX_FILE).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    rehash(bundle, ONNX_FILE)


def future_format_version(bundle: Path) -> None:
    edit_metadata(bundle, format_version=99)


def five_features_in_metadata(bundle: Path) -> None:
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    edit_metadata(bundle, n_features=5, feature_names=[*metadata["feature_names"], "petal colour"])


def two_classes_in_metadata(bundle: Path) -> None:
    edit_metadata(bundle, class_names=["setosa", "versicolor"])


BROKEN = [
    pytest.param(delete_model_file, "model.onnx: missing from the bundle", id="model-file-missing"),
    pytest.param(delete_metadata, "metadata.json: missing (is", id="metadata-missing"),
    pytest.param(truncate_metadata, "not a valid bundle metadata file", id="metadata-truncated"),
    pytest.param(truncate_model_and_rehash, "ONNX Runtime cannot load it", id="model-truncated-hash-updated"),
    pytest.param(unknown_model_format, "ONNX Runtime cannot load it", id="model-of-unknown-format"),
    pytest.param(future_format_version, "bundle format version 99 is not supported", id="format-version-99"),
    pytest.param(five_features_in_metadata, "takes 4 features, metadata.json says 5", id="feature-count"),
    pytest.param(two_classes_in_metadata, "3 class probabilities, metadata.json lists 2", id="class-count"),
]


@pytest.mark.parametrize(("breakage", "reason"), BROKEN)
def test_a_broken_bundle_is_never_ready_and_says_why_once(
    bundle_copy: Path, breakage: Breakage, reason: str
) -> None:
    bundle = bundle_copy
    breakage(bundle)
    with start_server({"MODEL_BUNDLE": str(bundle), "WORKERS": "1"}) as server:
        assert server.client.get("/health").json() == {"status": "healthy"}
        ready = server.client.get("/ready")
        predict = server.client.post("/predict", json={"features": NOTES_ROW})
        server.wait_for_log('"path":"/predict"')
        errors = [line for line in server.log_lines() if '"level":"ERROR"' in line]

    record(f"bad_bundle[{breakage.__name__}]", ready_status=ready.status_code, reason=ready.json()["reason"])
    assert ready.status_code == 503
    assert reason in ready.json()["reason"]
    assert predict.status_code == 503
    assert reason in predict.json()["error"]
    assert len(errors) == 1, errors
    assert reason in errors[0]
