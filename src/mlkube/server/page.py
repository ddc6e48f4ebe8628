"""The model page: `/` (one self-contained page), its assets, the card it shows and the scores it plots.

- `GET /` and `GET /static/{name}`: HTML, CSS, JS and an icon shipped in the package (no CDN, no
  external font), with a Content-Security-Policy that allows only this origin. Open, like /health:
  they hold no model data.
- `GET /model`: the model card as JSON (name, version, metrics, classes, feature ranges, a sample row
  per class). Protected like /predict.
- `POST /predict/proba`: the body of /predict, answered with /predict's four keys plus `probabilities`,
  every class's probability in class order. /predict itself keeps the notes' answer, key for key.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from mlkube.errors import InvalidInput, NotFound, RequestError
from mlkube.model.bundle import Bundle
from mlkube.server.http import Operation, Request, Response, Route
from mlkube.server.schemas import ErrorBody, PredictRequest

if TYPE_CHECKING:
    from mlkube.server.app import App

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
_SCALAR_METRICS = ("accuracy", "f1_macro", "n_train", "n_test", "onnx_max_abs_diff")

_encode = msgspec.json.Encoder().encode
_decode_predict = msgspec.json.Decoder(PredictRequest).decode


class FeatureCard(msgspec.Struct):
    name: str
    min: float | None = None
    max: float | None = None
    mean: float | None = None


class ClassScores(msgspec.Struct):
    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None


class ModelCard(msgspec.Struct):
    """What `GET /model` answers: everything the page shows about the model."""

    name: str
    version: str
    created_at: str
    description: str
    runtime: str
    class_names: list[str]
    features: list[FeatureCard]
    samples: list[list[float]]
    metrics: dict[str, object]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]
    params: dict[str, object]


class ProbaPrediction(msgspec.Struct):
    """/predict's four keys plus every class's probability, in class order."""

    prediction: int
    class_name: str
    confidence: float
    version: str
    probabilities: list[float]


class ProbaBatch(msgspec.Struct):
    predictions: list[ProbaPrediction]


class ModelPage:
    """The page's routes; handlers use the app's service and metrics, the app does auth and limits."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._index = _static_bytes("index.html").replace(
            _AUTH_PLACEHOLDER, b"true" if app.settings.auth_enabled else b"false"
        )
        self._assets = {name: _static_bytes(name) for name in _ASSET_TYPES}
        self._card: bytes | None = None

    def routes(self) -> list[Route]:
        from mlkube.server.openapi import core_operations

        predict = core_operations(self.app.service, self.app.settings)["/predict"]["POST"]
        proba = Operation(
            request=predict.request,
            responses={200: (ProbaPrediction, ProbaBatch), 422: ErrorBody, 503: ErrorBody},
            description="As /predict, with `probabilities`: every class's, in the order of the model card.",
            example=predict.example,
        )
        return [
            Route("/", {"GET": self.index}, summary="The model page: card, playground and curl command"),
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

    def index(self, request: Request) -> Response:
        return Response(200, self._index, content_type=_HTML, headers=_page_headers())

    def asset(self, request: Request) -> Response:
        name = request.params["name"]
        body = self._assets.get(name)
        if body is None:
            raise NotFound(f"no asset {name!r}")
        return Response(200, body, content_type=_ASSET_TYPES[name], headers=_page_headers())

    def card(self, request: Request) -> Response:
        bundle = self._require_ready()
        if self._card is None:
            self._card = _encode(model_card(bundle, self.app))
        return Response(200, self._card)

    def predict_proba(self, request: Request) -> Response:
        self._require_ready()
        body = _decode(request.body)
        if body.features is not None and body.instances is not None:
            raise InvalidInput("send either 'features' (one row) or 'instances' (a batch), not both")
        rows = [body.features] if body.features is not None else body.instances
        if rows is None:
            raise InvalidInput(f"missing 'features': a list of {self.app.service.n_features} numbers")
        service = self.app.service
        scores = service.score(service.rows_to_array(rows))
        confidences = service.confidences(scores)
        self.app.metrics.observe_scores(service.class_names, scores, confidences)
        probabilities = np.round(scores.probabilities.astype(np.float64), 6).tolist()
        answers = [
            ProbaPrediction(p.prediction, p.class_name, p.confidence, p.version, row)
            for p, row in zip(
                service.predictions(scores.classes.tolist(), confidences), probabilities, strict=True
            )
        ]
        if body.features is not None:
            return Response(200, _encode(answers[0]))
        return Response(200, _encode(ProbaBatch(answers)))

    def _require_ready(self) -> Bundle:
        service = self.app.service
        if not service.ready or service.bundle is None:
            raise RequestError(f"model not ready: {service.reason}", status=503)
        return service.bundle


def model_card(bundle: Bundle, app: App) -> ModelCard:
    """The card of the served model: the bundle's metadata with the display class names and version."""
    metadata = bundle.metadata
    stats = {stat.name: stat for stat in metadata.features}
    features = [
        FeatureCard(name, stats[name].min, stats[name].max, stats[name].mean)
        if name in stats
        else FeatureCard(name)
        for name in metadata.feature_names
    ]
    return ModelCard(
        name=metadata.name,
        version=app.service.version,
        created_at=metadata.created_at,
        description=metadata.description,
        runtime=app.settings.model_runtime,
        class_names=app.service.class_names,
        features=features,
        samples=metadata.samples,
        metrics={key: metadata.metrics[key] for key in _SCALAR_METRICS if key in metadata.metrics},
        per_class=_per_class(metadata.metrics.get("per_class"), metadata.class_names),
        confusion_matrix=_matrix(metadata.metrics.get("confusion_matrix")),
        params=metadata.params,
    )


def _per_class(value: object, class_names: list[str]) -> list[ClassScores]:
    """metadata.json keys per-class scores by the training class names; the card lists them in order."""
    if not isinstance(value, Mapping):
        return []
    found = []
    for name in class_names:
        scores = value.get(name)
        if not isinstance(scores, Mapping):
            return []
        found.append(
            ClassScores(
                _float(scores.get("precision")),
                _float(scores.get("recall")),
                _float(scores.get("f1-score")),
                scores.get("support") if isinstance(scores.get("support"), int) else None,
            )
        )
    return found


def _matrix(value: object) -> list[list[int]]:
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        return []
    return [[int(count) for count in row] for row in value]


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _decode(body: bytes) -> PredictRequest:
    """The same errors as /predict: the type and the JSON path of the bad value."""
    try:
        return _decode_predict(body)
    except msgspec.ValidationError as error:
        raise InvalidInput(str(error).replace("`", "")) from None
    except msgspec.DecodeError as error:
        raise RequestError(f"body is not valid JSON: {error}") from None


def _page_headers() -> list[tuple[str, str]]:
    return [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-cache"),
    ]


def _static_bytes(name: str) -> bytes:
    return resources.files("mlkube.server").joinpath("static").joinpath(name).read_bytes()
