"""`mlkube import PATH`: a model trained elsewhere becomes a verified bundle, like one `mlkube train` wrote.

Accepted: a skops file (every type skops does not trust by default must be on mlkube's list or named with
`--trust TYPE`: the trusted list never comes from the artifact, cf. GHSA-w582-9x45-8mpx); a joblib or
pickle file, only with `--trust-pickle`, because loading a pickle runs whatever code it holds (the bundle
then holds skops + ONNX, never the pickle); a folder written by `mlflow.sklearn.save_model` (its MLmodel
file is read as YAML, no mlflow needed; same rules for the file it names); an ONNX file (`--classes`,
`--features`). What the estimator knows is learned from it: task, classes, feature names and count, the
scikit-learn version it was saved with. Then ONNX conversion and a parity check, and when ONNX cannot
express the model, a bundle for the scikit-learn runtime with a message saying what that costs.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from mlkube.errors import MlkubeError
from mlkube.model.bundle import (
    CATEGORY,
    COLUMNS_LAYOUT,
    ONNX_FILE,
    SKOPS_FILE,
    TENSOR_LAYOUT,
    Bundle,
    FeatureSpec,
    InputSchema,
    Metadata,
    OnnxOutputs,
    next_version,
    sha256_file,
    utc_now,
    validate_name,
    write_bundle,
)
from mlkube.model.convert import Parity, ParityError, check_parity, convert
from mlkube.model.datasets import CLASSIFICATION, REGRESSION, TrainingError, read_csv_frame, split_columns
from mlkube.model.feeds import MISSING_CATEGORY, onnx_feeds
from mlkube.model.runtime import TRUSTED_SKOPS_TYPES, onnx_session_from_bytes
from mlkube.model.tabular import number_spec, stats_of

SKOPS_FORM, PICKLE_FORM, MLFLOW_FORM, ONNX_FORM = "skops", "pickle", "mlflow", "onnx"
GENERATED_ROWS = 1000
MAX_MODEL_BYTES = 2 << 30
PICKLE_WARNING = (
    "loading {path} runs any code the pickle holds, with your permissions: do this only for a file you "
    "made yourself or fully trust. The bundle will hold skops + ONNX, never the pickle."
)
SKLEARN_RUNTIME_COST = (
    "the bundle is served with MODEL_RUNTIME=sklearn: the image then needs scikit-learn "
    "(pip install 'mlkube[train]', about 150 MB more), each worker holds the estimator in memory, and a "
    "row takes roughly 0.1-1 ms instead of ONNX Runtime's ~6 µs"
)

Notify = Callable[[str], None]


class ImportRefused(MlkubeError):
    """The file cannot be imported safely or faithfully; the message says why and what to do."""


@dataclass(frozen=True)
class ImportOptions:
    trust: tuple[str, ...] = ()
    trust_pickle: bool = False
    classes: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    sample: Path | None = None
    target: str | None = None
    seed: int = 42


@dataclass
class Loaded:
    """A native model as loaded, with what its file said about it."""

    estimator: Any
    form: str
    file: Path
    saved_with: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)


# --- finding and loading the model ---------------------------------------------------------------


def detect_form(path: Path) -> str:
    """mlflow (a folder with MLmodel), onnx (by its suffix), skops (a zip with schema.json), else pickle."""
    if path.is_dir():
        if (path / "MLmodel").is_file():
            return MLFLOW_FORM
        raise ImportRefused(f"{path}: a folder without an MLmodel file (is it an MLflow model folder?)")
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ImportRefused(f"{path}: larger than {MAX_MODEL_BYTES >> 30} GiB")
    if path.suffix.lower() == ".onnx":
        return ONNX_FORM
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "schema.json" in archive.namelist():
                return SKOPS_FORM
    return PICKLE_FORM


def load_skops_file(path: Path, trust: tuple[str, ...]) -> Loaded:
    """Load only if every type skops does not trust is on mlkube's list or named with --trust."""
    import skops.io

    try:
        untrusted = set(skops.io.get_untrusted_types(file=path))
    except Exception as error:  # noqa: BLE001 - zip, json and skops errors all mean "not a skops file"
        raise ImportRefused(f"{path}: not a readable skops file ({error})") from None
    refused = sorted(untrusted - TRUSTED_SKOPS_TYPES - set(trust))
    if refused:
        flags = " ".join(f"--trust {name}" for name in refused)
        raise ImportRefused(
            f"{path}: holds types mlkube does not trust: {', '.join(refused)}. Loading them can run their "
            f"code; if you know them, name each one: {flags}"
        )
    with _watching_versions(path) as loaded:
        loaded.estimator = skops.io.load(path, trusted=sorted(untrusted))
    loaded.form = SKOPS_FORM
    return loaded


