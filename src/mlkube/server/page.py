"""The model page: `/` (one self-contained page), its assets, the card it shows and the scores it plots.

- `GET /` and `GET /static/{name}`: HTML, CSS, JS and an icon shipped in the package (no CDN, no
  external font), with a Content-Security-Policy that allows only this origin. Open, like /health:
  they hold no model data. `/` is also where KServe's V1 clients check liveness: a request that does not
  accept `text/html` gets KServe's `{"status": "alive"}` instead of the page (`server/kserve_v1.py`).
- `GET /model`: the model card as JSON (name, version, metrics, classes, feature ranges, a sample row
  per class) and `drift`, the running workers' signals: per feature the share of values outside the
  training range, and the recent predicted-class shares beside the training shares. Protected like
  /predict.
- `POST /predict/proba`: the body of /predict, answered with /predict's four keys plus `probabilities`,
  every class's probability in class order, through the same data plane (micro-batched, counted).
  /predict itself keeps its four keys, byte for byte.
"""

from __future__ import annotations

from collections.abc import Awaitable
from importlib import resources
from typing import Any

import msgspec

from mlkube.api.page import ProbaBatch, ProbaPrediction
from mlkube.api.simple import BatchValuePrediction, ErrorBody
from mlkube.errors import NotFound
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Handler, Operation, Request, Response, Route
from mlkube.server.simple_api import answer_types, predict_handler, predict_operation

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
_ASSET_TYPES = {
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_HTML = "text/html; charset=utf-8"
_AUTH_PLACEHOLDER = b"__AUTH_REQUIRED__"

_encode = msgspec.json.Encoder().encode


class ModelPage:
    """The page's routes on the data plane; `not_html` answers `GET /` for clients that want no HTML."""

    def __init__(self, plane: DataPlane, not_html: Handler) -> None:
        self.plane = plane
        self._not_html = not_html
        self._index = _static_bytes("index.html").replace(
            _AUTH_PLACEHOLDER, b"true" if plane.settings.auth_enabled else b"false"
        )
        self._assets = {name: _static_bytes(name) for name in _ASSET_TYPES}
        self.predict_proba = (
            predict_handler(plane, plane.value_answers, BatchValuePrediction)
            if plane.is_regressor  # a value has no probabilities: the page shows /predict's answer
            else predict_handler(plane, plane.answers_with_probabilities, ProbaBatch)
        )

    def routes(self) -> list[Route]:
        predict = predict_operation(self.plane)
        proba = Operation(
            request=predict.request,
            responses={
                200: answer_types(self.plane) if self.plane.is_regressor else (ProbaPrediction, ProbaBatch),
                422: ErrorBody,
                503: ErrorBody,
            },
            description=(
                "As /predict, with `probabilities`: every class's, in the order of the model card (a "
                "regressor's answer is /predict's)."
            ),
            example=predict.example,
        )
        return [
            Route(
                "/",
                {"GET": self.index},
                summary='The model page (Accept: text/html), else KServe V1 liveness {"status": "alive"}',
            ),
            Route(
                "/static/{name}",
                {"GET": self.asset},
                summary="The model page's stylesheet, script, icon",
                operations={"GET": Operation(responses={200: str, 404: ErrorBody}, content_type="*/*")},
            ),
            Route(
                "/model",
                {"GET": self.card},
                protected=True,
                summary="The model card as JSON",
                # the card's metrics and params are free-form (dict[str, object]): described as an object
                operations={"GET": Operation(responses={200: dict[str, Any], 503: ErrorBody})},
            ),
            Route(
                "/predict/proba",
                {"POST": self.predict_proba},
                protected=True,
                summary="Like /predict, plus every class's probability",
                operations={"POST": proba},
            ),
        ]

    def index(self, request: Request) -> Response | Awaitable[Response]:
        if "text/html" not in request.headers.get("accept", ""):
            return self._not_html(request)
        return Response(200, self._index, content_type=_HTML, headers=_page_headers())

    def asset(self, request: Request) -> Response:
        name = request.params["name"]
        body = self._assets.get(name)
        if body is None:
            raise NotFound(f"no asset {name!r}")
        return Response(200, body, content_type=_ASSET_TYPES[name], headers=_page_headers())

    def card(self, request: Request) -> Response:
        return Response(200, _encode(self.plane.card_with_drift()))


def _page_headers() -> list[tuple[str, str]]:
    return [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-cache"),
    ]


def _static_bytes(name: str) -> bytes:
    return resources.files("mlkube.server").joinpath("static").joinpath(name).read_bytes()
