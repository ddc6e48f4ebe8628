"""`mlkube import`: every accepted file form, and each refusal with its message.

Refusals: a pickle without --trust-pickle (never executed), a skops file holding a type nobody trusted, a
model saved by a newer scikit-learn (in the file or in MLflow's MLmodel), an MLflow file path leaving its
folder, an ONNX file with ZipMap probabilities. The fallback: a model ONNX cannot express is bundled for
the scikit-learn runtime, which answers like the original.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from mlkube.model.bundle import ONNX_FILE, SKOPS_FILE, read_bundle
from mlkube.model.importing import ImportOptions, ImportRefused, detect_form, import_bundle
from mlkube.model.runtime import load_predictor
from tests.model.zoo import assert_onnx_equals_native, sklearn_frame

IRIS_NAMES = ("setosa", "versicolor", "virginica")


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    iris = load_iris()
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(iris.data, iris.target)


def iris_rows() -> Any:
    frame, _ = sklearn_frame("iris")
    frame.columns = [f"x{i}" for i in range(4)]
    return frame


class Exploit:
    """A pickle that writes a file when loaded: proof of whether mlkube ran it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_joblib_file_imports_only_with_trust_pickle_and_ships_no_pickle(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path)
    notes: list[str] = []
    options = ImportOptions(trust_pickle=True, classes=IRIS_NAMES)
    result = import_bundle(path, options, tmp_path / "models", "iris", notify=notes.append)
    assert any("runs any code the pickle holds" in note for note in notes)
    assert set(result.bundle.metadata.files) == {ONNX_FILE, SKOPS_FILE}
    assert result.bundle.metadata.class_names == list(IRIS_NAMES)
    assert result.bundle.metadata.source["form"] == "pickle"
    assert_onnx_equals_native(read_bundle(result.bundle.path), forest, iris_rows())


def test_a_pickle_without_trust_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed.txt"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(ImportRefused, match=r"a pickle \(joblib\) file\. Loading it runs any code it holds"):
        import_bundle(path, ImportOptions(), tmp_path / "models", "evil")
    assert not marker.exists()
    assert not (tmp_path / "models").exists()


def test_a_skops_file_with_an_untrusted_type_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump({"model": RandomForestClassifier(), "hook": pickle.loads}, path)
    with pytest.raises(ImportRefused, match=r"holds types mlkube does not trust: _pickle\.loads\..*--trust"):
        import_bundle(path, ImportOptions(), tmp_path / "models", "evil")


def test_the_trusted_list_never_comes_from_the_file(tmp_path: Path, forest: RandomForestClassifier) -> None:
    """GHSA-w582-9x45-8mpx: an artifact naming its own trusted types must not be believed."""
    path = tmp_path / "model.skops"
    skops.io.dump({"model": forest, "trusted": ["_pickle.loads"], "hook": pickle.loads}, path)
    with pytest.raises(ImportRefused, match=r"_pickle\.loads"):
        import_bundle(path, ImportOptions(), tmp_path / "models", "evil")


def with_sklearn_version(data: bytes, version: str) -> bytes:
    """The same pickle with another `_sklearn_version` in every estimator's state (same length)."""
    import sklearn

    current = sklearn.__version__.encode()
    assert len(version) == len(current)
    assert current in data
    return data.replace(current, version.encode())


def test_a_model_saved_by_a_newer_scikit_learn_is_refused(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(with_sklearn_version(pickle.dumps(forest), "9.9.9"))
    with pytest.raises(
        ImportRefused, match=r"saved with scikit-learn 9\.9\.9, this mlkube has 1\."
    ) as refused:
        import_bundle(path, ImportOptions(trust_pickle=True), tmp_path / "models", "iris")
    assert "install scikit-learn>=9.9.9" in str(refused.value)


def test_a_model_saved_by_an_older_scikit_learn_imports_with_a_warning(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(with_sklearn_version(pickle.dumps(forest), "0.1.0"))
    notes: list[str] = []
    result = import_bundle(
        path, ImportOptions(trust_pickle=True), tmp_path / "models", "iris", notify=notes.append
    )
    assert any("saved with scikit-learn 0.1.0, loaded with" in note for note in notes)
    assert result.bundle.metadata.source["saved_with"] == {"scikit-learn": "0.1.0"}


def write_mlflow_folder(folder: Path, model: Any, flavor: dict[str, object], signature: bool = True) -> Path:
    """What mlflow.sklearn.save_model writes (MLmodel + the pickled model), without mlflow."""
    import sklearn

    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    spec: dict[str, object] = {
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": sklearn.__version__,
            }
            | flavor,
        },
        "mlflow_version": "2.17.0",
    }
    if signature:
        columns = [{"type": "double", "name": name, "required": True} for name in ("a", "b", "c", "d")]
        spec["signature"] = {"inputs": json.dumps(columns)}  # MLflow keeps it as a JSON string
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    return folder


