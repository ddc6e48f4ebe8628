"""The app without a server: a small client that sends requests through `App.__rsgi__` in this process.

For unit tests of the data plane and the adapters, for fuzzing thousands of bodies in seconds and for
measuring the app's own cost. granian's RSGI scope and protocol are replaced by test doubles (named as
such below); everything from routing to the encoded answer is the app's real code. Over-the-socket tests
(tests/support.py) stay the proof that the server as a whole behaves.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Test double of granian's RSGI HTTP protocol: hands over a body, keeps the answer it was given."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.answer = b""

    async def __call__(self) -> bytes:
        return self.body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.answer = body


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def in_process_app(bundle: Bundle | None, tmp_path: Path, **environment: str) -> App:
    """An App as a worker builds it (not yet started: call `service.load()` or use `InProcessClient`)."""
    settings = load_settings({"LOG_LEVEL": "WARNING", **environment})
    return App(settings, ModelService(settings, bundle), tmp_path / "draining")


class InProcessClient:
    """Requests through the app's RSGI entry point on an event loop of its own; close() when done."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        app.__rsgi_init__(self.loop)  # as granian does in a worker: load the model, attach the timers
        gc.unfreeze()  # the worker freezes its start-up objects; a test process must not keep that

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        return self.loop.run_until_complete(self.send(method, path, body, headers))

    def post_json(self, path: str, value: object, headers: Mapping[str, str] | None = None) -> Answer:
        return self.request("POST", path, json.dumps(value).encode(), headers)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return self.request("GET", path, b"", headers)

    async def send(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        """One request (concurrent ones share a micro-batch, as in a worker)."""
        sent = {"content-length": str(len(body))} if body else {}
        sent.update({name.lower(): value for name, value in (headers or {}).items()})
        protocol = ProtocolDouble(body)
        await self.app.__rsgi__(ScopeDouble(method, path, sent), protocol)
        return Answer(protocol.status, protocol.answer, dict(protocol.headers))

    def close(self) -> None:
        self.app.__rsgi_del__(self.loop)
        self.loop.close()
