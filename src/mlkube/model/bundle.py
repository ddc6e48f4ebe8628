"""The model bundle: one folder per version, every file hashed in `metadata.json`.

Layout: `<root>/<name>/<version>/{model.onnx, model.skops, metadata.json, ...}`. Reading a bundle verifies
the format version and the sha256 of every file it lists, and fails with a message naming the file.

The bundle's digest is the sha256 of `metadata.json`'s bytes: that file lists the sha256 of every other file,
so the digest pins the whole bundle. Pinned outside the folder (MODEL_SHA256), it turns the hashes from a
check against corruption into one against tampering: rewriting a file and its hash changes the digest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from mlkube.errors import BundleError

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
SKOPS_FILE = "model.skops"
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""Model names and versions: they become folder names, so no separators and no leading dot."""
_VERSION_PATTERN = re.compile(r"^v(\d+)$")
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN)


class FeatureStats(msgspec.Struct, frozen=True):
    """Range of one feature in the training data (for validation hints and the model page)."""

    name: str
    min: float
    max: float
    mean: float


NUMBER = "number"
CATEGORY = "category"
TENSOR_LAYOUT = "tensor"
COLUMNS_LAYOUT = "columns"


class FeatureSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One input feature: what a request may send for it and what the ONNX graph is fed.

    A number has its training range (when known); a category lists the values seen in training, and
    anything else is unknown to the model. `missing`: the model imputes an absent value (a number is
    fed as NaN, a category as ""). `onnx_input` names the graph input of the `columns` layout.
    """

    name: str
    kind: str = NUMBER
    categories: list[str] = []
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    missing: bool = False
    onnx_input: str = ""


class InputSchema(msgspec.Struct, frozen=True, kw_only=True):
    """How the features reach the ONNX graph.

    `tensor`: one float32 input (`tensor_input`) of shape [N, len(features)], features in order (Iris).
    `columns`: one input per feature (`FeatureSpec.onnx_input`) of shape [N, 1]: float32 for a number,
    string for a category; skl2onnx needs this for string columns and for a ColumnTransformer by name.
    """

    layout: str = TENSOR_LAYOUT
    tensor_input: str = "X"
    features: list[FeatureSpec] = []


class OnnxOutputs(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Names of the graph's outputs: `label` + `probabilities` for a classifier, `value` for a regressor."""

    label: str = "label"
    probabilities: str = "probabilities"
    value: str = "variable"


class Metadata(msgspec.Struct, frozen=True, kw_only=True):
    """What `metadata.json` holds. Fields after `samples` are newer: bundles without them still read."""

    format_version: int
    name: str
    version: str
    created_at: str
    feature_names: list[str]
    class_names: list[str]
    n_features: int
    metrics: dict[str, object]
    params: dict[str, object]
    library_versions: dict[str, str]
    data_sha256: str
    files: dict[str, str]
    features: list[FeatureStats] = []
    description: str = ""
    samples: list[list[float]] = []
    """One typical training row per class, in class order (the model page's sample buttons)."""
    task: str = "classification"
    """`classification` or `regression` (a regressor has no class names)."""
    inputs: InputSchema | None = None
    """None in bundles written before mlkube knew other inputs: one float tensor of `n_features`."""
    outputs: OnnxOutputs = OnnxOutputs()
    class_labels: list[int | str] = []
    """What the model predicts for each class (its `classes_`), in class order; [] means 0..k-1."""
    runtime: str = "onnx"
    """The runtime this bundle is meant for: `sklearn` when ONNX could not express the model."""
    source: dict[str, object] = {}
    """Where an imported model came from: file form, path name, sha256, saved-with versions, warnings."""

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_regressor(self) -> bool:
        return self.task == "regression"

    def input_schema(self) -> InputSchema:
        """The input schema, also for an older bundle (numbers in one tensor, ranges from `features`)."""
        if self.inputs is not None:
            return self.inputs
        stats = {stat.name: stat for stat in self.features}
        specs = []
        for name in self.feature_names:
            stat = stats.get(name)
            if stat is None:
                specs.append(FeatureSpec(name=name))
            else:
                specs.append(FeatureSpec(name=name, min=stat.min, max=stat.max, mean=stat.mean))
        return InputSchema(layout=TENSOR_LAYOUT, features=specs)


class Bundle(msgspec.Struct, frozen=True):
    """A verified bundle on disk."""

    path: Path
    metadata: Metadata
    digest: str = ""
    """sha256 of metadata.json's bytes as read and verified: the whole bundle's fingerprint (MODEL_SHA256)."""
    boundary: Path | None = None
    """Folder no file of the bundle may lead out of through a link (MODEL_DIR; default: the bundle's own)."""

    def file(self, name: str) -> Path:
        return self.path / name

    def read_verified(self, name: str) -> bytes:
        """A listed file's bytes, checked against metadata.json: load from these, never reopen the file."""
        expected = self.metadata.files.get(name)
        if expected is None:
            raise BundleError(
                f"{self.path / METADATA_FILE}: does not list {name}, so it cannot be verified: not loaded"
            )
        path = _contained_file(self.path, name, self.boundary or self.path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
        _check_digest(path, expected, sha256_bytes(data))
        return data


def validate_name(kind: str, value: str) -> str:
    """Names and versions become folder names: keep them to a safe alphabet."""
    if not _SAFE_NAME.match(value):
        raise BundleError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    return value


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_bundle(root: Path, metadata: Metadata, artifacts: Mapping[str, bytes]) -> Bundle:
    """Write `artifacts` and their hashes into a new `<root>/<name>/<version>/`; never overwrite one."""
    validate_name("model name", metadata.name)
    validate_name("version", metadata.version)
    folder = root / metadata.name / metadata.version
    if folder.exists():
        raise BundleError(f"{folder} already exists: choose another --version")
    folder.mkdir(parents=True)
    for file_name, data in artifacts.items():
        (folder / file_name).write_bytes(data)
    hashes = {file_name: sha256_bytes(data) for file_name, data in sorted(artifacts.items())}
    complete = msgspec.structs.replace(metadata, files=hashes, format_version=FORMAT_VERSION)
    (folder / METADATA_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(complete), indent=2) + b"\n")
    return Bundle(folder, complete)


