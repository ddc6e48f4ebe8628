"""KServe's V1 protocol: `/v1/models[/{name}[:predict]]`, and its liveness answer at `GET /`.

A thin adapter on the data plane: check the model name, decode the rows, answer the class index of each.
The rules for rows are the simple API's (422 for rows that cannot be scored), the model-status route
answers 503 while the model is not ready, as KServe's own server does. KServe's SDK checks liveness with
`GET /` and reads `{"status": "alive"}`: `/` is the model page's, so `liveness` is what it answers to a
client that does not ask for HTML (see `server/page.py`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from mlkube.api.kserve_v1 import (
    V1Liveness,
    V1Models,
    V1ModelStatus,
    V1NamedRequest,
    V1Predictions,
    V1PredictRequest,
    V1Values,
)
from mlkube.api.simple import ErrorBody
from mlkube.errors import InvalidInput
from mlkube.model.runtime import Scores
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Operation, Request, Response, Route, decode_json
from mlkube.server.openapi import example_row, instances_schema
from mlkube.server.service import plain_values

_encode = msgspec.json.Encoder().encode
_decode_v1 = msgspec.json.Decoder(V1PredictRequest).decode
_decode_named = msgspec.json.Decoder(V1NamedRequest).decode
_ALIVE = _encode(V1Liveness("alive"))


def liveness(request: Request) -> Response:
    """KServe V1 server liveness: the process answers."""
    return Response(200, _ALIVE)


class KServeV1:
    """List, status and row predictions, as KServe's V1 protocol."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def routes(self) -> list[Route]:
        status_doc = Operation(responses={200: V1ModelStatus, 404: ErrorBody, 503: V1ModelStatus})
        return [
            Route(
                "/v1/models",
                {"GET": self.list_models},
                protected=True,
                summary="KServe V1: the names of the served models",
                operations={"GET": Operation(responses={200: V1Models})},
            ),
            Route(
                "/v1/models/{name}",
                {"GET": self.model_status},
                protected=True,
                summary="KServe V1: whether the model is ready (503 while it is not)",
                operations={"GET": status_doc},
            ),
            Route(
                "/v1/models/{name}:predict",
                {"POST": self.predict},
                protected=True,
                summary="KServe V1: the class index of every row",
                operations={"POST": self._predict_doc()},
            ),
        ]

    def _predict_doc(self) -> Operation:
        plane = self.plane
        rows = instances_schema(plane, plane.settings.max_batch_size)
        request = Annotated[
            V1NamedRequest, msgspec.Meta(extra_json_schema={"properties": {"instances": rows}})
        ]
        answer = V1Values if plane.is_regressor else V1Predictions
        return Operation(
            request=request,
            responses={200: answer, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody},
            description=(
                "A row is a list in the model's feature order or an object by feature name. A classifier "
                "answers each row's class index, a regressor its value."
            ),
            example={"instances": [example_row(plane)]},
        )

    def list_models(self, request: Request) -> Response:
        return Response(200, _encode(V1Models([self.plane.name])))

    def model_status(self, request: Request) -> Response:
        plane = self.plane
        plane.check_model(request.params)
        ready = plane.model_ready
        return Response(200 if ready else 503, _encode(V1ModelStatus(plane.name, ready)))

    async def predict(self, request: Request) -> Response:
        plane = self.plane
        plane.check_model(request.params)
        if plane.features.by_column:
            return await self._predict_named(request)
        try:
            body = decode_json(_decode_v1, request.body)
        except InvalidInput as error:
            if not plane.features.takes_over(str(error)):
                raise
            return await self._predict_named(request)
        return self._answer(plane.observe(await plane.submit(body.instances)))

    async def _predict_named(self, request: Request) -> Response:
        plane = self.plane
        plane.require_model()
        body = decode_json(_decode_named, request.body)
        rows = plane.features.from_items(body.instances)
        return self._answer(plane.observe(await plane.submit_array(rows)))

    def _answer(self, scores: Scores) -> Response:
        if self.plane.is_regressor:
            return Response(200, _encode(V1Values(plain_values(scores))))
        return Response(200, _encode(V1Predictions(scores.classes.tolist())))
