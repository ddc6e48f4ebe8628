"""The OpenAPI 3.1 document of a running app, generated from its route table and the handlers' own types.

Every `Route` of `App.routes()` is described: its `Operation` gives the msgspec types of the request and
of the answers its handler makes; the statuses the app adds around a handler follow from the route's flags
(401 and 503 for protected routes, 400/413/415 for routes that read a body). The model's own numbers (its
feature count, MAX_BATCH_SIZE) narrow the request schemas, so the document states what this server takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
import numpy as np

import mlkube
from mlkube.server import metrics
from mlkube.server.http import Operation, Route
from mlkube.server.schemas import BatchPrediction, ErrorBody, Health, Prediction, PredictRequest, Readiness
from mlkube.server.service import ModelService
from mlkube.server.tensors import INPUT_NAME
from mlkube.settings import Settings

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# (path prefix, tag, its description); the first matching prefix names an operation's tag
_TAGS = (
    ("/v1/", "KServe V1", "KServe's V1 (TensorFlow Serving style) protocol."),
    ("/v2", "Open Inference Protocol V2", "The Open Inference Protocol (KServe V2, Triton, MLServer), REST."),
    ("/docs", "Documentation", "This page, its files and the OpenAPI document, served by mlkube itself."),
    ("/openapi.json", "Documentation", ""),
    ("/", "mlkube", "The notes' API: /predict, the probes and the metrics."),
)


def example_row(service: ModelService) -> list[float]:
    """A plausible row for examples: the training means of the features, to 2 decimals."""
    bundle = service.bundle
    if bundle is not None and bundle.metadata.features:
        return [round(stat.mean, 2) for stat in bundle.metadata.features]
    return [0.0] * service.n_features


def row_schema(n_features: int) -> dict[str, Any]:
    """One row as the service checks it: n_features numbers within float32's range."""
    item = {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX}
    return {"type": "array", "items": item, "minItems": n_features, "maxItems": n_features}


def rows_schema(n_features: int, max_rows: int) -> dict[str, Any]:
    return {"type": "array", "items": row_schema(n_features), "minItems": 1, "maxItems": max_rows}


def v2_input_schema(n_features: int, max_rows: int) -> dict[str, Any]:
    """The model's one V2 input: its name and shape [rows, n_features]."""
    rows = {"type": "integer", "minimum": 1, "maximum": max_rows}
    shape = {"type": "array", "prefixItems": [rows, {"const": n_features}], "minItems": 2, "maxItems": 2}
    return {"properties": {"name": {"const": INPUT_NAME}, "shape": shape}}


def core_operations(service: ModelService, settings: Settings) -> dict[str, dict[str, Operation]]:
    """The core routes' operations (app.py declares those routes without them)."""
    n_features, max_rows = service.n_features, settings.max_batch_size
    either = {
        "anyOf": [
            {"required": ["features"], "properties": {"features": {"type": "array"}}},
            {"required": ["instances"], "properties": {"instances": {"type": "array"}}},
        ],
        "not": {
            "required": ["features", "instances"],
            "properties": {"features": {"type": "array"}, "instances": {"type": "array"}},
        },
        "properties": {
            "features": {"anyOf": [row_schema(n_features), {"type": "null"}]},
            "instances": {"anyOf": [rows_schema(n_features, max_rows), {"type": "null"}]},
        },
    }
    predict = Operation(
        request=Annotated[PredictRequest, msgspec.Meta(extra_json_schema=either)],
        responses={200: (Prediction, BatchPrediction), 422: ErrorBody, 503: ErrorBody},
        description='`features` answers one prediction; `instances` answers `{"predictions": [...]}`.',
        example={"features": example_row(service)},
    )
    return {
        "/predict": {"POST": predict},
        "/health": {"GET": Operation(responses={200: Health})},
        "/ready": {"GET": Operation(responses={200: Readiness, 503: Readiness})},
        "/metrics": {"GET": Operation(responses={200: str}, content_type=metrics.CONTENT_TYPE)},
    }


def openapi_document(routes: Iterable[Route], service: ModelService, settings: Settings) -> dict[str, Any]:
    """The whole document, as a dictionary ready to encode."""
    builder = _Builder(service, settings)
    paths: dict[str, dict[str, Any]] = {}
    core = core_operations(service, settings)
    for route in routes:
        operations = route.operations or core.get(route.template, {})
        paths[route.template] = {
            method.lower(): builder.operation(route, method, operations.get(method, Operation()))
            for method in route.handlers
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mlkube",
            "version": mlkube.__version__,
            "description": _description(service, settings),
        },
        "tags": [{"name": name, "description": text} for _, name, text in (_TAGS[-1], *_TAGS[:-1]) if text],
        "paths": paths,
        "components": builder.components(),
    }