def read_bundle(folder: Path, expected_digest: str | None = None, boundary: Path | None = None) -> Bundle:
    """Read and verify a bundle: its digest if one is pinned, the format version, every listed file's sha256.

    No path of the bundle (its folder, metadata.json, any listed file) may lead out of `boundary` (default:
    the folder itself) through a symbolic link.
    """
    limit = boundary or folder
    _check_inside(folder, limit, "the bundle folder")
    raw = _read_metadata_bytes(folder, limit)
    digest = sha256_bytes(raw)
    if expected_digest is not None and digest != expected_digest.lower():
        raise BundleError(
            f"{folder / METADATA_FILE}: bundle digest mismatch (MODEL_SHA256 pins {expected_digest[:12]}…, "
            f"this bundle is {digest[:12]}…): not the bundle that was shipped"
        )
    metadata = _decode_metadata(folder / METADATA_FILE, raw)
    if metadata.format_version != FORMAT_VERSION:
        raise BundleError(
            f"{folder / METADATA_FILE}: bundle format version {metadata.format_version} is not supported "
            f"(this mlkube reads version {FORMAT_VERSION})"
        )
    model_file = SKOPS_FILE if metadata.runtime == "sklearn" else ONNX_FILE
    if model_file not in metadata.files:
        raise BundleError(f"{folder / METADATA_FILE}: lists no {model_file}")
    for file_name, expected in metadata.files.items():
        path = _contained_file(folder, file_name, limit)
        _check_digest(path, expected, sha256_file(path))
    return Bundle(folder, metadata, digest, boundary)


def bundle_digest(folder: Path) -> str:
    """The digest MODEL_SHA256 pins: sha256 of the bundle's metadata.json (which hashes every file)."""
    return sha256_bytes(_read_metadata_bytes(folder, folder))


def read_metadata(folder: Path) -> Metadata:
    return _decode_metadata(folder / METADATA_FILE, _read_metadata_bytes(folder, folder))


def _read_metadata_bytes(folder: Path, boundary: Path) -> bytes:
    path = folder / METADATA_FILE
    _check_inside(path, boundary, METADATA_FILE)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (is {folder} a model bundle?)") from None
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror})") from None


def _decode_metadata(path: Path, raw: bytes) -> Metadata:
    try:
        return msgspec.json.decode(raw, type=Metadata)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise BundleError(f"{path}: not a valid bundle metadata file ({error})") from None


def _contained_file(folder: Path, file_name: str, boundary: Path) -> Path:
    """`folder/file_name` after checking the name has no separator and no link leads it out of `boundary`."""
    path = folder / file_name
    if Path(file_name).name != file_name or file_name in (".", ".."):
        raise BundleError(f"{folder / METADATA_FILE}: file name {file_name!r} leaves the bundle folder")
    if not path.is_file():
        raise BundleError(f"{path}: missing from the bundle")
    _check_inside(path, boundary, file_name)
    return path


def _check_inside(path: Path, boundary: Path, what: str) -> None:
    """Refuse a path that a symbolic link (of its own or of a parent) leads out of `boundary`."""
    if not path.resolve().is_relative_to(boundary.resolve()):
        raise BundleError(f"{path}: {what} is a link that leads outside {boundary}: refused")


def _check_digest(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise BundleError(f"{path}: sha256 mismatch (expected {expected[:12]}…, found {actual[:12]}…)")


def is_numbered_version(version: str) -> bool:
    return _VERSION_PATTERN.match(version) is not None


def version_key(version: str) -> tuple[int, str]:
    """Order versions v1 < v2 < v10; other names sort after, alphabetically."""
    match = _VERSION_PATTERN.match(version)
    return (int(match.group(1)), "") if match else (1 << 30, version)


def versions_of(root: Path, name: str) -> list[str]:
    folder = root / name
    if not folder.is_dir():
        return []
    found = [child.name for child in folder.iterdir() if (child / METADATA_FILE).is_file()]
    return sorted(found, key=version_key)


def next_version(root: Path, name: str) -> str:
    numbers = [version_key(v)[0] for v in versions_of(root, name) if _VERSION_PATTERN.match(v)]
    return f"v{max(numbers, default=0) + 1}"


def latest_bundle_path(root: Path, name: str) -> Path:
    """The newest `v<N>` folder, in numeric order; other folders (`old-backup`) are never chosen as newest."""
    validate_name("model name", name)
    versions = versions_of(root, name)
    numbered = [version for version in versions if is_numbered_version(version)]
    if not numbered:
        others = f" (only {', '.join(versions)}, not named v<N>)" if versions else ""
        raise BundleError(f"no bundle of model {name!r} under {root}{others}: run `mlkube train` first")
    return root / name / numbered[-1]


def list_bundles(root: Path) -> list[Metadata]:
    """Metadata of every bundle under `root`, by name then version (unverified: a listing, not a load)."""
    if not root.is_dir():
        return []
    found: list[Metadata] = []
    for model_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for version in versions_of(root, model_folder.name):
            try:
                found.append(read_metadata(model_folder / version))
            except BundleError:
                continue
    return found
