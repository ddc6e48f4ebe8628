"""/openapi.json and /docs: the API described by the server itself, readable with no internet access.

The document is generated once per worker, on first request, from the app's whole route table (see
openapi.py), so a route added to any adapter is documented with no change here.
The page is Swagger UI, vendored under static/swagger-ui/ (its licence is there) and served from /docs/;
a Content-Security-Policy keeps the browser from loading anything from another origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import msgspec

from mlkube.api.simple import ErrorBody
from mlkube.errors import NotFound
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Operation, Request, Response, Route
from mlkube.server.openapi import openapi_document

_HTML = "text/html; charset=utf-8"
_JAVASCRIPT = "text/javascript; charset=utf-8"
# asset name in /docs/{asset} -> (file under static/, content type)
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", _JAVASCRIPT),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "docs.js": ("docs.js", _JAVASCRIPT),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = (("content-security-policy", _CSP), ("x-content-type-options", "nosniff"))


def _static(name: str) -> bytes:
    return (resources.files("mlkube.server") / "static" / name).read_bytes()


class ApiDocs:
    """The documentation routes. `routes_of_app` is called on first use, when the table is complete."""

    def __init__(self, plane: DataPlane, routes_of_app: Callable[[], Iterable[Route]]) -> None:
        self._plane = plane
        self._routes_of_app = routes_of_app
        self._document: bytes | None = None
        self._files: dict[str, bytes] = {}

    def routes(self) -> list[Route]:
        asset = Operation(responses={200: str, 404: ErrorBody}, content_type="*/*")
        return [
            Route(
                "/openapi.json",
                {"GET": self.openapi},
                summary="This API as an OpenAPI 3.1 document",
                operations={"GET": Operation(responses={200: dict[str, Any]})},
            ),
            Route(
                "/docs",
                {"GET": self.page},
                summary="Interactive API documentation (Swagger UI, served by mlkube)",
                operations={"GET": Operation(responses={200: str}, content_type=_HTML)},
            ),
            Route(
                "/docs/{asset}",
                {"GET": self.asset},
                summary=f"The documentation page's files: {', '.join(ASSETS)}",
                operations={"GET": asset},
            ),
        ]

    def document(self) -> bytes:
        if self._document is None:
            document = openapi_document(self._routes_of_app(), self._plane)
            self._document = msgspec.json.encode(document)
        return self._document

    def openapi(self, request: Request) -> Response:
        return Response(200, self.document())

    def page(self, request: Request) -> Response:
        return Response(200, self._file("docs.html"), content_type=_HTML, headers=list(_PAGE_HEADERS))

    def asset(self, request: Request) -> Response:
        name = request.params["asset"]
        if name not in ASSETS:
            raise NotFound(f"no documentation asset {name!r}")
        path, content_type = ASSETS[name]
        headers = [("cache-control", "public, max-age=3600"), ("x-content-type-options", "nosniff")]
        return Response(200, self._file(path), content_type=content_type, headers=headers)

    def _file(self, path: str) -> bytes:
        data = self._files.get(path)
        if data is None:
            data = self._files[path] = _static(path)
        return data
