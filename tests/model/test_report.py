"""The training report: written into the bundle, hashed like the model, readable, and reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlkube.errors import BundleError
from mlkube.model.bundle import Bundle, Metadata, read_bundle, sha256_file
from mlkube.model.report import (
    CONFUSION_MATRIX_FILE,
    FEATURE_IMPORTANCE_FILE,
    REPORT_FILE,
    REPORT_FILES,
    confusion_matrix_png,
    feature_importance_png,
    render_report,
)
from mlkube.model.runtime import OnnxPredictor
from mlkube.model.train import TrainParams, load_iris_dataset, read_csv_dataset, train_bundle
from tests.support import png_size, write_fruit_csv


def test_report_files_are_in_the_bundle_and_hashed(iris_bundle: Bundle) -> None:
    for name in REPORT_FILES:
        path = iris_bundle.file(name)
        assert path.is_file()
        assert iris_bundle.metadata.files[name] == sha256_file(path)


def test_a_tampered_report_is_refused_naming_the_file(bundle_copy: Path) -> None:
    with (bundle_copy / REPORT_FILE).open("a", encoding="utf-8") as report:
        report.write("\naccuracy: 1.0 (trust me)\n")
    with pytest.raises(BundleError, match=r"report\.md: sha256 mismatch"):
        read_bundle(bundle_copy)


def test_a_deleted_plot_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / CONFUSION_MATRIX_FILE).unlink()
    with pytest.raises(BundleError, match=r"confusion_matrix\.png: missing from the bundle"):
        read_bundle(bundle_copy)


def test_report_has_data_parameters_metrics_and_per_class_sections(iris_bundle: Bundle) -> None:
    report = iris_bundle.file(REPORT_FILE).read_text(encoding="utf-8")
    metadata = iris_bundle.metadata
    assert report.startswith("# iris v1\n")
    for heading in ("## Data", "## Parameters", "## Metrics", "## Per class", "## Confusion matrix"):
        assert f"\n{heading}\n" in report
    assert "150 rows, 4 features, 3 classes; 120 rows for training, 30 held out" in report
    assert "| setosa | 50 | 33.3% |" in report
    assert "| sepal_length_cm | 4.3 | 5.843 | 7.9 |" in report
    assert "| n_estimators | 10 |" in report
    assert f"| accuracy | {metadata.metrics['accuracy']:.4g} |" in report
    assert "| setosa | 1 | 1 | 1 | 10 |" in report  # precision, recall, F1, support
    assert f"![Confusion matrix]({CONFUSION_MATRIX_FILE})" in report
    assert f"![Feature importance]({FEATURE_IMPORTANCE_FILE})" in report


def test_confusion_matrix_table_matches_the_metrics(iris_bundle: Bundle) -> None:
    report = iris_bundle.file(REPORT_FILE).read_text(encoding="utf-8")
    matrix = iris_bundle.metadata.metrics["confusion_matrix"]
    assert isinstance(matrix, list)
    for name, row in zip(iris_bundle.metadata.class_names, matrix, strict=True):
        assert f"| {name} | {' | '.join(map(str, row))} |" in report


def test_plots_are_pngs_of_a_readable_size(iris_bundle: Bundle) -> None:
    for name in (CONFUSION_MATRIX_FILE, FEATURE_IMPORTANCE_FILE):
        width, height = png_size(iris_bundle.file(name).read_bytes())
        assert 300 <= width <= 1200
        assert 200 <= height <= 1200


def test_plots_are_byte_identical_for_the_same_inputs() -> None:
    matrix = [[10, 0], [1, 9]]
    assert confusion_matrix_png(matrix, ["a", "b"]) == confusion_matrix_png(matrix, ["a", "b"])
    assert feature_importance_png(["x", "y"], [0.3, 0.7]) == feature_importance_png(["x", "y"], [0.3, 0.7])


def test_same_seed_gives_the_same_plots(tmp_path: Path) -> None:
    dataset = load_iris_dataset()
    first = train_bundle(dataset, TrainParams(n_estimators=3, seed=5), tmp_path, name="iris")
    second = train_bundle(dataset, TrainParams(n_estimators=3, seed=5), tmp_path, name="iris")
    for name in (CONFUSION_MATRIX_FILE, FEATURE_IMPORTANCE_FILE):
        assert first.metadata.files[name] == second.metadata.files[name]


def test_many_classes_and_long_names_still_draw() -> None:
    """The figure grows with the class count; the tight box takes in long labels instead of cutting them."""
    two = png_size(confusion_matrix_png(np.eye(2, dtype=int).tolist(), ["a", "b"]))
    short = png_size(confusion_matrix_png(np.eye(8, dtype=int).tolist(), [f"c{i}" for i in range(8)]))
    long_names = [f"class-with-a-long-name-{i}" for i in range(8)]
    long = png_size(confusion_matrix_png(np.eye(8, dtype=int).tolist(), long_names))
    assert short[0] > two[0]
    assert short[1] > two[1]
    assert long[0] > short[0]
    assert long[1] > short[1]


def test_a_pipe_in_a_column_name_does_not_break_the_table(iris_bundle: Bundle) -> None:
    import msgspec

    metadata: Metadata = msgspec.structs.replace(
        iris_bundle.metadata, feature_names=["a|b", *iris_bundle.metadata.feature_names[1:]]
    )
    report = render_report(metadata, [50, 50, 50], [0.25, 0.25, 0.25, 0.25])
    assert "| a\\|b | - | - | - | 0.250 |" in report


def test_every_class_gets_a_sample_row_the_model_puts_in_that_class(iris_bundle: Bundle) -> None:
    dataset = load_iris_dataset()
    samples = iris_bundle.metadata.samples
    assert len(samples) == len(dataset.class_names)
    training_rows = {tuple(row) for row in dataset.features.tolist()}
    for index, row in enumerate(samples):
        assert tuple(row) in training_rows
        predicted = OnnxPredictor(iris_bundle).predict(np.asarray([row], dtype=np.float32)).classes
        assert predicted.tolist() == [index]


def test_a_csv_model_gets_its_report_with_its_own_names(tmp_path: Path) -> None:
    dataset = read_csv_dataset(write_fruit_csv(tmp_path / "fruit.csv"), "fruit")
    bundle = train_bundle(dataset, TrainParams(n_estimators=3), tmp_path / "models", name="fruit")
    report = bundle.file(REPORT_FILE).read_text(encoding="utf-8")
    assert "# fruit v1" in report
    assert "| apple | 20 | 50.0% |" in report
    assert "| weight_g |" in report
    assert len(bundle.metadata.samples) == 2
