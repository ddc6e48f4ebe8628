"""KServe V1 and the Open Inference Protocol (V2) over REST, on the same `ModelService` as /predict.

The HTTP layer only: check the model name (and version), decode, hand float32 rows to the service, shape
the answer. Auth, body limits, the in-flight cap, metrics by route template and the access log come from
the app around every route, as for /predict; the V2 health probes stay open like /health and /ready.

Statuses follow the V2 spec: a request the client can fix is 400 with `{"error": ...}`, an unknown model or
version 404, a model that is not loaded 503. V1 shares /predict's rules (422 for rows that cannot be
scored). The spec prints the server-ready body as `{"live": ...}`, an evident slip: it is answered as KServe
does, `{"ready": ...}`, with 503 when not ready so the route works as a Kubernetes readiness probe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

import mlkube
from mlkube.errors import InvalidInput, NotFound, RequestError
from mlkube.model.runtime import Scores
from mlkube.server.batching import MicroBatcher
from mlkube.server.http import Operation, Request, Response, Route
from mlkube.server.metrics import Metrics
from mlkube.server.openapi import example_row, rows_schema, v2_input_schema
from mlkube.server.schemas import ErrorBody, Readiness
from mlkube.server.service import ModelService
from mlkube.server.tensors import (
    BINARY_HEADER,
    INPUT_NAME,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    decode_request,
    encode_response,
    input_rows,
    output_tensors,
)

_encode = msgspec.json.Encoder().encode
_decode_readiness = msgspec.json.Decoder(Readiness).decode
_PLATFORMS = {"onnx": "onnx_onnxv1", "sklearn": "sklearn_skops"}
_LIVE = _encode(ServerLive(live=True))


class V1PredictRequest(msgspec.Struct):
    """KServe V1 (TensorFlow Serving's row format): one list of feature values per row."""

    instances: list[list[float]]


class V1Predictions(msgspec.Struct):
    """The predicted class index of every row, in order."""

    predictions: list[int]


class V1Models(msgspec.Struct):
    models: list[str]


class V1ModelStatus(msgspec.Struct):
    name: str
    ready: bool


_decode_v1 = msgspec.json.Decoder(V1PredictRequest).decode


class ServedModel:
    """The one model behind the protocol routes: name and version checks, scoring with metrics."""

    def __init__(self, service: ModelService, metrics: Metrics, batcher: MicroBatcher) -> None:
        self.service = service
        self.metrics = metrics
        self.batcher = batcher

    def check(self, params: Mapping[str, str]) -> None:
        """404 unless the path names this model (and, when it names one, this version)."""
        service = self.service
        if params["name"] != service.name:
            raise NotFound(f"unknown model {params['name']!r}: this server serves {service.name!r}")
        version = params.get("version")
        if version is not None and version != service.version:
            raise NotFound(
                f"model {service.name!r} has no version {version!r}: this server serves {service.version!r}"
            )

    def require_ready(self) -> None:
        if not self.service.ready:
            raise RequestError(f"model not ready: {self.service.reason}", status=503)

    async def score(self, rows: Any) -> Scores:
        service = self.service
        scores = await self.batcher.score(rows)
        self.metrics.observe_scores(service.class_names, scores, service.confidences(scores))
        return scores


class KServeV1:
    """`/v1/models[/{name}[:predict]]`: list, status and row predictions, as KServe's V1 protocol."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model

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
        settings = self.model.service.settings
        request = Annotated[
            V1PredictRequest,
            msgspec.Meta(
                extra_json_schema={
                    "properties": {
                        "instances": rows_schema(self.model.service.n_features, settings.max_batch_size)
                    }
                }
            ),
        ]
        return Operation(
            request=request,
            responses={200: V1Predictions, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody},
            example={"instances": [example_row(self.model.service)]},
        )

    def list_models(self, request: Request) -> Response:
        return Response(200, _encode(V1Models([self.model.service.name])))

    def model_status(self, request: Request) -> Response:
        self.model.check(request.params)
        ready = self.model.service.ready
        return Response(200 if ready else 503, _encode(V1ModelStatus(self.model.service.name, ready)))

    async def predict(self, request: Request) -> Response:
        self.model.check(request.params)
        self.model.require_ready()
        try:
            body = _decode_v1(request.body)
        except msgspec.ValidationError as error:
            raise InvalidInput(str(error).replace("`", "")) from None
        except msgspec.DecodeError as error:
            raise RequestError(f"body is not valid JSON: {error}") from None
        scores = await self.model.score(self.model.service.rows_to_array(body.instances))
        return Response(200, _encode(V1Predictions(scores.classes.tolist())))


class OpenInferenceV2:
    """The Open Inference Protocol's REST routes: server and model metadata, health, `infer`."""

    def __init__(self, model: ServedModel, readiness: Callable[[Request], Response]) -> None:
        self.model = model
        self._readiness = readiness

    def routes(self) -> list[Route]:
        metadata = Operation(responses={200: ModelMetadata, 404: ErrorBody, 503: ErrorBody})
        ready = Operation(responses={200: ModelReady, 404: ErrorBody, 503: ModelReady})
        infer = self._infer_doc()
        return [
            Route(
                "/v2",
                {"GET": self.server_metadata},
                protected=True,
                summary="V2 server metadata: name, version, extensions",
                operations={"GET": Operation(responses={200: ServerMetadata})},
            ),
            Route(
                "/v2/health/live",
                {"GET": self.live},
                summary="V2 liveness: the process answers",
                operations={"GET": Operation(responses={200: ServerLive})},
            ),
            Route(
                "/v2/health/ready",
                {"GET": self.ready},
                summary="V2 readiness: the model is loaded and the server is not draining",
                operations={"GET": Operation(responses={200: ServerReady, 503: ServerReady})},
            ),
            Route(
                "/v2/models/{name}",
                {"GET": self.model_metadata},
                protected=True,
                summary="V2 model metadata: its input and outputs",
                operations={"GET": metadata},
            ),
            Route(
                "/v2/models/{name}/versions/{version}",
                {"GET": self.model_metadata},
                protected=True,
                summary="V2 model metadata of one version",
                operations={"GET": metadata},
            ),
            Route(
                "/v2/models/{name}/ready",
                {"GET": self.model_ready},
                protected=True,
                summary="V2 model readiness",
                operations={"GET": ready},
            ),
            Route(
                "/v2/models/{name}/versions/{version}/ready",
                {"GET": self.model_ready},
                protected=True,
                summary="V2 readiness of one model version",
                operations={"GET": ready},
            ),
            Route(
                "/v2/models/{name}/infer",
                {"POST": self.infer},
                protected=True,
                summary="V2 inference",
                operations={"POST": infer},
            ),
            Route(
                "/v2/models/{name}/versions/{version}/infer",
                {"POST": self.infer},
                protected=True,
                summary="V2 inference on one model version",
                operations={"POST": infer},
            ),
        ]

    def _infer_doc(self) -> Operation:
        service = self.model.service
        row = example_row(service)
        request = Annotated[
            InferenceRequest,
            msgspec.Meta(
                extra_json_schema={
                    "properties": {
                        "inputs": {
                            "items": v2_input_schema(service.n_features, service.settings.max_batch_size)
                        }
                    }
                }
            ),
        ]
        return Operation(
            request=request,
            responses={200: InferenceResponse, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody},
            description=(
                f"One input {INPUT_NAME!r} of shape [rows, {service.n_features}] in any FP or (U)INT "
                "datatype, its `data` flat or one array per row. Outputs: `predict` (INT64 class index), "
                "`predict_proba` (FP32 probabilities, 6 decimals in JSON) and `label` (BYTES class name), "
                'all of them unless `outputs` names some. Errors are 400 with `{"error": ...}`. Triton\'s '
                "binary tensor extension works too: `parameters.binary_data_size` on the input with an "
                "`Inference-Header-Content-Length` header, and `binary_data` on an output (or "
                "`binary_data_output` on the request)."
            ),
            example={
                "id": "1",
                "inputs": [{"name": INPUT_NAME, "shape": [1, len(row)], "datatype": "FP32", "data": row}],
            },
        )

    # --- handlers ---------------------------------------------------------------------------------

    def server_metadata(self, request: Request) -> Response:
        return Response(200, _encode(ServerMetadata("mlkube", mlkube.__version__, ["binary_tensor_data"])))

    def live(self, request: Request) -> Response:
        return Response(200, _LIVE)

    def ready(self, request: Request) -> Response:
        answer = self._readiness(request)
        reason = _decode_readiness(answer.body).reason
        return Response(answer.status, _encode(ServerReady(answer.status == 200, reason)))

    def model_metadata(self, request: Request) -> Response:
        self.model.check(request.params)
        service = self.model.service
        if service.bundle is None:
            raise RequestError(f"model not ready: {service.reason}", status=503)
        n_classes = service.bundle.metadata.n_classes
        body = ModelMetadata(
            name=service.name,
            versions=[service.version],
            platform=_PLATFORMS[service.settings.model_runtime],
            inputs=[MetadataTensor(INPUT_NAME, "FP32", [-1, service.n_features])],
            outputs=[
                MetadataTensor("predict", "INT64", [-1]),
                MetadataTensor("predict_proba", "FP32", [-1, n_classes]),
                MetadataTensor("label", "BYTES", [-1]),
            ],
        )
        return Response(200, _encode(body))

    def model_ready(self, request: Request) -> Response:
        self.model.check(request.params)
        ready = self.model.service.ready
        return Response(200 if ready else 503, _encode(ModelReady(self.model.service.name, ready)))

    async def infer(self, request: Request) -> Response:
        model = self.model
        model.check(request.params)
        model.require_ready()
        service = model.service
        body, binary = decode_request(request.body, request.headers.get(BINARY_HEADER))
        rows = input_rows(body.inputs[0], binary, service.n_features, service.settings.max_batch_size)
        scores = await model.score(rows)
        all_binary = (body.parameters or {}).get("binary_data_output") is True
        outputs, blobs = output_tensors(body.outputs, all_binary, scores, service.class_names)
        answer = InferenceResponse(
            model_name=service.name, model_version=service.version, id=body.id, outputs=outputs
        )
        payload, header_length = encode_response(answer, blobs)
        if header_length is None:
            return Response(200, payload)
        headers = [(BINARY_HEADER, str(header_length))]
        return Response(200, payload, content_type="application/octet-stream", headers=headers)


def protocol_routes(
    service: ModelService, metrics: Metrics, batcher: MicroBatcher, readiness: Callable[[Request], Response]
) -> list[Route]:
    """Every KServe V1 and V2 route, for `App.routes()`."""
    model = ServedModel(service, metrics, batcher)
    return [*KServeV1(model).routes(), *OpenInferenceV2(model, readiness).routes()]