def test_an_mlflow_folder_imports_with_its_signature_names(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    folder = write_mlflow_folder(tmp_path / "mlflow-model", forest, {})
    assert detect_form(folder) == "mlflow"
    with pytest.raises(ImportRefused, match="--trust-pickle"):
        import_bundle(folder, ImportOptions(), tmp_path / "models", "iris")
    result = import_bundle(folder, ImportOptions(trust_pickle=True), tmp_path / "models", "iris")
    metadata = result.bundle.metadata
    assert metadata.feature_names == ["a", "b", "c", "d"]
    assert metadata.source["form"] == "mlflow"
    frame = iris_rows()
    frame.columns = ["a", "b", "c", "d"]
    assert_onnx_equals_native(read_bundle(result.bundle.path), forest, frame)


def test_an_mlflow_folder_from_a_newer_scikit_learn_is_refused_before_loading(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    folder = write_mlflow_folder(tmp_path / "m", forest, {"sklearn_version": "99.1.0"}, signature=False)
    with pytest.raises(ImportRefused, match=r"saved with scikit-learn 99\.1\.0"):
        import_bundle(folder, ImportOptions(trust_pickle=True), tmp_path / "models", "iris")


def test_an_mlflow_model_path_outside_its_folder_is_refused(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    folder = write_mlflow_folder(tmp_path / "m", forest, {"pickled_model": "../elsewhere.pkl"})
    with pytest.raises(ImportRefused, match="pickled_model must name a file inside"):
        import_bundle(folder, ImportOptions(trust_pickle=True), tmp_path / "models", "iris")


def test_an_mlflow_skops_folder_follows_the_skops_rules(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    folder = write_mlflow_folder(tmp_path / "m", forest, {"serialization_format": "skops"}, signature=False)
    skops.io.dump(forest, folder / "model.pkl")
    result = import_bundle(folder, ImportOptions(), tmp_path / "models", "iris")
    assert result.runtime == "onnx"


def onnx_of(model: Any, zipmap: bool = False) -> bytes:
    from skl2onnx import to_onnx

    options = {"zipmap": zipmap}
    return bytes(to_onnx(model, np.zeros((1, 4), dtype=np.float32), options=options).SerializeToString())


def test_an_onnx_file_imports_with_classes_and_features(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_of(forest))
    names = ("sl", "sw", "pl", "pw")
    options = ImportOptions(classes=IRIS_NAMES, features=names)
    notes: list[str] = []
    result = import_bundle(path, options, tmp_path / "models", "iris", notify=notes.append)
    metadata = read_bundle(result.bundle.path).metadata
    assert (metadata.class_names, metadata.feature_names) == (list(IRIS_NAMES), list(names))
    assert metadata.class_labels == [0, 1, 2]
    assert set(metadata.files) == {ONNX_FILE}
    assert any("no native model to compare it with" in note for note in notes)
    frame = iris_rows()
    frame.columns = list(names)
    assert_onnx_equals_native(result.bundle, forest, frame)


def test_an_onnx_file_with_zipmap_probabilities_is_refused_with_the_fix(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_of(forest, zipmap=True))
    with pytest.raises(ImportRefused, match=r"ZipMap.*zipmap': False"):
        import_bundle(path, ImportOptions(), tmp_path / "models", "iris")


def test_wrong_number_of_class_names_is_refused(tmp_path: Path, forest: RandomForestClassifier) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump(forest, path)
    with pytest.raises(ImportRefused, match=r"--classes names 2 classes, model\.skops has 3: 0, 1, 2"):
        import_bundle(path, ImportOptions(classes=("a", "b")), tmp_path / "models", "iris")


def test_a_model_onnx_cannot_express_falls_back_to_the_sklearn_runtime(tmp_path: Path) -> None:
    from sklearn.semi_supervised import LabelSpreading

    iris = load_iris()
    model = LabelSpreading().fit(iris.data, iris.target)
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    notes: list[str] = []
    result = import_bundle(path, ImportOptions(), tmp_path / "models", "spread", notify=notes.append)
    assert result.runtime == "sklearn"
    assert any("ONNX cannot serve this model" in n and "MODEL_RUNTIME=sklearn" in n for n in notes)
    bundle = read_bundle(result.bundle.path)
    assert set(bundle.metadata.files) == {SKOPS_FILE}
    scores = load_predictor(bundle, "sklearn", any_schema=True).predict(iris.data.astype(np.float32))
    assert np.array_equal(scores.classes, model.predict(iris.data.astype(np.float32)))


def test_a_skops_file_from_a_newer_scikit_learn_is_refused(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    """skops keeps each estimator's `__getstate__`, `_sklearn_version` included: the same check applies."""
    import zipfile

    original = tmp_path / "original.skops"
    skops.io.dump(forest, original)
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, with_sklearn_version(data, "9.9.9") if name == "schema.json" else data)
    with pytest.raises(ImportRefused, match=r"saved with scikit-learn 9\.9\.9"):
        import_bundle(path, ImportOptions(), tmp_path / "models", "iris")


def test_an_onnx_file_takes_its_names_and_ranges_from_the_sample(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    from tests.model.zoo import write_csv

    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_of(forest))
    sample = write_csv(tmp_path, "iris", target="species")
    result = import_bundle(path, ImportOptions(sample=sample, target="species"), tmp_path / "models", "iris")
    metadata = result.bundle.metadata
    assert metadata.feature_names[0] == "sepal_length_cm"
    assert (metadata.features[0].min, metadata.features[0].max) == (4.3, 7.9)


def test_a_sample_of_the_wrong_width_says_how_to_fix_it(
    tmp_path: Path, forest: RandomForestClassifier
) -> None:
    from tests.model.zoo import write_csv

    path = tmp_path / "model.skops"
    skops.io.dump(forest, path)
    sample = write_csv(tmp_path, "iris", target="species")
    with pytest.raises(ImportRefused, match="5 columns, the model takes 4 features: name the label column"):
        import_bundle(path, ImportOptions(sample=sample), tmp_path / "models", "iris")