def load_pickle_file(path: Path, trust_pickle: bool, notify: Notify) -> Loaded:
    if not trust_pickle:
        raise ImportRefused(
            f"{path}: a pickle (joblib) file. Loading it runs any code it holds, so mlkube loads it only "
            "with --trust-pickle; the bundle then holds skops + ONNX, never the pickle"
        )
    notify(PICKLE_WARNING.format(path=path))
    import joblib

    with _watching_versions(path) as loaded:
        loaded.estimator = joblib.load(path)
    loaded.form = PICKLE_FORM
    return loaded


def load_mlflow_folder(folder: Path, options: ImportOptions, notify: Notify) -> Loaded:
    """An `mlflow.sklearn.save_model` folder: MLmodel's sklearn flavour names the file and its format."""
    import yaml

    path = folder / "MLmodel"
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ImportRefused(f"{path}: not a readable MLmodel file ({error})") from None
    flavor = spec.get("flavors", {}).get("sklearn") if isinstance(spec, dict) else None
    if not isinstance(flavor, dict):
        raise ImportRefused(f"{path}: has no sklearn flavour (mlkube imports mlflow.sklearn models)")
    model_file = folder / str(flavor.get("pickled_model", ""))
    if not flavor.get("pickled_model") or model_file.resolve().parent != folder.resolve():
        raise ImportRefused(f"{path}: pickled_model must name a file inside {folder}")
    saved = str(flavor.get("sklearn_version") or "")
    if saved:
        check_saved_version(model_file, saved, notify)
    serialization = str(flavor.get("serialization_format", "cloudpickle"))
    if serialization == "skops":
        loaded = load_skops_file(model_file, options.trust)
    elif serialization in {"pickle", "cloudpickle"}:
        loaded = load_pickle_file(model_file, options.trust_pickle, notify)
    else:
        raise ImportRefused(f"{path}: unknown serialization_format {serialization!r}")
    loaded.form = MLFLOW_FORM
    loaded.file = folder
    if saved:
        loaded.saved_with.setdefault("scikit-learn", saved)
    loaded.feature_names = _signature_names(spec)
    return loaded


def _signature_names(spec: dict[str, Any]) -> list[str]:
    """Column names from MLmodel's signature (a JSON list of {"name", "type"}), when it has them."""
    import json

    inputs = (spec.get("signature") or {}).get("inputs")
    try:
        columns = json.loads(inputs) if isinstance(inputs, str) else []
    except ValueError:
        return []
    names = [column.get("name") for column in columns if isinstance(column, dict)]
    return [str(name) for name in names] if names and all(names) else []


