"""A model trained on a user's CSV serves with its own feature count and class names."""

from __future__ import annotations

from pathlib import Path

from mlkube.model.train import TrainParams, read_csv_dataset, train_bundle
from tests.support import start_server, write_fruit_csv


def test_csv_trained_model_serves_its_classes(tmp_path: Path) -> None:
    dataset = read_csv_dataset(write_fruit_csv(tmp_path / "fruit.csv"), "fruit")
    train_bundle(dataset, TrainParams(n_estimators=5), tmp_path / "models", name="fruit")
    env = {"MODEL_DIR": str(tmp_path / "models"), "MODEL_NAME": "fruit", "WORKERS": "1"}
    with start_server(env) as running:
        answer = running.client.post("/predict", json={"features": [8.0, 2.0]}).json()
        assert answer == {"prediction": 1, "class_name": "cherry", "confidence": 1.0, "version": "v1"}
        wrong = running.client.post("/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
        assert wrong.status_code == 422
        assert wrong.json()["error"] == "features has 4 values, expected 2"
