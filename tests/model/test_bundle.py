"""The bundle format: every file hashed, format versioned, refusals that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkube.errors import BundleError
from mlkube.model.bundle import (
    METADATA_FILE,
    ONNX_FILE,
    bundle_digest,
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


def rewrite_model_and_its_hash(bundle: Path) -> None:
    """The tampering the hashes alone cannot catch: a new model.onnx and metadata.json vouching for it."""
    data = bytearray((bundle / ONNX_FILE).read_bytes())
    data[-1] ^= 0x01
    (bundle / ONNX_FILE).write_bytes(bytes(data))
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    metadata["files"][ONNX_FILE] = sha256_file(bundle / ONNX_FILE)
    (bundle / METADATA_FILE).write_text(json.dumps(metadata))


def test_the_digest_is_the_sha256_of_metadata_json(bundle_copy: Path) -> None:
    digest = sha256_file(bundle_copy / METADATA_FILE)
    assert bundle_digest(bundle_copy) == digest
    assert read_bundle(bundle_copy).digest == digest
    assert read_bundle(bundle_copy, expected_digest=digest.upper()).digest == digest


def test_a_pinned_digest_refuses_a_model_rewritten_with_its_hash(bundle_copy: Path) -> None:
    pinned = bundle_digest(bundle_copy)
    rewrite_model_and_its_hash(bundle_copy)
    read_bundle(bundle_copy)  # the hashes alone agree with the rewritten file
    with pytest.raises(BundleError, match=r"metadata.json: bundle digest mismatch \(MODEL_SHA256 pins"):
        read_bundle(bundle_copy, expected_digest=pinned)


def test_only_v_n_folders_are_chosen_as_newest(tmp_path: Path, bundle_copy: Path) -> None:
    for version in ("v2", "old-backup", "v10-rc", "zz"):
        copy_bundle(bundle_copy, tmp_path / "iris" / version)
    assert latest_bundle_path(tmp_path, "iris").name == "v2"


def test_no_numbered_version_names_the_folders_found(tmp_path: Path, bundle_copy: Path) -> None:
    copy_bundle(bundle_copy, tmp_path / "pets" / "old-backup")
    with pytest.raises(BundleError, match=r"only old-backup, not named v<N>"):
        latest_bundle_path(tmp_path, "pets")


def test_a_model_name_that_leaves_the_model_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"invalid model name '../x/iris'"):
        latest_bundle_path(tmp_path, "../x/iris")


def test_a_version_folder_linked_outside_the_model_dir_is_refused(tmp_path: Path, bundle_copy: Path) -> None:
    root = tmp_path / "iris"  # bundle_copy is <tmp>/iris/v1; the model dir is elsewhere
    model_dir = tmp_path / "served"
    (model_dir / "iris").mkdir(parents=True)
    (model_dir / "iris" / "v1").symlink_to(root / "v1", target_is_directory=True)
    folder = latest_bundle_path(model_dir, "iris")
    with pytest.raises(BundleError, match=r"the bundle folder is a link that leads outside"):
        read_bundle(folder, boundary=model_dir)


@pytest.mark.parametrize("file_name", [METADATA_FILE, ONNX_FILE])
def test_a_file_linked_outside_the_model_dir_is_refused(
    tmp_path: Path, bundle_copy: Path, file_name: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (bundle_copy / file_name).rename(outside / file_name)
    (bundle_copy / file_name).symlink_to(outside / file_name)
    with pytest.raises(BundleError, match=rf"{file_name}: {file_name} is a link that leads outside"):
        read_bundle(bundle_copy, boundary=tmp_path / "iris")


def test_links_that_stay_inside_the_model_dir_are_followed(tmp_path: Path, bundle_copy: Path) -> None:
    """Kubernetes mounts volumes as links into a `..data` folder beside the files: those must keep working."""
    data = bundle_copy / "..data"
    data.mkdir()
    (bundle_copy / ONNX_FILE).rename(data / ONNX_FILE)
    (bundle_copy / ONNX_FILE).symlink_to(Path("..data") / ONNX_FILE)
    assert read_bundle(bundle_copy, boundary=tmp_path).metadata.name == "iris"


def test_read_verified_refuses_a_file_replaced_after_the_bundle_was_read(bundle_copy: Path) -> None:
    bundle = read_bundle(bundle_copy)
    assert bundle.read_verified(ONNX_FILE) == (bundle_copy / ONNX_FILE).read_bytes()
    rewrite_model_and_its_hash(bundle_copy)  # the metadata in memory is the one that was verified
    with pytest.raises(BundleError, match=r"model.onnx: sha256 mismatch"):
        bundle.read_verified(ONNX_FILE)


def test_read_verified_refuses_a_file_the_metadata_does_not_list(bundle_copy: Path) -> None:
    with pytest.raises(BundleError, match=r"does not list model.pkl, so it cannot be verified"):
        read_bundle(bundle_copy).read_verified("model.pkl")
