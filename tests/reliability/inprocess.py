"""The app without a server: test doubles of granian's RSGI objects, for measuring and fuzzing in-process."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from mlkube.model.bundle import Bundle
from mlkube.server.app import App
from mlkube.server.service import ModelService
from mlkube.settings import load_settings


class ScopeDouble(msgspec.Struct):
    """Test double of granian's RSGI scope: the three fields the app reads."""

    method: str
    path: str
    headers: Mapping[str, str]


class ProtocolDouble:
    """Test double of granian's RSGI HTTP protocol: hands over a body, keeps the status it was given."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0

    async def __call__(self) -> bytes:
        return self.body

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status


def in_process_app(bundle: Bundle, tmp_path: Path, **environment: str) -> App:
    """An App as a worker builds it (not yet loaded: call `__rsgi_init__` or `service.load()`)."""
    settings = load_settings({"LOG_LEVEL": "WARNING", **environment})
    return App(settings, ModelService(settings, bundle), tmp_path / "no-drain-marker")
