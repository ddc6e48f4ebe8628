"""The input schema: older bundles still read, feeds follow the layout, and serving stays light.

Serving a bundle of any layout imports neither scikit-learn, pandas, XGBoost nor LightGBM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlkube.model.bundle import METADATA_FILE, Bundle, FeatureSpec, InputSchema, read_bundle
from mlkube.model.datasets import read_table
from mlkube.model.feeds import onnx_feeds, typical_columns
from mlkube.model.runtime import load_predictor
from mlkube.model.tabular import train_table_bundle
from mlkube.model.train import TrainParams
from tests.model.zoo import write_mixed_csv

NEW_FIELDS = ("task", "inputs", "outputs", "class_labels", "runtime", "source")


def test_a_bundle_without_the_new_fields_still_reads_and_serves(iris_bundle: Bundle, tmp_path: Path) -> None:
    folder = tmp_path / "iris" / "v1"
    shutil.copytree(iris_bundle.path, folder)
    raw = json.loads((folder / METADATA_FILE).read_text())
    for key in NEW_FIELDS:
        raw.pop(key, None)
    (folder / METADATA_FILE).write_text(json.dumps(raw))
    metadata = read_bundle(folder).metadata
    assert (metadata.task, metadata.inputs, metadata.runtime) == ("classification", None, "onnx")
    schema = metadata.input_schema()
    assert schema.layout == "tensor"
    assert [spec.name for spec in schema.features] == metadata.feature_names
    assert (schema.features[0].min, schema.features[0].max) == (4.3, 7.9)
    scores = load_predictor(read_bundle(folder), "onnx").predict(
        np.asarray([[5.1, 3.5, 1.4, 0.2]], np.float32)
    )
    assert scores.classes.tolist() == [0]


def test_the_iris_bundle_records_its_schema(iris_bundle: Bundle) -> None:
    metadata = iris_bundle.metadata
    assert metadata.task == "classification"
    assert metadata.inputs is not None
    assert metadata.inputs.layout == "tensor"
    assert metadata.inputs.tensor_input == "X"
    assert all(spec.kind == "number" and not spec.missing for spec in metadata.inputs.features)


def test_feeds_follow_the_layout() -> None:
    tensor = InputSchema(features=[FeatureSpec(name="a"), FeatureSpec(name="b")])
    feeds = onnx_feeds(tensor, {"a": [1.0, 2.0], "b": [3.0, float("nan")]})
    assert list(feeds) == ["X"]
    assert feeds["X"].dtype == np.float32
    assert feeds["X"].shape == (2, 2)
    columns = InputSchema(
        layout="columns",
        features=[
            FeatureSpec(name="size", onnx_input="size"),
            FeatureSpec(name="colour", kind="category", categories=["red"], onnx_input="colour"),
        ],
    )
    feeds = onnx_feeds(columns, {"size": [1.5], "colour": ["red"]})
    assert feeds["size"].dtype == np.float32
    assert feeds["size"].shape == (1, 1)
    assert feeds["colour"].tolist() == [["red"]]
    assert typical_columns(columns) == {"size": [0.0], "colour": ["red"]}


SERVING_PROBE = """
import sys
from pathlib import Path
from mlkube.model.bundle import read_bundle
from mlkube.model.feeds import onnx_feeds
from mlkube.model.runtime import load_predictor
import mlkube.server.app

bundle = read_bundle(Path(sys.argv[1]))
schema = bundle.metadata.input_schema()
feeds = onnx_feeds(schema, {"size": [50.0, float("nan")], "age": [3.0, 20.0], "colour": ["red", ""],
                            "city": ["Oslo", "Lyon"]})
print(load_predictor(bundle, "onnx", any_schema=True).predict_feeds(feeds).classes.tolist())
training = {"sklearn", "pandas", "xgboost", "lightgbm", "skl2onnx"}
print(sorted({m.split(".")[0] for m in sys.modules} & training))
"""


def test_serving_a_table_bundle_imports_no_training_library(tmp_path: Path) -> None:
    table = read_table(write_mixed_csv(tmp_path, "kind"), "kind", "classification")
    bundle = train_table_bundle(table, TrainParams(n_estimators=5), tmp_path / "models", name="shop")
    done = subprocess.run(
        [sys.executable, "-c", SERVING_PROBE, str(bundle.path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    classes, heavy = done.stdout.splitlines()
    assert len(json.loads(classes)) == 2
    assert heavy == "[]"


def test_the_tensor_only_server_refuses_other_bundles_at_load(tmp_path: Path) -> None:
    """Until the server feeds named columns, such a bundle is refused once (not ready), not per request."""
    import pytest

    from mlkube.errors import BundleError

    table = read_table(write_mixed_csv(tmp_path, "price"), "price", "regression")
    bundle = train_table_bundle(table, TrainParams(n_estimators=3), tmp_path / "models", name="shop")
    with pytest.raises(BundleError, match="a regressor; this server answers with classes"):
        load_predictor(bundle, "onnx")
    assert load_predictor(bundle, "onnx", any_schema=True).runtime == "onnx"
