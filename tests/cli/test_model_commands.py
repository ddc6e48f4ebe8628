"""`mlkube train` and `mlkube models` as a user types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlkube.model.bundle import read_bundle
from tests.support import free_port, write_fruit_csv
from tests.support import run_mlkube as mlkube


def test_train_then_list(tmp_path: Path) -> None:
    trained = mlkube("train", "--model-dir", str(tmp_path), "--n-estimators", "3", "--seed", "1")
    assert trained.returncode == 0, trained.stderr
    assert "trained iris v1: accuracy" in trained.stdout
    metadata = read_bundle(tmp_path / "iris" / "v1").metadata
    listed = mlkube("models", "--model-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "CREATED", "ACCURACY"]
    assert [row.split() for row in rows] == [
        ["iris", "v1", metadata.created_at, f"{metadata.metrics['accuracy']:.3f}"]
    ]


def test_train_if_missing_does_not_retrain(tmp_path: Path) -> None:
    assert mlkube("train", "--model-dir", str(tmp_path), "--n-estimators", "2").returncode == 0
    again = mlkube("train", "--model-dir", str(tmp_path), "--if-missing")
    assert "a bundle exists, not training" in again.stdout
    assert not (tmp_path / "iris" / "v2").exists()


def test_train_on_a_csv_with_name_and_version(tmp_path: Path) -> None:
    csv_path = write_fruit_csv(tmp_path / "fruit.csv")
    result = mlkube(
        "train",
        "--model-dir",
        str(tmp_path / "m"),
        "--data",
        str(csv_path),
        "--target",
        "fruit",
        "--name",
        "fruit",
        "--version",
        "2024-06",
        "--max-depth",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m" / "fruit" / "2024-06" / "model.onnx").is_file()


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = mlkube(
        "train", "--model-dir", str(tmp_path), "--data", str(tmp_path / "none.csv"), "--target", "y"
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_data_without_target_is_a_usage_error(tmp_path: Path) -> None:
    result = mlkube("train", "--model-dir", str(tmp_path), "--data", "x.csv")
    assert result.returncode == 2
    assert "--data and --target go together" in result.stderr


def test_mlkube_serve_command_serves(model_dir: Path, tmp_path: Path) -> None:
    import httpx

    from tests.support import server_env, wait_until_answering

    env = server_env({"MODEL_DIR": str(model_dir), "WORKERS": "1", "PORT": str(free_port())})
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "mlkube", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until_answering(process, url, log_path)
        assert httpx.get(f"{url}/ready").status_code == 200
    finally:
        process.terminate()
    assert process.wait(30) == 0
