"""Fixtures chain: a model trained into a temp folder → a real `mlkube serve` on a free port → a client.

Every fixture more than one test module uses lives here; helpers live in tests/support.py. A test module
never imports another test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlkube.model.bundle import Bundle
from mlkube.model.train import TrainParams, load_iris_dataset, train_bundle
from tests.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KEY,
    OLD_KEY,
    RunningServer,
    copy_bundle,
    require_tool,
    start_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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


@pytest.fixture(scope="module")
def keyed_server(model_dir: Path) -> Iterator[RunningServer]:
    """One worker that needs an API key: KEY, or OLD_KEY (two keys at once, as during a rotation)."""
    with start_server(
        {"MODEL_DIR": str(model_dir), "WORKERS": "1", "API_KEY": f"{OLD_KEY},{KEY}"}
    ) as running:
        yield running


@pytest.fixture
def bundle_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the notes' bundle at tmp_path/iris/v1 (so MODEL_DIR=tmp_path serves it)."""
    return copy_bundle(model_dir / "iris" / "v1", tmp_path / "iris" / "v1")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium driven by Playwright; missing, it skips (fails under CI=true) like every tool."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=require_tool("chromium", CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
