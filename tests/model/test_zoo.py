"""The model zoo: every supported family, trained or imported, bundled, then scored by ONNX Runtime.

Each case goes train (`--estimator`) or import (a skops file the test writes) -> bundle -> the bundle's
ONNX predictor (runtime.py, as serving loads it), and its answers equal the native model's on every
held-out row: classes identical, probabilities and values within the tolerances of convert.py.
The cases are built by tests/model/zoo.py (tests/server/test_zoo_server.py serves the same ones).
Small estimators keep the whole zoo to well under a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io

from mlkube.model.bundle import COLUMNS_LAYOUT, TENSOR_LAYOUT
from mlkube.model.importing import ImportOptions, ImportRefused, import_bundle
from tests.model.zoo import (
    BOOSTING,
    IMPORTED,
    MIXED_TRAINED,
    TRAINED,
    assert_onnx_equals_native,
    imported_boosting_case,
    imported_case,
    imported_pipeline_case,
    mixed_params,
    sklearn_frame,
    trained_case,
    write_boosting_skops,
)


@pytest.mark.parametrize(
    ("estimator", "task", "data", "params"), TRAINED, ids=[f"{e}-{t}-{d}" for e, t, d, _ in TRAINED]
)
def test_trained_bundle_answers_like_the_native_model(
    tmp_path: Path, estimator: str, task: str, data: str, params: dict[str, object]
) -> None:
    case = trained_case(tmp_path, estimator, task, data, params)
    assert case.bundle.metadata.task == task
    assert case.bundle.metadata.input_schema().layout == TENSOR_LAYOUT
    assert_onnx_equals_native(case.bundle, case.native, case.frame)


@pytest.mark.parametrize(("estimator", "task"), MIXED_TRAINED)
def test_mixed_csv_trains_one_pipeline_graph_with_one_input_per_column(
    tmp_path: Path, estimator: str, task: str
) -> None:
    case = trained_case(tmp_path, estimator, task, "mixed", mixed_params(estimator))
    schema = case.bundle.metadata.input_schema()
    assert schema.layout == COLUMNS_LAYOUT
    kinds = {spec.name: (spec.kind, spec.categories, spec.missing) for spec in schema.features}
    assert kinds["colour"] == ("category", ["blue", "green", "red"], True)
    assert kinds["size"][0] == "number"
    assert [spec.onnx_input for spec in schema.features] == ["size", "age", "colour", "city"]
    assert_onnx_equals_native(case.bundle, case.native, case.frame)


# scikit-learn 1.9 deprecates SVC(probability=True) (the issue names it) and its probA_ that skl2onnx reads
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("label", IMPORTED)
def test_imported_skops_model_answers_like_itself(tmp_path: Path, label: str) -> None:
    case = imported_case(tmp_path, label)
    assert case.bundle.metadata.class_labels == sorted(set(case.native.classes_.tolist()))
    assert_onnx_equals_native(case.bundle, case.native, case.frame)


def test_imported_column_transformer_pipeline_over_mixed_data(tmp_path: Path) -> None:
    """A user's own Pipeline(ColumnTransformer) fitted on a frame with text and missing cells."""
    case = imported_pipeline_case(tmp_path)
    metadata = case.bundle.metadata
    assert metadata.class_labels == ["basic", "premium"]
    schema = metadata.input_schema()
    assert schema.layout == COLUMNS_LAYOUT
    assert {spec.name: spec.kind for spec in schema.features} == {
        "size": "number",
        "age": "number",
        "colour": "category",
        "city": "category",
    }
    assert assert_onnx_equals_native(case.bundle, case.native, case.frame) >= 0


@pytest.mark.parametrize("library", BOOSTING)
def test_imported_boosting_models_need_their_types_trusted_by_name(tmp_path: Path, library: str) -> None:
    path, _ = write_boosting_skops(tmp_path, library)
    with pytest.raises(ImportRefused, match=rf"holds types mlkube does not trust: .*{library}") as refused:
        import_bundle(path, ImportOptions(), tmp_path / "models", library)
    assert "--trust " in str(refused.value)
    assert skops.io.get_untrusted_types(file=path)
    case = imported_boosting_case(tmp_path, library)
    assert case.bundle.metadata.feature_names == list(sklearn_frame("breast_cancer")[0].columns)
    assert_onnx_equals_native(case.bundle, case.native, case.frame)