def _description(service: ModelService, settings: Settings) -> str:
    auth = (
        "Prediction and model routes need an API key (`X-API-Key: <key>` or `Authorization: Bearer <key>`); "
        "the probes, /metrics and this documentation are always open."
        if settings.auth_enabled
        else "No API key is configured, so every route is open."
    )
    return (
        f"Serves model `{service.name}` version `{service.version}` ({service.n_features} features). {auth} "
        "Every answer carries `X-Request-ID`. "
        'Errors are JSON `{"error": "..."}`: an unknown path is 404, a method a path does not take is 405 '
        "with an `Allow` header."
    )


class _Builder:
    def __init__(self, service: ModelService, settings: Settings) -> None:
        self.settings = settings
        self.examples = {"name": service.name, "version": service.version}
        self.schemas: dict[str, Any] = {}

    def operation(self, route: Route, method: str, operation: Operation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operationId": _operation_id(method, route.template),
            "summary": route.summary,
            "tags": [_tag(route.template)],
            "responses": self._responses(route, method, operation),
        }
        if operation.description:
            body["description"] = operation.description
        parameters = [self._path_parameter(name) for name in _PARAM.findall(route.template)]
        if parameters:
            body["parameters"] = parameters
        if method == "POST":
            media: dict[str, Any] = {"schema": self.schema(operation.request)}
            if operation.example is not None:
                media["example"] = operation.example
            body["requestBody"] = {"required": True, "content": {"application/json": media}}
        if route.protected and self.settings.auth_enabled:
            body["security"] = [{"ApiKey": []}, {"Bearer": []}]
        return body

    def _path_parameter(self, name: str) -> dict[str, Any]:
        parameter: dict[str, Any] = {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
        }
        if name in self.examples:
            parameter["example"] = self.examples[name]
        return parameter

    def _responses(self, route: Route, method: str, operation: Operation) -> dict[str, Any]:
        bodies: dict[int, list[object]] = {}
        notes: dict[int, list[str]] = {}
        for status, body in operation.responses.items():
            bodies.setdefault(status, []).extend(body if isinstance(body, tuple) else [body])
        for status, note in self._app_statuses(route, method):
            if ErrorBody not in bodies.setdefault(status, []):
                bodies[status].append(ErrorBody)
            notes.setdefault(status, []).append(note)
        if 200 not in bodies:
            bodies[200] = [None]
        return {
            str(status): self._response(status, bodies[status], notes.get(status, []), operation.content_type)
            for status in sorted(bodies)
        }

    def _app_statuses(self, route: Route, method: str) -> list[tuple[int, str]]:
        """The errors the app itself answers around this route's handler."""
        statuses: list[tuple[int, str]] = []
        if method == "POST":
            statuses.append((400, "the body is not JSON, or Content-Length is not a number"))
            statuses.append((413, f"the body is over MAX_BODY_BYTES={self.settings.max_body_bytes}"))
            statuses.append((415, "Content-Type is not JSON"))
        if route.protected:
            if self.settings.auth_enabled:
                statuses.append((401, "missing or invalid API key"))
            statuses.append((503, f"over MAX_IN_FLIGHT={self.settings.max_in_flight} requests; retry later"))
        return statuses

    def _response(self, status: int, bodies: list[object], notes: list[str], ok_type: str) -> dict[str, Any]:
        phrase = HTTPStatus(status).phrase
        response: dict[str, Any] = {
            "description": f"{phrase}: {'; '.join(notes)}" if notes else phrase,
            "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        }
        if status == 503:
            response["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        schemas = [self.schema(body) for body in bodies if body is not None]
        if schemas:
            content_type = ok_type if status == 200 else "application/json"
            schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
            response["content"] = {content_type: {"schema": schema}}
        return response

    def schema(self, kind: object) -> dict[str, Any]:
        """The schema of a msgspec type; the structs it names go into `components.schemas`."""
        if kind is None:
            return {}
        (schema,), components = msgspec.json.schema_components([kind], ref_template=_REF)
        for name, component in components.items():
            known = self.schemas.setdefault(name, component)
            if known != component:
                raise ValueError(f"two different types are both named {name!r} in the OpenAPI document")
        return dict(schema)

    def components(self) -> dict[str, Any]:
        components: dict[str, Any] = {
            "schemas": dict(sorted(self.schemas.items())),
            "headers": {
                "X-Request-ID": {
                    "description": "The request's X-Request-ID if it sent a valid one, else a new id.",
                    "schema": {"type": "string"},
                },
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                },
            },
        }
        if self.settings.auth_enabled:
            components["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            }
        return components


def _operation_id(method: str, template: str) -> str:
    slug = re.sub(r"\W+", "_", template).strip("_") or "root"
    return f"{method.lower()}_{slug}"


def _tag(template: str) -> str:
    return next(name for prefix, name, _ in _TAGS if template.startswith(prefix))
