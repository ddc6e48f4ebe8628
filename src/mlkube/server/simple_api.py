"""The simple API: `POST /predict`, `GET /health`, `GET /ready`. The request path mlkube is tuned for.

`/predict` takes one row `{"features": [...]}` and answers `prediction`, `class_name`, `confidence` and
`version`, or a batch `{"instances": [[...], ...]}` answered `{"predictions": [...]}`: the contract of the
notes mlkube started from, byte for byte. The data plane checks, scores and counts; this file only reads
the body and writes the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import msgspec

from mlkube.api.simple import (
    BatchPrediction,
    BatchValuePrediction,
    ErrorBody,
    Health,
    NamedPredictRequest,
    Prediction,
    PredictRequest,
    Readiness,
    ValuePrediction,
)
from mlkube.errors import InvalidInput
from mlkube.model.runtime import Scores
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Operation, Request, Response, Route, decode_json
from mlkube.server.openapi import example_row, instance_schema, instances_schema

_encode = msgspec.json.Encoder().encode
_decode_predict = msgspec.json.Decoder(PredictRequest).decode
_decode_named = msgspec.json.Decoder(NamedPredictRequest).decode
_HEALTHY = _encode(Health("healthy"))
A = TypeVar("A")


def predict_handler(
    plane: DataPlane, answers: Callable[[Scores], list[A]], batch: Callable[[list[A]], object]
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """The handler of a route that takes `/predict`'s body: `/predict` itself and the page's `/predict/proba`.

    `answers` shapes the scores (a data plane method), `batch` wraps a batch's answers. One row answers its
    one answer alone. Written once for both routes, as one closure: the hot path pays no extra call.
    Chosen once per model: a model of numbers in one tensor (Iris) reads lists of floats exactly as it
    always has, and only a body that names its features (a JSON object where a row goes) takes the
    schema-driven path; a model with text features always takes it.
    """

    async def predict_named(request: Request) -> Response:
        plane.require_model()
        body = decode_json(_decode_named, request.body)
        features, instances = body.features, body.instances
        if features is not None:
            if instances is not None:
                raise InvalidInput("send either 'features' (one row) or 'instances' (a batch), not both")
            items: list[Any] = [features]
        elif instances is not None:
            items = instances
        else:
            raise InvalidInput(
                f"missing 'features': a list of {plane.n_features} values or an object by feature name"
            )
        found = answers(await plane.submit_array(plane.features.from_items(items)))
        if features is not None:
            return Response(200, _encode(found[0]))
        return Response(200, _encode(batch(found)))

    if plane.features.by_column:
        return predict_named

    async def predict(request: Request) -> Response:
        try:
            body = decode_json(_decode_predict, request.body)
        except InvalidInput as error:
            if not plane.features.takes_over(str(error)):
                raise
            return await predict_named(request)  # `{"features": {...}}` or instances holding objects
        features, instances = body.features, body.instances
        if features is not None:
            if instances is not None:
                raise InvalidInput("send either 'features' (one row) or 'instances' (a batch), not both")
            rows = [features]
        elif instances is not None:
            rows = instances
        else:
            raise InvalidInput(f"missing 'features': a list of {plane.n_features} numbers")
        found = answers(await plane.submit(rows))
        if features is not None:
            return Response(200, _encode(found[0]))
        return Response(200, _encode(batch(found)))

    return predict


class SimpleApi:
    """The routes of the simple API, on the worker's data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.predict = (
            predict_handler(plane, plane.value_answers, BatchValuePrediction)
            if plane.is_regressor
            else predict_handler(plane, plane.answers, BatchPrediction)
        )
        """`{"features": [...]}` → one answer; `{"instances": [[...], ...]}` → `{"predictions": [...]}`."""

    def routes(self) -> list[Route]:
        return [
            Route(
                "/predict",
                {"POST": self.predict},
                protected=True,
                summary="Score one row or a batch",
                operations={"POST": predict_operation(self.plane)},
            ),
            Route(
                "/health",
                {"GET": self.health},
                summary="Liveness: the process answers",
                operations={"GET": Operation(responses={200: Health})},
            ),
            Route(
                "/ready",
                {"GET": self.ready},
                summary="Readiness: the model is loaded and warm",
                operations={"GET": Operation(responses={200: Readiness, 503: Readiness})},
            ),
        ]

    def health(self, request: Request) -> Response:
        return Response(200, _HEALTHY)

    def ready(self, request: Request) -> Response:
        plane = self.plane
        reason = plane.why_not_ready()
        runtime = plane.settings.model_runtime
        if reason is None:
            return Response(200, _encode(Readiness("ready", plane.name, plane.version, runtime)))
        return Response(503, _encode(Readiness("not ready", plane.name, plane.version, runtime, reason)))


def predict_operation(plane: DataPlane) -> Operation:
    """What /openapi.json says of `POST /predict`: exactly one of `features` and `instances`."""
    max_rows = plane.settings.max_batch_size
    given = {"type": ["array", "object"]}
    either = {
        "anyOf": [
            {"required": ["features"], "properties": {"features": given}},
            {"required": ["instances"], "properties": {"instances": {"type": "array"}}},
        ],
        "not": {
            "required": ["features", "instances"],
            "properties": {"features": given, "instances": {"type": "array"}},
        },
        "properties": {
            "features": {"anyOf": [instance_schema(plane), {"type": "null"}]},
            "instances": {"anyOf": [instances_schema(plane, max_rows), {"type": "null"}]},
        },
    }
    return Operation(
        request=Annotated[NamedPredictRequest, msgspec.Meta(extra_json_schema=either)],
        responses={200: answer_types(plane), 422: ErrorBody, 503: ErrorBody},
        description=(
            '`features` answers one prediction; `instances` answers `{"predictions": [...]}`. A row is a '
            "list in the model's feature order or an object by feature name; text for a category."
        ),
        example={"features": example_row(plane)},
    )


def answer_types(plane: DataPlane) -> tuple[object, object]:
    """What `/predict` answers for this model: a class (four keys) or a regressor's value."""
    if plane.is_regressor:
        return ValuePrediction, BatchValuePrediction
    return Prediction, BatchPrediction
