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

from mlkube.api.kserve_v1 import V1Liveness, V1Models, V1ModelStatus, V1Predictions, V1PredictRequest
from mlkube.api.simple import ErrorBody
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Operation, Request, Response, Route, decode_json
from mlkube.server.openapi import example_row, rows_schema

_encode = msgspec.json.Encoder().encode
_decode_v1 = msgspec.json.Decoder(V1PredictRequest).decode
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
        rows = rows_schema(plane.n_features, plane.settings.max_batch_size)
        request = Annotated[
            V1PredictRequest, msgspec.Meta(extra_json_schema={"properties": {"instances": rows}})
        ]
        return Operation(
            request=request,
            responses={200: V1Predictions, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody},
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
        body = decode_json(_decode_v1, request.body)
        scores = plane.observe(await plane.submit(body.instances))
        return Response(200, _encode(V1Predictions(scores.classes.tolist())))
