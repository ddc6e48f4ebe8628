"""KServe's Python SDK against a real server: the requests `kserve.InferenceRESTClient` (kserve 0.21) makes.

The SDK itself is not installed: `kserve` 0.21 adds 34 packages to the dev environment (FastAPI, uvicorn,
grpcio and grpcio-tools, the Kubernetes client, pandas, cryptography, cloudevents...) and would downgrade its
protobuf from 7.36 to 6.33: far too much, and a conflict, for a client whose requests are four plain GETs
and a POST. `KServeRestCalls` below sends, with the
SDK's own HTTP client (httpx.AsyncClient, default headers), exactly the requests of its
`python/kserve/kserve/inference_client.py`, and reads the answers as it does:

- `is_server_live`, protocol v1: `GET` the base URL itself (`/`), success, then `json()["status"].lower()
  == "alive"`; protocol v2: `GET /v2/health/live`, `json()["live"]`;
- `is_server_ready` (v2 only): `GET /v2/health/ready`, `json()["ready"]`;
- `is_model_ready`, v1: `GET /v1/models/{name}`, 503 is False, else `json()["ready"]`; v2: `GET
  /v2/models/{name}/ready`, success is True;
- `infer`, v1, with a dict: the dict as JSON bytes in `content=`, no Content-Type header, `POST
  /v1/models/{name}:predict`, the answer's JSON; on an error status it reads `json()["error"]` when the
  Content-Type is exactly `application/json`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from tests.support import NOTES_ROW, RunningServer, start_server


class KServeRestCalls:
    """What InferenceRESTClient sends and how it reads the answer, for one protocol ("v1" or "v2")."""

    def __init__(self, base_url: str, protocol: str) -> None:
        self.base_url = httpx.URL(base_url)
        self.protocol = protocol

    def _url(self, relative: str) -> httpx.URL:
        return self.base_url.join(self.base_url.path + relative)

    async def is_server_live(self) -> bool:
        relative = "" if self.protocol == "v1" else f"{self.protocol}/health/live"
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url(relative))
        response.raise_for_status()
        if self.protocol == "v1":
            return bool(response.json().get("status").lower() == "alive")
        return bool(response.json().get("live"))

    async def is_server_ready(self) -> bool:
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url(f"{self.protocol}/health/ready"))
        response.raise_for_status()
        return bool(response.json().get("ready"))

    async def is_model_ready(self, name: str) -> bool:
        relative = f"{self.protocol}/models/{name}" + ("" if self.protocol == "v1" else "/ready")
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url(relative))
        if self.protocol == "v2":
            return response.is_success
        if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
            return False
        response.raise_for_status()
        return bool(response.json().get("ready"))

    async def infer_v1(self, name: str, data: dict[str, Any]) -> tuple[int, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                self._url(f"v1/models/{name}:predict"), content=json.dumps(data).encode()
            )
        if response.headers.get("content-type") == "application/json":
            return response.status_code, response.json()
        return response.status_code, response.text


def test_the_v1_sdk_sees_a_live_ready_server_and_gets_predictions(server: RunningServer) -> None:
    calls = KServeRestCalls(server.url, "v1")
    assert asyncio.run(calls.is_server_live()) is True
    assert asyncio.run(calls.is_model_ready("iris")) is True
    status, answer = asyncio.run(calls.infer_v1("iris", {"instances": [NOTES_ROW, [6.7, 3.0, 5.2, 2.3]]}))
    assert (status, answer) == (200, {"predictions": [0, 2]})


def test_the_v1_sdk_reads_its_error_messages(server: RunningServer) -> None:
    status, answer = asyncio.run(KServeRestCalls(server.url, "v1").infer_v1("iris", {"instances": [[1, 2]]}))
    assert status == 422
    assert "expected 4" in answer["error"]


def test_the_v2_sdk_sees_a_live_ready_server(server: RunningServer) -> None:
    calls = KServeRestCalls(server.url, "v2")
    assert asyncio.run(calls.is_server_live()) is True
    assert asyncio.run(calls.is_server_ready()) is True
    assert asyncio.run(calls.is_model_ready("iris")) is True


def test_without_a_model_the_sdk_sees_live_but_not_ready(tmp_path: Path) -> None:
    with start_server({"MODEL_DIR": str(tmp_path), "WORKERS": "1"}) as running:
        v1 = KServeRestCalls(running.url, "v1")
        v2 = KServeRestCalls(running.url, "v2")
        assert asyncio.run(v1.is_server_live()) is True
        assert asyncio.run(v1.is_model_ready("iris")) is False
        assert asyncio.run(v2.is_server_live()) is True
        assert asyncio.run(v2.is_model_ready("iris")) is False


def test_a_browser_still_gets_the_page_at_the_root(server: RunningServer) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = server.client.get("/", headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
