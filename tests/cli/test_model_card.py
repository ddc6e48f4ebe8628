"""`mlkube models show NAME [VERSION]`: the model card in the terminal and where the report is."""

from __future__ import annotations

from pathlib import Path

import msgspec

from mlkube.model.bundle import METADATA_FILE, sha256_file
from tests.support import run_mlkube as mlkube


def test_show_prints_the_card_tables_and_the_report_path(model_dir: Path) -> None:
    result = mlkube("models", "show", "iris", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("iris v1\n")
    assert "classes: setosa, versicolor, virginica" in out
    for title in ("Metrics (held-out rows)", "Per class", "Features (training range)", "Parameters"):
        assert title in out
    assert "│ accuracy " in out
    assert "│ sepal_length_cm │ 4.3 │ 5.843 │ 7.9 │" in out
    assert "│ n_estimators │ " in out
    report = (model_dir / "iris" / "v1" / "report.md").resolve()
    assert f"Report: {report}" in out


def test_show_prints_the_digest_to_pin_in_model_sha256(model_dir: Path) -> None:
    result = mlkube("models", "show", "iris", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr
    digest = sha256_file(model_dir / "iris" / "v1" / METADATA_FILE)
    assert f"Bundle digest: {digest}" in result.stdout


def test_show_takes_a_version(model_dir: Path) -> None:
    result = mlkube("models", "show", "iris", "v1", "--model-dir", str(model_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("iris v1\n")


def test_show_of_an_unknown_version_lists_the_known_ones(model_dir: Path) -> None:
    result = mlkube("models", "show", "iris", "v9", "--model-dir", str(model_dir))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no version 'v9' of model 'iris' under {model_dir} (versions: v1)"


def test_show_of_an_unknown_model_is_one_error_line(tmp_path: Path) -> None:
    result = mlkube("models", "show", "wine", "--model-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: no bundle of model 'wine'")
    assert "Traceback" not in result.stderr


def test_show_refuses_a_tampered_report(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "report.md").write_text("# iris v1\n\naccuracy: 100%\n")
    result = mlkube("models", "show", "iris", "--model-dir", str(tmp_path))
    assert result.returncode == 1
    assert "report.md: sha256 mismatch" in result.stderr


def test_show_says_when_a_bundle_has_no_report(bundle_copy: Path, tmp_path: Path) -> None:
    """A bundle written before reports existed still shows; the card says there is no report."""
    folder = bundle_copy
    raw = msgspec.json.decode((folder / METADATA_FILE).read_bytes())
    for name in ("report.md", "confusion_matrix.png", "feature_importance.png"):
        del raw["files"][name]
        (folder / name).unlink()
    (folder / METADATA_FILE).write_bytes(msgspec.json.encode(raw))
    result = mlkube("models", "show", "iris", "--model-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "No training report in this bundle" in result.stdout
