"""The bundle format: every file hashed, format versioned, refusals that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkube.errors import BundleError
from mlkube.model.bundle import (
    METADATA_FILE,
    latest_bundle_path,
    list_bundles,
    next_version,
    read_bundle,
    sha256_file,
    version_key,
)
from tests.support import copy_bundle


def test_metadata_holds_what_the_issue_lists(bundle_copy: Path) -> None:
    metadata = json.loads((bundle_copy / METADATA_FILE).read_text())
    for key in (
        "name",
        "version",
        "created_at",
        "feature_names",
        "class_names",
        "n_features",
        "metrics",
        "library_versions",
        "data_sha256",
        "files",
        "format_version",
    ):
        assert key in metadata, key
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert metadata["n_features"] == 4
    assert set(metadata["files"]) == {
        "model.onnx",
        "model.skops",
        "report.md",
        "confusion_matrix.png",
        "feature_importance.png",
    }
    for name, digest in metadata["files"].items():
        assert sha256_file(bundle_copy / name) == digest
    for key in ("accuracy", "f1_macro", "confusion_matrix", "per_class"):
        assert key in metadata["metrics"]


@pytest.mark.parametrize("file_name", ["model.onnx", "model.skops"])
def test_one_changed_byte_refuses_to_load_and_names_the_file(bundle_copy: Path, file_name: str) -> None:
    path = bundle_copy / file_name
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{file_name}: sha256 mismatch"):
        read_bundle(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model.onnx: missing from the bundle"):
        read_bundle(bundle_copy)


def test_truncated_metadata_is_refused(bundle_copy: Path) -> None:
    text = (bundle_copy / METADATA_FILE).read_text()
    (bundle_copy / METADATA_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(BundleError, match=r"metadata.json: not a valid bundle metadata file"):
        read_bundle(bundle_copy)


def test_unknown_format_version_is_refused(bundle_copy: Path) -> None:
    metadata = json.loads((bundle_copy / METADATA_FILE).read_text())
    metadata["format_version"] = 99
    (bundle_copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match=r"bundle format version 99 is not supported"):
        read_bundle(bundle_copy)


def test_listed_file_outside_the_folder_is_refused(bundle_copy: Path) -> None:
    metadata = json.loads((bundle_copy / METADATA_FILE).read_text())
    metadata["files"]["../../etc/passwd"] = "0" * 64
    (bundle_copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match=r"leaves the bundle folder"):
        read_bundle(bundle_copy)


def test_versions_count_up_numerically(tmp_path: Path, bundle_copy: Path) -> None:
    for version in ("v2", "v10"):
        copy_bundle(bundle_copy, tmp_path / "iris" / version)
    assert next_version(tmp_path, "iris") == "v11"
    assert latest_bundle_path(tmp_path, "iris").name == "v10"
    assert sorted(["v10", "v2", "v1", "candidate"], key=version_key) == ["v1", "v2", "v10", "candidate"]
    assert [m.version for m in list_bundles(tmp_path)] == ["v1", "v1", "v1"]  # copies keep their metadata


def test_no_bundle_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"run `mlkube train` first"):
        latest_bundle_path(tmp_path, "iris")
