"""The HTTP layer: parse, validate, authenticate, map errors to statuses; the work is the service's.

`App` is an RSGI application (granian's native interface, the fastest it serves). One instance lives in
each worker process; `build_app` is called there, after the fork, so each worker has its own ONNX session.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mlkube.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RequestError,
    Unauthorized,
    UnsupportedMediaType,
)
from mlkube.model.bundle import Bundle
from mlkube.server import metrics
from mlkube.server.batching import MicroBatcher
from mlkube.server.docs import ApiDocs
from mlkube.server.http import JSON, MethodNotAllowed, Request, Response, Route, Router, error_response
from mlkube.server.kserve import protocol_routes
from mlkube.server.logs import AccessLog
from mlkube.server.page import ModelPage
from mlkube.server.schemas import BatchPrediction, Health, PredictRequest, Readiness
from mlkube.server.service import ModelService
from mlkube.settings import Settings

log = logging.getLogger("mlkube.server")

_encode = msgspec.json.Encoder().encode
_decode_predict = msgspec.json.Decoder(PredictRequest).decode
_HEALTHY = _encode(Health("healthy"))
BODY_SECONDS = 10.0  # as long as granian gives a client for its headers (header_read_timeout)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


class Overloaded(RequestError):
    """More than MAX_IN_FLIGHT requests in this worker: shed this one (503, Retry-After, then close)."""

    status = 503


class RequestTimeout(RequestError):
    """The client did not send its whole body within BODY_SECONDS."""

    status = 408


class BodyDeadlines:
    """The requests of a worker that are reading a body; a timer cancels those reading for too long.

    Without it, a client that sends its headers and then trickles its body, or stops, holds a MAX_IN_FLIGHT
    slot and a connection forever (granian's header_read_timeout stops at the headers). Per request the
    app only adds and removes its task in `reading` (with the current tick); the check runs once a second.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reading: dict[asyncio.Task[Any] | None, int] = {}  # None: outside a task (never in granian)
        self.expired: set[asyncio.Task[Any]] = set()
        self.tick = 0
        self._call_later: Any = None

    def attach(self, call_later: Any) -> None:
        self._call_later = call_later
        call_later(1.0, self._sweep)

    def _sweep(self) -> None:
        self.tick += 1
        oldest = self.tick - self.seconds
        for task, started in list(self.reading.items()):
            if task is not None and started < oldest and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        self._call_later(1.0, self._sweep)


class App:
    """One worker's application: routes, auth, limits, logging and metrics around a `ModelService`."""

    def __init__(self, settings: Settings, service: ModelService, drain_marker: Path) -> None:
        self.settings = settings
        self.service = service
        self.metrics = metrics.Metrics(service.name, service.version)
        self.batcher = MicroBatcher(service.score, settings.micro_batch_rows, self.metrics.observe_model_call)
        self.access_log = AccessLog(enabled=settings.log_level in ("DEBUG", "INFO"))
        self._drain_marker = str(drain_marker)
        self._keys = [key.encode() for key in settings.api_key]
        self._in_flight = 0
        self.body_deadlines = BodyDeadlines(BODY_SECONDS)
        self.router = Router(self.routes())

    def routes(self) -> list[Route]:
        return [
            Route("/predict", {"POST": self.predict}, protected=True, summary="Score one row or a batch"),
            Route("/health", {"GET": self.health}, summary="Liveness: the process answers"),
            Route("/ready", {"GET": self.ready}, summary="Readiness: the model is loaded and warm"),
            Route("/metrics", {"GET": self.prometheus}, summary="Prometheus metrics of all workers"),
            *protocol_routes(self.service, self.metrics, self.batcher, self.ready),
            *ApiDocs(lambda: self.router.routes, self.service, self.settings).routes(),
            *ModelPage(self).routes(),
        ]

    # --- lifecycle (RSGI) -------------------------------------------------------------------------

    def __rsgi_init__(self, loop: Any) -> None:
        self.service.load()
        self.metrics.set_model_info(self.settings.model_runtime, self.service.ready)
        self.metrics.attach(loop.call_later)
        self.batcher.attach(loop)
        self.access_log.attach(loop.call_later)
        self.body_deadlines.attach(loop.call_later)
        # everything made so far lives as long as the worker: take it out of the collector's scans, which
        # otherwise walk it on every full collection (batches of lists trigger them; p99 halved at c=8)
        gc.freeze()

    def __rsgi_del__(self, loop: Any) -> None:
        self.metrics.flush()
        self.access_log.flush()

    # --- request path -----------------------------------------------------------------------------

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        started = time.perf_counter()
        headers: Mapping[str, str] = scope.headers
        request = Request(scope.method, scope.path, headers, request_id=_request_id(headers))
        route_label = "unmatched"
        self._in_flight += 1
        try:
            found = self.router.match(request.path)
            if found is not None:
                route_label = found[0].template
            response = await self._respond(found, request, protocol)
        except RequestError as error:
            response = _error_for(error)
            if not request.body and _has_body(headers):
                # answered without reading the body: hyper will close the connection, so say so, or the
                # client may send its next request on it and lose it
                response.headers.append(("connection", "close"))
        except Exception:
            log.exception("unexpected error", extra={"request_id": request.request_id, "path": request.path})
            response = error_response(
                500, "internal error; see the server log for request " + request.request_id
            )
        finally:
            self._in_flight -= 1
        response.headers.append(("content-type", response.content_type))
        response.headers.append(("x-request-id", request.request_id))
        protocol.response_bytes(response.status, response.headers, response.body)
        self._record(request, route_label, response.status, time.perf_counter() - started)

    async def _respond(
        self, found: tuple[Route, dict[str, str]] | None, request: Request, protocol: Any
    ) -> Response:
        if found is None:
            raise NotFound(f"no route {request.method} {request.path}")
        route, request.params = found
        handler = route.handler_for(request.method, request.path)
        if route.protected:
            self._check_in_flight()
            self._authenticate(request.headers)
        if route.reads_body and request.method == "POST":
            _check_content_type(request.headers)
            request.body = await self._read_body(request.headers, protocol)
        response = handler(request)
        return response if isinstance(response, Response) else await response

    def _check_in_flight(self) -> None:
        if self._in_flight > self.settings.max_in_flight:
            raise Overloaded(
                f"overloaded: more than MAX_IN_FLIGHT={self.settings.max_in_flight} requests in this worker"
            )

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        if not self._keys:
            return
        presented = _presented_key(headers)
        if presented is None:
            raise Unauthorized("missing API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'")
        candidate = presented.encode()
        # compare against every key so the time taken does not tell which key (or none) matched
        matched = [hmac.compare_digest(candidate, key) for key in self._keys]
        if not any(matched):
            raise Unauthorized("invalid API key")

    async def _read_body(self, headers: Mapping[str, str], protocol: Any) -> bytes:
        deadlines = self.body_deadlines
        task = asyncio.current_task()
        deadlines.reading[task] = deadlines.tick
        try:
            return await self._receive(headers, protocol)
        except asyncio.CancelledError:
            if task is None or task not in deadlines.expired:
                raise
            deadlines.expired.discard(task)
            if hasattr(task, "uncancel"):  # Python >= 3.11: this cancellation is handled
                task.uncancel()
            raise RequestTimeout(f"request body not received within {BODY_SECONDS:g} s") from None
        finally:
            del deadlines.reading[task]

    async def _receive(self, headers: Mapping[str, str], protocol: Any) -> bytes:
        limit = self.settings.max_body_bytes
        declared = _content_length(headers)
        if declared is not None:
            if declared > limit:
                raise PayloadTooLarge(f"body of {declared} bytes is over MAX_BODY_BYTES={limit}")
            return bytes(await protocol())
        chunks: list[bytes] = []
        received = 0
        async for chunk in protocol:
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"body is over MAX_BODY_BYTES={limit}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _record(self, request: Request, route: str, status: int, seconds: float) -> None:
        self.metrics.observe_request(route, request.method, status, seconds)
        self.access_log.record(request.method, request.path, status, seconds, request.request_id)

    # --- handlers ---------------------------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        """The notes' route: `{"features": [...]}` → one answer; `{"instances": [[...], ...]}` → a list."""
        self._require_ready()
        body = _decode(request.body)
        if body.features is not None and body.instances is not None:
            raise InvalidInput("send either 'features' (one row) or 'instances' (a batch), not both")
        if body.features is not None:
            rows = [body.features]
        elif body.instances is not None:
            rows = body.instances
        else:
            raise InvalidInput(f"missing 'features': a list of {self.service.n_features} numbers")
        scores = await self.batcher.score(self.service.rows_to_array(rows))
        confidences = self.service.confidences(scores)
        answers = self.service.predictions(scores.classes.tolist(), confidences)
        self.metrics.observe_scores(self.service.class_names, scores, confidences)
        if body.features is not None:
            return Response(200, _encode(answers[0]))
        return Response(200, _encode(BatchPrediction(answers)))

    def health(self, request: Request) -> Response:
        return Response(200, _HEALTHY)

    def ready(self, request: Request) -> Response:
        service = self.service
        if os.path.exists(self._drain_marker):  # noqa: PTH110 - a stat per probe; the marker is a str path
            return _readiness(503, "not ready", service, "shutting down")
        if not service.ready:
            return _readiness(503, "not ready", service, service.reason)
        return _readiness(200, "ready", service)

    def prometheus(self, request: Request) -> Response:
        self.metrics.flush()
        return Response(200, metrics.render(), content_type=metrics.CONTENT_TYPE)

    def _require_ready(self) -> None:
        if not self.service.ready:
            raise RequestError(f"model not ready: {self.service.reason}", status=503)


def _decode(body: bytes) -> PredictRequest:
    try:
        return _decode_predict(body)
    except msgspec.ValidationError as error:
        raise InvalidInput(_readable(str(error))) from None
    except msgspec.DecodeError as error:
        raise RequestError(f"body is not valid JSON: {error}") from None
    except RecursionError:  # msgspec's guard against nesting deep enough to overflow the C stack
        raise RequestError("body is not valid JSON: nested too deeply") from None


def _readable(message: str) -> str:
    """msgspec says "Expected `float`, got `str` - at `$.features[1]`"; keep it, drop the markup."""
    return message.replace("`", "")


def _readiness(status: int, word: str, service: ModelService, reason: str | None = None) -> Response:
    body = Readiness(word, service.name, service.version, service.settings.model_runtime, reason)
    return Response(status, _encode(body))


def _error_for(error: RequestError) -> Response:
    response = error_response(error.status, str(error))
    if isinstance(error, MethodNotAllowed):
        response.headers.append(("allow", ", ".join(error.allowed)))
    if isinstance(error, Unauthorized):
        response.headers.append(("www-authenticate", 'Bearer realm="mlkube"'))
    if error.status == 503:
        response.headers.append(("retry-after", "1"))
    return response


def _has_body(headers: Mapping[str, str]) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    # 96 random bits; an id names a request, it is no secret (random reseeds itself in a forked worker)
    return f"{random.getrandbits(96):024x}"


def _presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise RequestError(f"content-length {value!r} is not a number")
    return int(value)


def _check_content_type(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type")
    if content_type and content_type != JSON and not _JSON_TYPE.match(content_type):
        raise UnsupportedMediaType(f"content-type {content_type!r} is not JSON: send 'application/json'")


def build_app(settings: Settings, bundle: Bundle | None, load_error: str | None, drain_marker: Path) -> App:
    """Called in each worker after the fork (granian's target loader)."""
    return App(settings, ModelService(settings, bundle, load_error), drain_marker)
