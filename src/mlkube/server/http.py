"""The small HTTP vocabulary every route speaks: requests, responses, routes, a router, JSON in, errors out.

A router and two dataclasses instead of a web framework: every request pays only for what it uses
(see bench/RESULTS.md for what a framework's per-request cost would be). `decode_json` is the one way a
route reads a JSON body, and `error_for` the one way an error becomes an answer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from mlkube.errors import InvalidInput, MethodNotAllowed, RequestError

T = TypeVar("T")

JSON = "application/json"
CSV = "text/csv"
_CSV_TYPE = re.compile(r"^text/csv\s*(;|$)", re.IGNORECASE)
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    request_id: str = ""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, _encode(value))


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, _encode({"error": message}), headers=headers or [])


def error_for(error: RequestError) -> Response:
    """The answer to every error a route or the app raises: its status, its message, its headers."""
    return Response(error.status, _encode({"error": str(error)}), headers=list(error.headers))


def decode_json(
    decode: Callable[[Any], T],
    body: bytes | memoryview,
    invalid: type[RequestError] = InvalidInput,
    where: str = "body",
) -> T:
    """`decode(body)` with every msgspec failure turned into the client's error, never a 500.

    A value of the wrong type or shape raises `invalid` (422 unless the protocol says otherwise) naming the
    JSON path; bytes that are not JSON, and nesting deep enough to hit msgspec's recursion guard, raise a
    400 (`invalid` itself when it is a 400 already, as V2's errors are).
    """
    try:
        return decode(body)
    except msgspec.ValidationError as error:
        raise invalid(readable(str(error))) from None
    except msgspec.DecodeError as error:
        raise _malformed(invalid)(f"{where} is not valid JSON: {error}") from None
    except RecursionError:  # msgspec's guard against nesting deep enough to overflow the C stack
        raise _malformed(invalid)(f"{where} is not valid JSON: nested too deeply") from None


def _malformed(invalid: type[RequestError]) -> type[RequestError]:
    """Bytes that are not JSON are a 400: `invalid` itself when the protocol answers 400 for everything."""
    return invalid if invalid.status == 400 else RequestError


def readable(message: str) -> str:
    """msgspec says "Expected `float`, got `str` - at `$.features[1]`"; keep it, drop the markup."""
    return message.replace("`", "")


Handler = Callable[[Request], Response | Awaitable[Response]]  # async: waits for the micro-batch


@dataclass(frozen=True)
class Operation:
    """What /openapi.json says of one method of a route, next to the handler it describes.

    `request` and the values of `responses` are msgspec types (a tuple of types: one of them), so the
    document's schemas are the decoders' own. `responses` lists what the handler itself answers; the
    statuses the app adds around it (401, 413, 415, 400 for a malformed body...) follow from the route.
    """

    request: object = None
    responses: Mapping[int, object] = field(default_factory=dict)
    description: str = ""
    example: object = None
    content_type: str = JSON
    csv_example: str = ""  # a `csv_body` route's text/csv request example


@dataclass(frozen=True)
class Route:
    """One path template (`/v2/models/{name}/infer`) and its handler per method.

    `protected` routes need the API key when one is configured; `body` routes read the request body.
    `binary_body` routes also take `application/octet-stream` when `Inference-Header-Content-Length` says
    where the JSON ends (Triton's binary tensors); `csv_body` routes also take `text/csv` (MLflow's CSV
    bodies, which the handler reads when `is_csv` says so). The template is also the `route` label of the
    metrics, so label values stay few.
    """

    template: str
    handlers: Mapping[str, Handler]
    protected: bool = False
    binary_body: bool = False
    csv_body: bool = False
    summary: str = ""
    operations: Mapping[str, Operation] = field(default_factory=dict)

    @property
    def reads_body(self) -> bool:
        return "POST" in self.handlers

    def handler_for(self, method: str, path: str) -> Handler:
        handler = self.handlers.get(method)
        if handler is None:
            if method == "HEAD" and "GET" in self.handlers:
                return self.handlers["GET"]
            raise MethodNotAllowed(method, shown(path), sorted(self.handlers))
        return handler


SHOWN_PATH_CHARS = 200


def is_csv(content_type: str | None) -> bool:
    """Whether a Content-Type header says `text/csv` (with or without parameters such as a charset)."""
    return content_type is not None and _CSV_TYPE.match(content_type) is not None


def shown(path: str) -> str:
    """A request path as an error message repeats it: cut, since a path may be as long as a request head."""
    return path if len(path) <= SHOWN_PATH_CHARS else path[:SHOWN_PATH_CHARS] + "..."


_PARAM = re.compile(r"\{(\w+)\}")


class Router:
    """Exact paths by dictionary look-up; templates with `{param}` by regular expression."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._exact: dict[str, Route] = {}
        self._patterns: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if _PARAM.search(route.template):
                self._patterns.append((_compile(route.template), route))
            else:
                self._exact[route.template] = route

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self._exact.get(path)
        if route is not None:
            return route, {}
        for pattern, candidate in self._patterns:
            found = pattern.fullmatch(path)
            if found:
                return candidate, found.groupdict()
        return None


def _compile(template: str) -> re.Pattern[str]:
    parts = _PARAM.split(template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/:]+)" for i, part in enumerate(parts))
    return re.compile(regex)
