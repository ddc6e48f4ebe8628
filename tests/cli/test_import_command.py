"""`mlkube import` and `mlkube train --estimator/--task/--param` as a user types them.

The notes' own train_model.py runs verbatim; its model.joblib imports, and the bundle answers as the
notes' Flask app would on all 150 Iris rows: through the ONNX predictor and through a real server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from mlkube.model.bundle import read_bundle
from mlkube.model.runtime import load_predictor
from tests.model.zoo import write_csv, write_mixed_csv
from tests.support import run_mlkube as mlkube
from tests.support import start_server

NOTES_TRAIN_MODEL = """\
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
import joblib

iris = load_iris()
model = RandomForestClassifier(n_estimators=10)
model.fit(iris.data, iris.target)
joblib.dump(model, 'model.joblib')
print("Model saved!")
"""
CLASS_NAMES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def notes_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    (folder / "train_model.py").write_text(NOTES_TRAIN_MODEL)
    done = subprocess.run(
        [sys.executable, "train_model.py"], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert done.stdout == "Model saved!\n", done.stderr
    return folder / "model.joblib"


def flask_answer(model: object, row: list[float]) -> dict[str, object]:
    """The notes' app.py for one row, with the server's 6-decimal confidence."""
    features = np.array(row).reshape(1, -1)
    prediction = model.predict(features)[0]  # type: ignore[attr-defined]
    confidence = model.predict_proba(features).max()  # type: ignore[attr-defined]
    return {
        "prediction": int(prediction),
        "class_name": CLASS_NAMES[prediction],
        "confidence": round(float(confidence), 6),
        "version": "v1",
    }


def test_the_notes_joblib_imports_and_answers_like_the_notes_app(notes_model: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = mlkube(
        "import", str(notes_model), "--trust-pickle", "--classes", ",".join(CLASS_NAMES),
        "--name", "iris", "--model-dir", str(models),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning: loading" in result.stderr
    assert "runs any code the pickle holds" in result.stderr
    assert "warning: no --sample" in result.stderr
    assert result.stdout.startswith(
        "imported iris v1: classifier (setosa, versicolor, virginica), 4 features"
    )
    bundle = read_bundle(models / "iris" / "v1")
    assert sorted(bundle.metadata.files) == ["model.onnx", "model.skops"]

    native = joblib.load(notes_model)
    rows = load_iris().data
    scores = load_predictor(bundle, "onnx").predict(rows.astype(np.float32))
    assert np.array_equal(scores.classes, native.predict(rows))
    assert np.allclose(scores.probabilities.max(axis=1), native.predict_proba(rows).max(axis=1), atol=1e-6)
    assert [bundle.metadata.class_names[i] for i in scores.classes] == [
        CLASS_NAMES[i] for i in native.predict(rows)
    ]

    with start_server({"MODEL_DIR": str(models), "MODEL_NAME": "iris", "WORKERS": "1"}) as running:
        answers = running.client.post("/predict", json={"instances": rows.tolist()}).json()["predictions"]
        assert answers == [flask_answer(native, row) for row in rows.tolist()]
        single = running.client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).json()
        assert single == flask_answer(native, [5.1, 3.5, 1.4, 0.2])


def test_a_pickle_without_trust_pickle_is_one_error_line(notes_model: Path, tmp_path: Path) -> None:
    result = mlkube("import", str(notes_model), "--model-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "--trust-pickle" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


def test_import_with_a_sample_learns_names_and_ranges(notes_model: Path, tmp_path: Path) -> None:
    sample = write_csv(tmp_path, "iris", target="species")
    result = mlkube(
        "import", str(notes_model), "--trust-pickle", "--sample", str(sample), "--target", "species",
        "--model-dir", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no --sample" not in result.stderr
    assert (
        "parity: ONNX equals the native model on the sample's rows and 1000 generated rows" in result.stdout
    )
    metadata = read_bundle(tmp_path / "m" / "model" / "v1").metadata
    assert metadata.feature_names[0] == "sepal_length_cm"
    assert (metadata.features[0].min, metadata.features[0].max) == (4.3, 7.9)


def test_train_a_regressor_with_params(tmp_path: Path) -> None:
    data = write_csv(tmp_path, "diabetes")
    result = mlkube(
        "train", "--data", str(data), "--target", "target", "--task", "regression",
        "--estimator", "hist_gradient_boosting", "--param", "max_iter=10", "--param", "learning_rate=0.2",
        "--name", "diabetes", "--model-dir", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trained diabetes v1: R² ")
    metadata = read_bundle(tmp_path / "m" / "diabetes" / "v1").metadata
    assert metadata.task == "regression"
    assert metadata.params["estimator"] == "HistGradientBoostingRegressor"
    assert (metadata.params["max_iter"], metadata.params["learning_rate"]) == (10, 0.2)
    card = mlkube("models", "show", "diabetes", "--model-dir", str(tmp_path / "m"))
    assert card.returncode == 0, card.stderr
    assert "task: regression" in card.stdout
    assert "│ R² " in card.stdout


def test_train_on_a_csv_with_text_and_missing_cells(tmp_path: Path) -> None:
    data = write_mixed_csv(tmp_path, "kind")
    result = mlkube(
        "train", "--data", str(data), "--target", "kind", "--estimator", "extra_trees",
        "--n-estimators", "5", "--name", "shop", "--model-dir", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    schema = read_bundle(tmp_path / "m" / "shop" / "v1").metadata.input_schema()
    assert schema.layout == "columns"
    shown = mlkube("models", "show", "shop", "--model-dir", str(tmp_path / "m"))
    assert shown.returncode == 0, shown.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--estimator", "logistic_regression", "--task", "regression"], "is for classification only"),
        (
            ["--estimator", "random_forest", "--param", "leaves=3"],
            "RandomForestRegressor has no parameter 'leaves'",
        ),
        (["--estimator", "random_forest", "--param", "oops"], "write it as name=value"),
        (["--estimator", "bagging"], "unknown estimator 'bagging'"),
    ],
)
def test_training_mistakes_are_one_error_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    data = write_csv(tmp_path, "diabetes")
    task = [] if "--task" in arguments else ["--task", "regression"]
    result = mlkube(
        "train", "--data", str(data), "--target", "target", *task, *arguments, "--model-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
