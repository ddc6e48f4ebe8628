"""Every status-bearing error maps to its answer in one place, and every JSON body decodes through one helper
that turns each msgspec failure into the client's error."""

from __future__ import annotations

import json

import msgspec
import pytest

from mlkube.api.simple import PredictRequest
from mlkube.errors import (
    InferenceError,
    InvalidInput,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from mlkube.server.http import decode_json, error_for

_decode = msgspec.json.Decoder(PredictRequest).decode
# an unknown key's value is skipped unread, so msgspec's recursion guard fires, not a type error
DEEP = b'{"unknown": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (RequestError("content-length 'x' is not a number"), 400, []),
        (InferenceError("input 'features' has no 'data'"), 400, []),
        (Unauthorized("invalid API key"), 401, [("www-authenticate", 'Bearer realm="mlkube"')]),
        (NotFound("no route GET /x"), 404, []),
        (MethodNotAllowed("GET", "/predict", ["POST"]), 405, [("allow", "POST")]),
        (MethodNotAllowed("PUT", "/v2", ["GET", "HEAD"]), 405, [("allow", "GET, HEAD")]),
        (RequestTimeout("request body not received within 10 s"), 408, []),
        (PayloadTooLarge("body is over MAX_BODY_BYTES=1"), 413, []),
        (UnsupportedMediaType("content-type 'text/plain' is not JSON"), 415, []),
        (InvalidInput("features has 3 values, expected 4"), 422, []),
        (ModelNotReady("model not loaded yet"), 503, [("retry-after", "1")]),
        (Overloaded("overloaded"), 503, [("retry-after", "1")]),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_each_error_is_answered_with_its_status_message_and_headers(
    error: RequestError, status: int, headers: list[tuple[str, str]]
) -> None:
    response = error_for(error)
    assert response.status == status
    assert json.loads(response.body) == {"error": str(error)}
    assert response.headers == headers


def test_model_not_ready_says_why() -> None:
    assert str(ModelNotReady("models/iris/v1/model.onnx: sha256 mismatch")) == (
        "model not ready: models/iris/v1/model.onnx: sha256 mismatch"
    )


def test_a_headers_list_of_one_answer_is_not_shared_with_the_next() -> None:
    first = error_for(Unauthorized("missing API key"))
    first.headers.append(("x-request-id", "1"))
    assert error_for(Unauthorized("missing API key")).headers == [
        ("www-authenticate", 'Bearer realm="mlkube"')
    ]


@pytest.mark.parametrize(
    ("body", "invalid", "status", "message"),
    [
        (b"{not json", InvalidInput, 400, "body is not valid JSON"),
        (b'{"features": [NaN, 1, 1, 1]}', InvalidInput, 400, "body is not valid JSON"),
        (DEEP, InvalidInput, 400, "nested too deeply"),
        (b'{"features": ["a", 1, 1, 1]}', InvalidInput, 422, "Expected float, got str - at $.features[0]"),
        (b"{not json", InferenceError, 400, "body is not valid JSON"),
        (DEEP, InferenceError, 400, "nested too deeply"),
        (b'{"features": ["a", 1, 1, 1]}', InferenceError, 400, "got str - at $.features[0]"),
    ],
)
def test_every_msgspec_failure_becomes_the_clients_error(
    body: bytes, invalid: type[RequestError], status: int, message: str
) -> None:
    with pytest.raises(RequestError) as raised:
        decode_json(_decode, body, invalid)
    assert raised.value.status == status
    assert message in str(raised.value)
    assert "`" not in str(raised.value)
