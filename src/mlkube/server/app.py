"""The RSGI application: route, authenticate, bound, read the body, answer errors, log and count.

`App` is an RSGI application (granian's native interface, the fastest it serves). One instance lives in
each worker process; `build_app` is called there, after the fork, so each worker has its own ONNX session.

What a request does is the protocol adapters' and the data plane's: the app assembles the route table from
the adapters (`simple_api`, `kserve_v1`, `open_inference`, `page`, `docs`), each given the worker's
`DataPlane`, and adds only `/metrics`. Around every route it does the same things: the in-flight cap and
the API key (protected routes), Content-Type, body size and body deadline (POST routes), the one mapping
of a `RequestError` to its answer, the access log line and the request metrics by route template.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlkube.api.open_inference import BINARY_HEADER
from mlkube.errors import (
    MethodNotImplemented,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    UnsupportedMediaType,
)
from mlkube.model.bundle import Bundle
from mlkube.server import metrics
from mlkube.server.auth import ApiKeys
from mlkube.server.dataplane import DataPlane
from mlkube.server.docs import ApiDocs
from mlkube.server.http import (
    JSON,
    Operation,
    Request,
    Response,
    Route,
    Router,
    error_for,
    error_response,
    is_csv,
    shown,
)
from mlkube.server.kserve_v1 import KServeV1, liveness
from mlkube.server.logs import AccessLog
from mlkube.server.mlflow_scoring import MlflowScoring
from mlkube.server.open_inference import OpenInferenceV2
from mlkube.server.page import ModelPage
from mlkube.server.service import ModelService
from mlkube.server.simple_api import SimpleApi
from mlkube.settings import Settings

log = logging.getLogger("mlkube.server")

BODY_SECONDS = 10.0  # as long as granian gives a client for its headers (header_read_timeout)
LINGER_BYTES = 8 * 2**20
LINGER_SECONDS = 2.0
"""After an answer given before the body was read: how much of the body is read and dropped, and for how
long at most, so a client that writes its whole body before reading (http.client, urllib) gets the answer
instead of a broken pipe (nginx's lingering close)."""
_NO_LINGER = frozenset({408, 503})
DRAIN_CHECK_SECONDS = 0.1
METHOD_LABELS = {"GET": "GET", "HEAD": "HEAD", "POST": "POST"}
"""The `method` label of the metrics: these three, and OTHER for every other method (a closed set)."""
OTHER_METHODS = frozenset({"PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})
"""Methods HTTP defines that no route takes (405 with Allow); any other method is 501."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)
_BINARY_TYPE = re.compile(r"^application/octet-stream\s*(;|$)", re.IGNORECASE)


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
    """One worker's application: the adapters' routes on one `DataPlane`, with auth, limits and logging."""

    def __init__(
        self, settings: Settings, service: ModelService, drain_marker: Path, api_keys: ApiKeys | None = None
    ) -> None:
        self.settings = settings
        self.service = service
        self.plane = DataPlane(settings, service, drain_marker)
        self.metrics = self.plane.metrics
        self.access_log = AccessLog(enabled=settings.log_level in ("DEBUG", "INFO"))
        self.api_keys = api_keys if api_keys is not None else ApiKeys.from_settings(settings)
        self._check_key = self.api_keys.check
        self._drain_marker = drain_marker
        self.draining = False
        self._call_later: Any = None
        self._in_flight = 0
        self.metrics.watch_in_flight(lambda: self._in_flight)
        self.body_deadlines = BodyDeadlines(BODY_SECONDS)
        self.router = Router(self.routes())

    def routes(self) -> list[Route]:
        """Every route: each protocol adapter's, on the data plane, and the metrics."""
        plane = self.plane
        return [
            *SimpleApi(plane).routes(),
            Route(
                "/metrics",
                {"GET": self.prometheus},
                summary="Prometheus metrics of all workers",
                operations={"GET": Operation(responses={200: str}, content_type=metrics.CONTENT_TYPE)},
            ),
            *KServeV1(plane).routes(),
            *OpenInferenceV2(plane).routes(),
            *MlflowScoring(plane).routes(),
            *ApiDocs(plane, lambda: self.router.routes).routes(),
            *ModelPage(plane, not_html=liveness).routes(),
        ]

    # --- lifecycle (RSGI) -------------------------------------------------------------------------

    def __rsgi_init__(self, loop: Any) -> None:
        self.plane.start(loop)
        self.access_log.attach(loop.call_later)
        self.body_deadlines.attach(loop.call_later)
        self.api_keys.attach(loop.call_later)
        self._call_later = loop.call_later
        self._watch_drain()
        # everything made so far lives as long as the worker: take it out of the collector's scans, which
        # otherwise walk it on every full collection (batches of lists trigger them; p99 halved at c=8)
        gc.freeze()

    def __rsgi_del__(self, loop: Any) -> None:
        self.metrics.flush()
        self.access_log.flush()

    def _watch_drain(self) -> None:
        """From SIGTERM on (the runner's marker file), every answer says `Connection: close`.

        Checked on a timer, not per request; a client told to close sends its next request on a new
        connection, which the load balancer no longer routes here, instead of on one the server is about
        to close under it.
        """
        self.draining = os.path.exists(self._drain_marker)  # noqa: PTH110 - one stat per tick
        if not self.draining:
            self._call_later(DRAIN_CHECK_SECONDS, self._watch_drain)

    # --- request path -----------------------------------------------------------------------------

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        started = time.perf_counter()
        headers: Mapping[str, str] = scope.headers
        method = scope.method
        method_label = METHOD_LABELS.get(method, "OTHER")
        if method_label == "OTHER" and method not in OTHER_METHODS:
            method = "OTHER"  # never logged, counted or echoed as sent: it may be hundreds of KB
        request = Request(method, scope.path, headers, request_id=_request_id(headers))
        route_label = "unmatched"
        self._in_flight += 1
        try:
            if method == "OTHER":
                raise MethodNotImplemented()
            found = self.router.match(request.path)
            if found is not None:
                route_label = found[0].template
            response = await self._respond(found, request, protocol)
        except RequestError as error:
            response = error_for(error)
            if not request.body and _has_body(headers):
                # answered without reading the body: read and drop some of it first, so a client that
                # writes its whole body before reading gets this answer (not for a body that stalled,
                # nor when shedding load: an overloaded worker keeps its CPU for the requests it
                # admitted); then hyper closes the connection, so say so, or the client may send its
                # next request on it and lose it
                if error.status not in _NO_LINGER:
                    await _linger(headers, protocol)
                response.headers.append(("connection", "close"))
        except Exception:
            where = {"request_id": request.request_id, "path": shown(request.path)}
            log.exception("unexpected error", extra=where)
            response = error_response(
                500, "internal error; see the server log for request " + request.request_id
            )
        finally:
            self._in_flight -= 1
        response.headers.append(("content-type", response.content_type))
        response.headers.append(("x-request-id", request.request_id))
        if self.draining:
            response.headers.append(("connection", "close"))
        protocol.response_bytes(response.status, response.headers, response.body)
        self._record(request, route_label, method_label, response.status, time.perf_counter() - started)

    async def _respond(
        self, found: tuple[Route, dict[str, str]] | None, request: Request, protocol: Any
    ) -> Response:
        if found is None:
            raise NotFound(f"no route {request.method} {shown(request.path)}")
        route, request.params = found
        handler = route.handler_for(request.method, request.path)
        if route.protected:
            self._check_in_flight()
            self._check_key(request.headers)
        if route.reads_body and request.method == "POST":
            _check_content_type(request.headers, route.binary_body, route.csv_body)
            request.body = await self._read_body(request.headers, protocol)
        response = handler(request)
        return response if isinstance(response, Response) else await response

    def _check_in_flight(self) -> None:
        if self._in_flight > self.settings.max_in_flight:
            raise Overloaded(
                f"overloaded: more than MAX_IN_FLIGHT={self.settings.max_in_flight} requests in this worker"
            )

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
                chunks.clear()  # then read on and drop, up to LINGER_BYTES: see `_linger`
                if received > LINGER_BYTES:
                    break
            else:
                chunks.append(chunk)
        if received > limit:
            raise PayloadTooLarge(f"body is over MAX_BODY_BYTES={limit}")
        return b"".join(chunks)

    def _record(self, request: Request, route: str, method: str, status: int, seconds: float) -> None:
        self.metrics.observe_request(route, method, status, seconds)
        self.access_log.record(request.method, request.path, status, seconds, request.request_id)

    def prometheus(self, request: Request) -> Response:
        self.metrics.flush(scraping=True)
        return Response(200, metrics.render(), content_type=metrics.CONTENT_TYPE)


def _has_body(headers: Mapping[str, str]) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    # 96 random bits; an id names a request, it is no secret (random reseeds itself in a forked worker)
    return f"{random.getrandbits(96):024x}"


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not (len(value) <= 18 and value.isascii() and value.isdigit()):
        raise RequestError(f"content-length {value[:40]!r} is not a number")
    return int(value)


async def _linger(headers: Mapping[str, str], protocol: Any) -> None:
    """Read and drop the unread body, at most LINGER_BYTES for LINGER_SECONDS; give up on anything odd.

    Not when the client waits for `100 Continue` before sending it: it reads the answer first.
    """
    if headers.get("expect", "").lower() == "100-continue":
        return
    try:
        declared = _content_length(headers)
    except RequestError:
        return
    if declared is not None and declared > LINGER_BYTES:
        return
    with contextlib.suppress(Exception):  # the client left or took too long: the answer goes out anyway
        await asyncio.wait_for(_drop_body(protocol), LINGER_SECONDS)


async def _drop_body(protocol: Any) -> None:
    received = 0
    async for chunk in protocol:
        received += len(chunk)
        if received > LINGER_BYTES:
            return


def _check_content_type(
    headers: Mapping[str, str], binary_body: bool = False, csv_body: bool = False
) -> None:
    content_type = headers.get("content-type")
    if content_type and content_type != JSON and not _JSON_TYPE.match(content_type):
        if binary_body and BINARY_HEADER in headers and _BINARY_TYPE.match(content_type):
            return  # Triton's binary tensors: a JSON header, then raw bytes
        if csv_body and is_csv(content_type):
            return  # MLflow's text/csv bodies
        raise UnsupportedMediaType(f"content-type {content_type!r} is not JSON: send 'application/json'")


def build_app(
    settings: Settings,
    bundle: Bundle | None,
    load_error: str | None,
    drain_marker: Path,
    api_keys: ApiKeys | None = None,
) -> App:
    """Called in each worker after the fork (granian's target loader); `api_keys` are the master's."""
    return App(settings, ModelService(settings, bundle, load_error), drain_marker, api_keys)
