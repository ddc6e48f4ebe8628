"""The Open Inference Protocol (V2) over REST: server and model metadata, health, `infer`.

A thin adapter on the data plane; the tensors' codec is `server/tensors/`, the wire types are
`mlkube.api.open_inference`'s. Statuses follow the V2 spec: a request the client can fix is 400 with
`{"error": ...}`, an unknown model or version 404, a model that is not loaded 503. The spec prints the
server-ready body as `{"live": ...}`, an evident slip: it is answered as KServe does, `{"ready": ...}`, with
503 when not ready so the route works as a Kubernetes readiness probe. The health probes stay open like
/health and /ready.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

import mlkube
from mlkube.api.open_inference import (
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
)
from mlkube.api.simple import ErrorBody
from mlkube.errors import InferenceError
from mlkube.server.batching import Batch
from mlkube.server.dataplane import DataPlane
from mlkube.server.http import Operation, Request, Response, Route
from mlkube.server.openapi import example_row, v2_column_schema, v2_input_schema
from mlkube.server.tensors.columns import input_columns
from mlkube.server.tensors.decoding import decode_request, input_rows
from mlkube.server.tensors.encoding import encode_response, output_tensors

_encode = msgspec.json.Encoder().encode
_PLATFORMS = {"onnx": "onnx_onnxv1", "sklearn": "sklearn_skops"}
_LIVE = _encode(ServerLive(live=True))


class OpenInferenceV2:
    """The V2 REST routes of the one served model."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

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
                binary_body=True,
                summary="V2 inference",
                operations={"POST": infer},
            ),
            Route(
                "/v2/models/{name}/versions/{version}/infer",
                {"POST": self.infer},
                protected=True,
                binary_body=True,
                summary="V2 inference on one model version",
                operations={"POST": infer},
            ),
        ]

    def _infer_doc(self) -> Operation:
        plane = self.plane
        row = example_row(plane)
        max_rows = plane.settings.max_batch_size
        if plane.features.by_column:
            inputs: dict[str, Any] = {"items": v2_column_schema(plane.features.names, max_rows)}
            example_inputs = [
                {"name": name, "shape": [1, 1], "datatype": "BYTES" if isinstance(value, str) else "FP32"}
                | {"data": [value]}
                for name, value in zip(plane.features.names, row, strict=True)
            ]
            taken = "One input per feature, named as the feature, of shape [rows] or [rows, 1]: FP or (U)INT "
            taken += "numbers, BYTES text for a category, null where the model imputes a missing value."
        else:
            inputs = {"items": v2_input_schema(plane.n_features, max_rows), "maxItems": 1}
            example_inputs = [{"name": INPUT_NAME, "shape": [1, len(row)], "datatype": "FP32", "data": row}]
            taken = (
                f"One input {INPUT_NAME!r} of shape [rows, {plane.n_features}] in any FP or (U)INT "
                "datatype, its `data` flat or one array per row."
            )
        outputs = (
            "Output: `predict` (FP32, the regressor's value)."
            if plane.is_regressor
            else "Outputs: `predict` (INT64 class index), `predict_proba` (FP32 probabilities, 6 decimals in "
            "JSON) and `label` (BYTES class name), all of them unless `outputs` names some."
        )
        request = Annotated[
            InferenceRequest, msgspec.Meta(extra_json_schema={"properties": {"inputs": inputs}})
        ]
        return Operation(
            request=request,
            responses={200: InferenceResponse, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody},
            description=(
                f"{taken} {outputs} "
                'Errors are 400 with `{"error": ...}`. Triton\'s binary tensor extension works too for '
                "numbers: `parameters.binary_data_size` on the input with an "
                "`Inference-Header-Content-Length` header, and `binary_data` on an output (or "
                "`binary_data_output` on the request)."
            ),
            example={"id": "1", "inputs": example_inputs},
        )

    def _rows(self, body: InferenceRequest, binary: memoryview) -> Batch:
        """Today's one tensor `features`; or, for a model with text features, one input per feature."""
        plane = self.plane
        features = plane.features
        if features.by_column or len(body.inputs) > 1:
            if any(tensor.name == INPUT_NAME for tensor in body.inputs) and not features.by_column:
                raise InferenceError(
                    f"send one input {INPUT_NAME!r}, or one input per feature, not {len(body.inputs)} inputs"
                )
            return features.from_columns(input_columns(body.inputs, binary), InferenceError)
        return input_rows(body.inputs[0], binary, plane.n_features, plane.settings.max_batch_size)

    # --- handlers ---------------------------------------------------------------------------------

    def server_metadata(self, request: Request) -> Response:
        return Response(200, _encode(ServerMetadata("mlkube", mlkube.__version__, ["binary_tensor_data"])))

    def live(self, request: Request) -> Response:
        return Response(200, _LIVE)

    def ready(self, request: Request) -> Response:
        reason = self.plane.why_not_ready()
        return Response(200 if reason is None else 503, _encode(ServerReady(reason is None, reason)))

    def model_metadata(self, request: Request) -> Response:
        plane = self.plane
        plane.check_model(request.params)
        n_classes = plane.require_model().metadata.n_classes
        body = ModelMetadata(
            name=plane.name,
            versions=[plane.version],
            platform=_PLATFORMS[plane.settings.model_runtime],
            inputs=_metadata_inputs(plane),
            outputs=[MetadataTensor("predict", "FP32", [-1])]
            if plane.is_regressor
            else [
                MetadataTensor("predict", "INT64", [-1]),
                MetadataTensor("predict_proba", "FP32", [-1, n_classes]),
                MetadataTensor("label", "BYTES", [-1]),
            ],
        )
        return Response(200, _encode(body))

    def model_ready(self, request: Request) -> Response:
        plane = self.plane
        plane.check_model(request.params)
        ready = plane.model_ready
        return Response(200 if ready else 503, _encode(ModelReady(plane.name, ready)))

    async def infer(self, request: Request) -> Response:
        plane = self.plane
        plane.check_model(request.params)
        plane.require_model()
        body, binary = decode_request(request.body, request.headers.get(BINARY_HEADER))
        scores = plane.observe(await plane.submit_array(self._rows(body, binary)))
        all_binary = (body.parameters or {}).get("binary_data_output") is True
        outputs, blobs = output_tensors(body.outputs, all_binary, scores, plane.class_names)
        answer = InferenceResponse(
            model_name=plane.name, model_version=plane.version, id=body.id, outputs=outputs
        )
        payload, header_length = encode_response(answer, blobs)
        if header_length is None:
            return Response(200, payload)
        headers = [(BINARY_HEADER, str(header_length))]
        return Response(200, payload, content_type="application/octet-stream", headers=headers)


def _metadata_inputs(plane: DataPlane) -> list[MetadataTensor]:
    """One FP32 tensor `features`; a model with text features takes one input per feature instead."""
    features = plane.features
    if not features.by_column:
        return [MetadataTensor(INPUT_NAME, "FP32", [-1, plane.n_features])]
    return [
        MetadataTensor(feature.name, "BYTES" if feature.category else "FP32", [-1, 1])
        for feature in features.features
    ]