@contextmanager
def _watching_versions(path: Path) -> Iterator[Loaded]:
    """Load inside; every warning is kept as a note, scikit-learn's version warning as `saved_with`."""
    from sklearn.exceptions import InconsistentVersionWarning

    loaded = Loaded(None, "", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield loaded
        except ImportRefused:
            raise
        except Exception as error:  # noqa: BLE001 - unpickling raises anything; say so in one line
            saved = _saved_version(caught)
            hint = f" (saved with scikit-learn {saved})" if saved else ""
            raise ImportRefused(f"{path}: cannot be loaded{hint}: {type(error).__name__}: {error}") from None
    for warning in caught:
        message = warning.message
        if isinstance(message, InconsistentVersionWarning):
            loaded.saved_with["scikit-learn"] = message.original_sklearn_version
        else:
            loaded.notes.append(f"{warning.category.__name__} while loading: {message}")


def _saved_version(caught: list[warnings.WarningMessage]) -> str:
    from sklearn.exceptions import InconsistentVersionWarning

    for warning in caught:
        if isinstance(warning.message, InconsistentVersionWarning):
            return str(warning.message.original_sklearn_version)
    return ""


def check_saved_version(path: Path, saved: str, notify: Notify) -> None:
    """Refuse a model saved by a newer scikit-learn; warn about an older one."""
    import sklearn

    current = sklearn.__version__
    if _minor(saved) == _minor(current):
        return
    if _minor(saved) > _minor(current):
        raise ImportRefused(
            f"{path}: saved with scikit-learn {saved}, this mlkube has {current}. A newer scikit-learn's "
            f"estimator may fail or predict differently here: install scikit-learn>={saved} beside mlkube, "
            f"or save the model again with scikit-learn {current}"
        )
    notify(
        f"{path}: saved with scikit-learn {saved}, loaded with {current}. scikit-learn does not promise the "
        "same predictions across versions, and the parity check compares ONNX with the model as loaded "
        "here: compare the bundle's answers with your running service (--sample rows) before switching"
    )


def _minor(version: str) -> tuple[int, int]:
    major, minor = [*(int(part) for part in re.findall(r"\d+", version)[:2]), 0, 0][:2]
    return major, minor


# --- what the estimator knows --------------------------------------------------------------------


def task_of(estimator: Any, path: Path) -> str:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        if not hasattr(estimator, "predict_proba"):
            raise ImportRefused(
                f"{path}: {_name(estimator)} gives no probabilities (predict_proba), and mlkube answers "
                "with a confidence: fit it with probabilities (SVC(probability=True)) or calibrate it"
            )
        return CLASSIFICATION
    if is_regressor(estimator):
        return REGRESSION
    raise ImportRefused(f"{path}: {_name(estimator)} is neither a classifier nor a regressor")


def class_labels(estimator: Any) -> list[int | str]:
    labels: list[int | str] = []
    for value in np.asarray(estimator.classes_).tolist():
        if isinstance(value, bool):
            labels.append(str(value))
        elif isinstance(value, float) and value.is_integer():
            labels.append(int(value))
        elif isinstance(value, (int, str)):
            labels.append(value)
        else:
            labels.append(str(value))
    return labels


def encoded_categories(estimator: Any) -> dict[str | int, list[str]]:
    """Text categories a fitted OneHotEncoder/OrdinalEncoder inside the model learned, by its column."""
    found: dict[str | int, list[str]] = {}
    for columns, encoder in _encoders(estimator, None):
        for column, categories in zip(columns, encoder.categories_, strict=False):
            if np.asarray(categories).dtype.kind in "OUS":
                texts = [str(value) for value in categories if isinstance(value, str)]
                found[column] = [text for text in texts if text != MISSING_CATEGORY]
    return found


def _encoders(step: Any, columns: list[Any] | None) -> Iterator[tuple[list[Any], Any]]:
    name = type(step).__name__
    if name in {"OneHotEncoder", "OrdinalEncoder"} and columns is not None:
        yield columns, step
    for _, inner in getattr(step, "steps", []):
        yield from _encoders(inner, columns)
        break  # only the first step sees the raw columns
    for _, inner, selected in getattr(step, "transformers_", []):
        if isinstance(selected, (list, tuple, np.ndarray)):
            yield from _encoders(inner, list(selected))


def selects_by_name(estimator: Any) -> bool:
    """A ColumnTransformer that picks columns by name: skl2onnx then needs one input per column."""
    for _, _, selected in getattr(estimator, "transformers_", []):
        if isinstance(selected, str) or (
            isinstance(selected, (list, tuple, np.ndarray)) and any(isinstance(c, str) for c in selected)
        ):
            return True
    return any(selects_by_name(inner) for _, inner in getattr(estimator, "steps", [])[:1])


def _name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    return type(steps[-1][1] if steps else estimator).__name__


# --- the sample, the schema and the parity rows --------------------------------------------------


@dataclass
class Sample:
    frame: Any
    numeric: list[str]
    categorical: list[str]
    sha256: str


def read_sample(path: Path, features: list[str] | None, target: str | None, width: int) -> Sample:
    """The --sample CSV's feature columns: those named (extra columns are ignored), else all but --target."""
    frame = read_csv_frame(path)
    if target is not None:
        if target not in frame.columns:
            raise ImportRefused(f"{path}: no column {target!r} (columns: {', '.join(frame.columns)})")
        frame = frame.drop(columns=[target])
    if features:
        missing = [name for name in features if name not in frame.columns]
        if missing:
            raise ImportRefused(f"{path}: lacks the model's feature column(s) {', '.join(missing)}")
        frame = frame[features]
    elif len(frame.columns) != width:
        raise ImportRefused(
            f"{path}: {len(frame.columns)} columns, the model takes {width} features: name the label "
            "column with --target, or the features with --features"
        )
    try:
        typed, numeric, categorical = split_columns(frame, path)
    except TrainingError as error:
        raise ImportRefused(str(error)) from None
    return Sample(typed, numeric, categorical, sha256_file(path))


def build_schema(
    names: list[str], sample: Sample | None, categories: dict[str | int, list[str]], by_name: bool
) -> InputSchema:
    specs = []
    for position, name in enumerate(names):
        known = categories.get(name, categories.get(position))
        is_text = (sample is not None and name in sample.categorical) or known is not None
        if is_text:
            seen = known if known is not None else sorted(set(sample.frame[name]) - {MISSING_CATEGORY})  # type: ignore[union-attr]
            missing = sample is not None and bool((sample.frame[name] == MISSING_CATEGORY).any())
            specs.append(FeatureSpec(name=name, kind=CATEGORY, categories=list(seen), missing=missing))
            continue
        if sample is None:
            specs.append(FeatureSpec(name=name))
        else:
            values = sample.frame[name].to_numpy(dtype=np.float64)
            specs.append(number_spec(name, values, missing=bool(np.isnan(values).any())))
    columns = by_name or any(spec.kind == CATEGORY for spec in specs)
    if columns:
        specs = [_with_input(spec) for spec in specs]
    return InputSchema(layout=COLUMNS_LAYOUT if columns else TENSOR_LAYOUT, features=specs)


def _with_input(spec: FeatureSpec) -> FeatureSpec:
    return msgspec.structs.replace(spec, onnx_input=spec.name)


def parity_columns(
    schema: InputSchema, sample: Sample | None, estimator: Any, seed: int
) -> tuple[dict[str, Any], str]:
    """The sample's rows plus generated ones; without a sample, generated rows only (and say so)."""
    rng = np.random.default_rng(seed)
    thresholds = _tree_thresholds(estimator, len(schema.features))
    columns: dict[str, Any] = {}
    for position, spec in enumerate(schema.features):
        given = sample.frame[spec.name].to_numpy() if sample is not None else None
        if spec.kind == CATEGORY:
            choices = spec.categories + ([MISSING_CATEGORY] if spec.missing or not spec.categories else [])
            generated: Any = rng.choice(np.asarray(choices, dtype=object), GENERATED_ROWS)
        else:
            low, high = _range(spec, thresholds.get(position))
            span = high - low if high > low else 1.0
            generated = rng.uniform(low - span / 2, high + span / 2, GENERATED_ROWS)
            if spec.missing:
                generated[rng.random(GENERATED_ROWS) < 0.05] = np.nan
        if given is None:
            columns[spec.name] = generated
        else:
            kind = object if spec.kind == CATEGORY else np.float64
            columns[spec.name] = np.concatenate([given.astype(kind), np.asarray(generated, dtype=kind)])
    where = "the sample's rows and " if sample is not None else ""
    source = "split thresholds of its trees" if thresholds else "a standard normal"
    return columns, f"{where}{GENERATED_ROWS} generated rows (around the {source})"


def _range(spec: FeatureSpec, thresholds: tuple[float, float] | None) -> tuple[float, float]:
    if spec.min is not None and spec.max is not None:
        return spec.min, spec.max
    if thresholds is not None:
        return thresholds
    return -3.0, 3.0


def _tree_thresholds(estimator: Any, width: int) -> dict[int, tuple[float, float]]:
    """Per feature, the lowest and highest split of a tree model's trees (when it is one on raw features)."""
    trees = np.asarray(getattr(estimator, "estimators_", []), dtype=object).reshape(-1).tolist()
    found: dict[int, list[float]] = {}
    for tree in trees:
        structure = getattr(tree, "tree_", None)
        if structure is None:
            return {}
        for feature, threshold in zip(structure.feature, structure.threshold, strict=False):
            if 0 <= feature < width:
                found.setdefault(int(feature), []).append(float(threshold))
    return {feature: (min(values), max(values)) for feature, values in found.items()}


# --- the import ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    bundle: Bundle
    runtime: str
    parity: str


def import_bundle(
    path: Path,
    options: ImportOptions,
    root: Path,
    name: str,
    version: str | None = None,
    notify: Notify = lambda message: None,
) -> ImportResult:
    """Load safely, learn, convert, prove parity (or fall back), write the bundle."""
    validate_name("model name", name)
    if version is not None:
        validate_name("version", version)
    form = detect_form(path)
    if form == ONNX_FORM:
        return import_onnx(path, options, root, name, version, notify)
    if form == MLFLOW_FORM:
        loaded = load_mlflow_folder(path, options, notify)
    elif form == SKOPS_FORM:
        loaded = load_skops_file(path, options.trust)
    else:
        loaded = load_pickle_file(path, options.trust_pickle, notify)
    saved = loaded.saved_with.get("scikit-learn")
    if saved and form != MLFLOW_FORM:
        check_saved_version(path, saved, notify)
    for note in loaded.notes:
        notify(note)
    return _bundle_native(loaded, options, root, name, version, notify)


def _bundle_native(
    loaded: Loaded, options: ImportOptions, root: Path, name: str, version: str | None, notify: Notify
) -> ImportResult:
    estimator, path = loaded.estimator, loaded.file
    task = task_of(estimator, path)
    labels = class_labels(estimator) if task == CLASSIFICATION else []
    class_names = _class_names(labels, options.classes, path)
    names = _feature_names(estimator, loaded, options, path)
    sample = None
    if options.sample is not None:
        sample = read_sample(options.sample, names, options.target, len(names))
        names = list(sample.frame.columns)
    else:
        notify(
            "no --sample: training ranges are unknown (the model page shows none, drift signals stay off) "
            "and parity is checked on generated rows only; pass --sample FILE.csv with real rows"
        )
    schema = build_schema(names, sample, encoded_categories(estimator), selects_by_name(estimator))
    artifacts = {SKOPS_FILE: _skops_bytes(estimator, path)}
    outcome = _onnx_or_fallback(loaded, schema, sample, labels if task == CLASSIFICATION else None, options)
    if outcome.onnx_bytes is None:
        _refuse_unservable_skops(artifacts[SKOPS_FILE], path, outcome.reason)
        notify(f"ONNX cannot serve this model ({outcome.reason}): {SKLEARN_RUNTIME_COST}")
    else:
        artifacts[ONNX_FILE] = outcome.onnx_bytes
    runtime = "sklearn" if outcome.onnx_bytes is None else "onnx"
    metrics = _parity_metrics(outcome.parity) if outcome.parity else {}
    metadata = Metadata(
        format_version=0,
        name=name,
        version=version or next_version(root, name),
        created_at=utc_now(),
        feature_names=names,
        class_names=class_names,
        n_features=len(names),
        metrics=metrics,
        params=_params(estimator),
        library_versions=_library_versions(estimator),
        data_sha256=sample.sha256 if sample else "",
        files={},
        features=stats_of(schema),
        description=f"{_name(estimator)} imported from {path.name} ({loaded.form})",
        task=task,
        inputs=schema,
        class_labels=labels,
        runtime=runtime,
        source=_source(loaded),
    )
    bundle = write_bundle(root, metadata, artifacts)
    return ImportResult(bundle, runtime, outcome.rows)


@dataclass(frozen=True)
class Conversion:
    """The ONNX graph and its parity, or why there is none (`onnx_bytes` None: the sklearn runtime)."""

    onnx_bytes: bytes | None
    parity: Parity | None = None
    rows: str = ""
    reason: BaseException | None = None


def _onnx_or_fallback(
    loaded: Loaded,
    schema: InputSchema,
    sample: Sample | None,
    labels: list[int | str] | None,
    options: ImportOptions,
) -> Conversion:
    estimator = loaded.estimator
    try:
        onnx_bytes = convert(estimator, schema, labels is not None)
        columns, rows = parity_columns(schema, sample, estimator, options.seed)
        parity = check_parity(estimator, onnx_bytes, schema, columns, labels)
    except (TrainingError, ParityError) as error:
        return Conversion(None, reason=error)
    return Conversion(onnx_bytes, parity, rows)


def _class_names(labels: list[int | str], given: tuple[str, ...], path: Path) -> list[str]:
    if not given:
        return [str(label) for label in labels]
    if len(given) != len(labels):
        raise ImportRefused(
            f"--classes names {len(given)} classes, {path.name} has {len(labels)}: "
            f"{', '.join(map(str, labels))}"
        )
    return list(given)


def _feature_names(estimator: Any, loaded: Loaded, options: ImportOptions, path: Path) -> list[str]:
    width = int(getattr(estimator, "n_features_in_", 0) or 0)
    own = getattr(estimator, "feature_names_in_", None)
    if own is not None:
        names = [str(name) for name in own]
        if options.features and list(options.features) != names:
            raise ImportRefused(f"--features disagrees with the names the model was fitted with: {names}")
        return names
    if options.features:
        if width and len(options.features) != width:
            raise ImportRefused(f"--features names {len(options.features)} features, the model takes {width}")
        return list(options.features)
    if loaded.feature_names and (not width or len(loaded.feature_names) == width):
        return loaded.feature_names
    if options.sample is not None:
        return sample_names(options.sample, options.target, width)
    if not width:
        raise ImportRefused(f"{path}: cannot tell how many features the model takes: pass --features")
    return [f"x{i}" for i in range(width)]


def sample_names(path: Path, target: str | None, width: int) -> list[str]:
    """The --sample header as feature names: every column but --target, as many as the model takes."""
    columns = [str(column) for column in read_csv_frame(path).columns if column != target]
    if width and len(columns) != width:
        raise ImportRefused(
            f"{path}: {len(columns)} columns, the model takes {width} features: name the label column with "
            "--target, or the features with --features"
        )
    return columns


def _skops_bytes(estimator: Any, path: Path) -> bytes:
    import skops.io

    try:
        return bytes(skops.io.dumps(estimator))
    except Exception as error:  # noqa: BLE001 - skops refuses objects it cannot describe in many ways
        raise ImportRefused(f"{path}: skops cannot store {_name(estimator)} ({error})") from None


def _refuse_unservable_skops(skops_bytes: bytes, path: Path, reason: BaseException | None) -> None:
    """The scikit-learn runtime loads only mlkube's allow-listed types: a fallback needing more is useless."""
    import skops.io

    extra = sorted(set(skops.io.get_untrusted_types(data=skops_bytes)) - TRUSTED_SKOPS_TYPES)
    if extra:
        raise ImportRefused(
            f"{path}: ONNX cannot serve this model ({reason}), and the scikit-learn runtime would need "
            f"types outside mlkube's allowlist: {', '.join(extra)}"
        )


def _parity_metrics(parity: Parity) -> dict[str, object]:
    return {
        "onnx_max_abs_diff": parity.max_abs_diff,
        "parity_rows": parity.rows,
        "parity_tolerance": parity.tolerance,
    }


def _params(estimator: Any) -> dict[str, object]:
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if steps else estimator
    params: dict[str, object] = {"estimator": type(final).__name__}
    if steps:
        params["pipeline"] = " -> ".join(type(step).__name__ for _, step in steps)
    for key, value in final.get_params(deep=False).items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            params[key] = value
    return params


def _library_versions(estimator: Any) -> dict[str, str]:
    from mlkube.model.train import library_versions

    module = type(getattr(estimator, "steps", [("", estimator)])[-1][1]).__module__.split(".")[0]
    return library_versions(module if module in {"xgboost", "lightgbm"} else "", "pandas")


def _source(loaded: Loaded) -> dict[str, object]:
    file = loaded.file if loaded.file.is_file() else loaded.file / "MLmodel"
    source: dict[str, object] = {"form": loaded.form, "file": loaded.file.name, "sha256": sha256_file(file)}
    if loaded.saved_with:
        source["saved_with"] = dict(loaded.saved_with)
    return source


# --- an ONNX file --------------------------------------------------------------------------------


def import_onnx(
    path: Path, options: ImportOptions, root: Path, name: str, version: str | None, notify: Notify
) -> ImportResult:
    """An ONNX file as given: inputs and outputs read from the graph, classes and names from the options."""
    onnx_bytes = path.read_bytes()
    try:
        session = onnx_session_from_bytes(onnx_bytes)
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's load errors have no common base
        raise ImportRefused(f"{path}: ONNX Runtime cannot load it ({error})") from None
    schema = _onnx_schema(session, options, path)
    if options.sample is not None and not options.features and schema.layout == TENSOR_LAYOUT:
        named = sample_names(options.sample, options.target, len(schema.features))
        schema = msgspec.structs.replace(schema, features=[FeatureSpec(name=name) for name in named])
    outputs, task = _onnx_outputs(session, options, path)
    names = [spec.name for spec in schema.features]
    sample = None
    if options.sample is not None:
        sample = read_sample(options.sample, names, options.target, len(names))
        schema = _with_sample(schema, sample)
    columns, rows_text = parity_columns(schema, sample, None, options.seed)
    answers = session.run(None, onnx_feeds(schema, columns))
    by_name = dict(zip([output.name for output in session.get_outputs()], answers, strict=True))
    labels: list[int | str] = []
    class_names: list[str] = []
    if task == CLASSIFICATION:
        labels, class_names = _onnx_classes(onnx_bytes, by_name[outputs.probabilities], options, path)
    elif not np.all(np.isfinite(by_name[outputs.value])):
        raise ImportRefused(f"{path}: answers non-finite values on {rows_text}")
    notify(
        f"{path.name} is served as given: there is no native model to compare it with; it was run on "
        f"{rows_text} and its outputs have the right shapes"
    )
    metadata = Metadata(
        format_version=0,
        name=name,
        version=version or next_version(root, name),
        created_at=utc_now(),
        feature_names=names,
        class_names=class_names,
        n_features=len(names),
        metrics={"parity_rows": 0},
        params={"estimator": "ONNX"},
        library_versions=_library_versions(None),
        data_sha256=sample.sha256 if sample else "",
        files={},
        features=stats_of(schema),
        description=f"ONNX model imported from {path.name}",
        task=task,
        inputs=schema,
        outputs=outputs,
        class_labels=labels,
        source={"form": ONNX_FORM, "file": path.name, "sha256": sha256_file(path)},
    )
    return ImportResult(write_bundle(root, metadata, {ONNX_FILE: onnx_bytes}), "onnx", rows_text)


def _onnx_schema(session: Any, options: ImportOptions, path: Path) -> InputSchema:
    inputs = session.get_inputs()
    if len(inputs) == 1:
        graph_input = inputs[0]
        if graph_input.type != "tensor(float)":
            raise ImportRefused(
                f"{path}: input {graph_input.name!r} is {graph_input.type}; mlkube feeds float32"
            )
        width = graph_input.shape[-1] if len(graph_input.shape) == 2 else None
        names = list(options.features)
        if not isinstance(width, int):
            if not names:
                raise ImportRefused(
                    f"{path}: the input's width is not fixed: name the features with --features"
                )
            width = len(names)
        if names and len(names) != width:
            raise ImportRefused(f"--features names {len(names)} features, {path.name} takes {width}")
        specs = [FeatureSpec(name=feature) for feature in names or [f"x{i}" for i in range(width)]]
        return InputSchema(layout=TENSOR_LAYOUT, tensor_input=graph_input.name, features=specs)
    specs = []
    for graph_input in inputs:
        if graph_input.type not in {"tensor(float)", "tensor(string)"}:
            raise ImportRefused(
                f"{path}: input {graph_input.name!r} is {graph_input.type}; mlkube feeds float32 or strings"
            )
        kind = CATEGORY if graph_input.type == "tensor(string)" else "number"
        specs.append(FeatureSpec(name=graph_input.name, kind=kind, onnx_input=graph_input.name))
    return InputSchema(layout=COLUMNS_LAYOUT, features=specs)


def _with_sample(schema: InputSchema, sample: Sample) -> InputSchema:
    specs = []
    for spec in schema.features:
        column = sample.frame[spec.name]
        if spec.kind == CATEGORY:
            seen = sorted({str(value) for value in column} - {MISSING_CATEGORY})
            specs.append(msgspec.structs.replace(spec, categories=seen))
            continue
        values = column.to_numpy(dtype=np.float64)
        present = values[~np.isnan(values)]
        if len(present):
            specs.append(
                msgspec.structs.replace(
                    spec,
                    min=float(present.min()),
                    max=float(present.max()),
                    mean=round(float(present.mean()), 6),
                )
            )
        else:
            specs.append(spec)
    return msgspec.structs.replace(schema, features=specs)


def _onnx_outputs(session: Any, options: ImportOptions, path: Path) -> tuple[OnnxOutputs, str]:
    outputs = session.get_outputs()
    if len(outputs) >= 2:
        if outputs[1].type.startswith("seq("):
            raise ImportRefused(
                f"{path}: its probabilities are a ZipMap (a list of dicts); convert it again with "
                "options={'zipmap': False} (skl2onnx) so they are one float tensor"
            )
        if outputs[1].type == "tensor(float)":
            return OnnxOutputs(label=outputs[0].name, probabilities=outputs[1].name), CLASSIFICATION
    if options.classes:
        raise ImportRefused(f"{path}: --classes given, but its outputs are not a label and probabilities")
    if outputs[0].type not in {"tensor(float)", "tensor(double)"}:
        raise ImportRefused(f"{path}: output {outputs[0].name!r} is {outputs[0].type}, not a value")
    return OnnxOutputs(value=outputs[0].name), REGRESSION


def _onnx_classes(
    onnx_bytes: bytes, probabilities: Any, options: ImportOptions, path: Path
) -> tuple[list[int | str], list[str]]:
    """The class labels the graph's classifier node declares; --classes names them for display."""
    import onnx

    width = int(np.asarray(probabilities).shape[-1])
    labels: list[int | str] = []
    for node in onnx.load_model_from_string(onnx_bytes).graph.node:
        for attribute in node.attribute:
            if attribute.name in {"classlabels_int64s", "classlabels_ints"}:
                labels = [int(value) for value in attribute.ints]
            elif attribute.name == "classlabels_strings":
                labels = [value.decode("utf-8") for value in attribute.strings]
    if not labels:
        labels = list(range(width))
    if len(labels) != width:
        raise ImportRefused(f"{path}: declares {len(labels)} classes but answers {width} probabilities")
    return labels, _class_names(labels, options.classes, path)
