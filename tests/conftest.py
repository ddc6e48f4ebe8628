"""Fixtures chain: a model trained into a temp folder → a real `mlkube serve` on a free port → a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.model.bundle import Bundle
from mlkube.model.train import TrainParams, load_iris_dataset, train_bundle
from tests.support import RunningServer, start_server

NOTES_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notes' Iris forest, trained once per session into a temp folder (never committed)."""
    root = tmp_path_factory.mktemp("models")
    train_bundle(load_iris_dataset(), TrainParams(), root, name="iris", version="v1")
    return root


@pytest.fixture(scope="session")
def iris_bundle(model_dir: Path) -> Bundle:
    from mlkube.model.bundle import read_bundle

    return read_bundle(model_dir / "iris" / "v1")


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[RunningServer]:
    """One worker serving the notes' model with default settings and no API key."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def two_workers(model_dir: Path) -> Iterator[RunningServer]:
    """Two worker processes, as a 2-CPU pod runs."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2"}) as running:
        yield running
