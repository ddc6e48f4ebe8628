"""Fixtures for the kube commands: a FakeKubectl first on PATH, the CLI, and real local servers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from mlkube.cli import kube_commands
from mlkube.kube.output import Output
from tests.kube.fake_kubectl import FakeKubectl
from tests.support import RunningServer, start_server


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    """A scripted kubectl first on PATH (add docker/minikube/kind with `fake.install(...)`)."""
    double = FakeKubectl(tmp_path / "fake-kubectl")
    for name, value in double.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLKUBE_API_KEY", raising=False)
    return double


PINNED = "kubectl --context minikube --namespace default"
"""How every call after the first two reads once the context is pinned (see `current_context`)."""


def current_context(fake: FakeKubectl, context: str = "minikube", namespace: str = "") -> FakeKubectl:
    """kubectl's answers to the two questions mlkube asks first: `config current-context` (the name and a
    newline) and the context's namespace (`config view --minify -o jsonpath={..namespace}`: the bare
    name, or nothing when the context sets none)."""
    fake.on("config", "current-context", reply={"stdout": f"{context}\n"})
    fake.on("config", "view", "--minify", reply={"stdout": namespace})
    return fake


def printer() -> tuple[Output, io.StringIO]:
    """An Output into a buffer, without colours: what a command prints, as text."""
    buffer = io.StringIO()
    return Output(Console(file=buffer, highlight=False, soft_wrap=True, color_system=None)), buffer


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        """mlkube (the kube commands only)."""

    kube_commands.register(app)
    return app


APP = _app()


def run_cli(*args: str) -> Result:
    """`mlkube <args>` in-process; output and exit code as the user sees them."""
    return CliRunner().invoke(APP, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def server_v1(model_dir: Path) -> Iterator[RunningServer]:
    """A real server reporting the bundle's version, v1."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def server_v3(model_dir: Path) -> Iterator[RunningServer]:
    """A real server reporting v3 (MODEL_VERSION), as the pods of a `mlkube release` would."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1", "MODEL_VERSION": "v3"}) as running:
        yield running


def host_port(server: RunningServer) -> str:
    return server.url.removeprefix("http://")
