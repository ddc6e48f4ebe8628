"""The OpenAPI 3.1 document of a running app, generated from its route table and the handlers' own types.

Every `Route` of the app's table is described: its `Operation` (declared beside the handler, in each
protocol adapter) gives the msgspec types of the request and of the answers its handler makes; the
statuses the app adds around a handler follow from the route's flags (401 and 503 for protected routes,
400/413/415 for routes that read a body). The model's own numbers (its
feature count, MAX_BATCH_SIZE) narrow the request schemas, so the document states what this server takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec

import mlkube
from mlkube.api.numbers import FLOAT32_MAX
from mlkube.api.open_inference import INPUT_NAME, NUMBER_DATATYPES
from mlkube.api.simple import ErrorBody
from mlkube.model.bundle import CATEGORY, FeatureSpec
from mlkube.server.http import CSV, Operation, Route

if TYPE_CHECKING:
    from mlkube.server.dataplane import DataPlane

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")
# (path prefix, tag, its description); the first matching prefix names an operation's tag
_TAGS = (
    ("/v1/", "KServe V1", "KServe's V1 (TensorFlow Serving style) protocol."),
    ("/v2", "Open Inference Protocol V2", "The Open Inference Protocol (KServe V2, Triton, MLServer), REST."),
    ("/docs", "Documentation", "This page, its files and the OpenAPI document, served by mlkube itself."),
    ("/openapi.json", "Documentation", ""),
    ("/", "mlkube", "The simple API (/predict, the probes), the metrics and the model page."),
)


def example_row(plane: DataPlane) -> list[Any]:
    """The row of the examples: a zero per number, the first allowed value per category.

    /openapi.json is open, so its example must come from nothing the key protects: the training means,
    ranges and sample rows are the model card's (/model). Zeros follow from the feature count alone, and a
    category's values from its `enum`, both of which the request schema states anyway; a row every model
    scores.
    """
    bundle = plane.service.bundle
    if bundle is not None and bundle.metadata.inputs is not None:
        return [_example_value(spec) for spec in bundle.metadata.inputs.features]
    return [0.0] * plane.n_features


def _example_value(spec: FeatureSpec) -> Any:
    if spec.kind == CATEGORY:
        return spec.categories[0] if spec.categories else ""
    return 0.0


def value_schema(spec: FeatureSpec) -> dict[str, Any]:
    """One feature's value as `server/features.py` checks it (null where the model imputes a missing one)."""
    if spec.kind == CATEGORY:
        value: dict[str, Any] = {"enum": list(spec.categories)} if spec.categories else {"type": "string"}
        if spec.missing:
            value = {"anyOf": [value, {"type": "null"}]}
        return value
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    return {"anyOf": [number, {"type": "null"}]} if spec.missing else number


def features_row_schema(plane: DataPlane) -> dict[str, Any]:
    """A row in schema order: today's list of numbers for a model of numbers, else one item per feature."""
    specs = plane.features.schema.features
    if not any(spec.kind == CATEGORY or spec.missing for spec in specs):
        return row_schema(plane.n_features)
    items = [value_schema(spec) for spec in specs]
    return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}


def features_record_schema(plane: DataPlane) -> dict[str, Any]:
    """A row by feature name: every feature the model cannot impute is required, no other name."""
    specs = plane.features.schema.features
    return {
        "type": "object",
        "properties": {spec.name: value_schema(spec) for spec in specs},
        "required": [spec.name for spec in specs if not spec.missing],
        "additionalProperties": False,
    }


def instance_schema(plane: DataPlane) -> dict[str, Any]:
    return {"anyOf": [features_row_schema(plane), features_record_schema(plane)]}


def instances_schema(plane: DataPlane, max_rows: int) -> dict[str, Any]:
    return {"type": "array", "items": instance_schema(plane), "minItems": 1, "maxItems": max_rows}


def row_schema(n_features: int) -> dict[str, Any]:
    """One row as the service checks it: n_features numbers within float32's range."""
    item = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    return {"type": "array", "items": item, "minItems": n_features, "maxItems": n_features}


def rows_schema(n_features: int, max_rows: int) -> dict[str, Any]:
    return {"type": "array", "items": row_schema(n_features), "minItems": 1, "maxItems": max_rows}


def v2_input_schema(n_features: int, max_rows: int) -> dict[str, Any]:
    """The model's one V2 input: its name and shape [rows, n_features]."""
    rows = {"type": "integer", "minimum": 1, "maximum": max_rows}
    shape = {"type": "array", "prefixItems": [rows, {"const": n_features}], "minItems": 2, "maxItems": 2}
    return {
        "properties": {
            "name": {"const": INPUT_NAME},
            "shape": shape,
            "datatype": {"enum": list(NUMBER_DATATYPES)},
        }
    }


def v2_column_schema(names: list[str], max_rows: int) -> dict[str, Any]:
    """One V2 input per feature of a model with text features: its name and shape [rows] or [rows, 1]."""
    rows = {"type": "integer", "minimum": 1, "maximum": max_rows}
    shape = {"type": "array", "prefixItems": [rows, {"const": 1}], "minItems": 1, "maxItems": 2}
    return {"properties": {"name": {"enum": names}, "shape": shape}}


def openapi_document(routes: Iterable[Route], plane: DataPlane) -> dict[str, Any]:
    """The whole document, as a dictionary ready to encode."""
    builder = _Builder(plane)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths[route.template] = {
            method.lower(): builder.operation(route, method, route.operations.get(method, Operation()))
            for method in route.handlers
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mlkube",
            "version": mlkube.__version__,
            "description": _description(plane),
        },
        "tags": [{"name": name, "description": text} for _, name, text in (_TAGS[-1], *_TAGS[:-1]) if text],
        "paths": paths,
        "components": builder.components(),
    }


def _description(plane: DataPlane) -> str:
    auth = (
        "Prediction and model routes need an API key (`X-API-Key: <key>` or `Authorization: Bearer <key>`); "
        "the probes, /metrics and this documentation are always open."
        if plane.settings.auth_enabled
        else "No API key is configured, so every route is open."
    )
    return (
        f"Serves model `{plane.name}` version `{plane.version}` ({plane.n_features} features). {auth} "
        "Every answer carries `X-Request-ID`. "
        'Errors are JSON `{"error": "..."}`: an unknown path is 404, a method a path does not take is 405 '
        "with an `Allow` header."
    )


class _Builder:
    def __init__(self, plane: DataPlane) -> None:
        self.settings = plane.settings
        self.examples = {"name": plane.name, "version": plane.version}
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
            content = {"application/json": media}
            if route.csv_body:
                content[CSV] = csv_media(operation.csv_example)
            body["requestBody"] = {"required": True, "content": content}
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


def csv_media(example: str) -> dict[str, Any]:
    """A text/csv body: a header row naming the columns, then one line per row (JSON Schema cannot say more
    of a table held in a string; the route's 400s say what a body breaks)."""
    media: dict[str, Any] = {"schema": {"type": "string", "minLength": 1}}
    if example:
        media["example"] = example
    return media
