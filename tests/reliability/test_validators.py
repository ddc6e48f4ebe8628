"""Property tests of the request validators: any JSON value, any bytes → a 2xx or a 4xx, never an exception.

In-process, thousands of cases go through the simple API's `predict` (decode, validate, score, encode) in
milliseconds;
over HTTP, a smaller sample proves the same of the real server (status, JSON error body, no 5xx).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlkube.errors import RequestError
from mlkube.model.bundle import Bundle
from mlkube.server.app import App
from mlkube.server.http import Request
from mlkube.server.simple_api import SimpleApi
from tests.inprocess import in_process_app
from tests.support import RunningServer

FLOAT32_MAX = 3.4028234663852886e38
IN_PROCESS = settings(max_examples=1000, deadline=None, database=None)
OVER_HTTP = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

numbers = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from([0, -0.0, 3.4e38, 3.5e38, -3.5e38, 1e-320, 2**53 + 1])
)
finite_numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**400), 10**400)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=25,
)
rows = st.lists(numbers, min_size=0, max_size=6)
prediction_shaped = st.fixed_dictionaries(
    {},
    optional={
        "features": rows | json_values,
        "instances": st.lists(rows, max_size=5) | json_values,
        "extra": json_values,
    },
)
bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    prediction_shaped.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def loaded_app(iris_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> App:
    app = in_process_app(iris_bundle, tmp_path_factory.mktemp("app"), MAX_BATCH_SIZE="4")
    app.service.load()
    return app


def status_in_process(app: App, body: bytes) -> int:
    """What the app answers `body`: 200, or the status of the RequestError it raised. Anything else raises."""
    try:
        response = asyncio.run(SimpleApi(app.plane).predict(Request("POST", "/predict", {}, body=body)))
    except RequestError as error:
        return error.status
    return response.status


@IN_PROCESS
@given(bodies)
def test_any_body_is_answered_2xx_or_4xx_in_process(loaded_app: App, body: bytes) -> None:
    status = status_in_process(loaded_app, body)
    assert 200 <= status < 300 or 400 <= status < 500


@IN_PROCESS
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=4, max_size=4))
def test_every_finite_float32_row_is_scored(loaded_app: App, row: list[float]) -> None:
    assert status_in_process(loaded_app, json.dumps({"features": row}).encode()) == 200


@IN_PROCESS
@given(st.lists(finite_numbers, min_size=4, max_size=4))
def test_a_row_is_scored_exactly_when_its_values_fit_float32(loaded_app: App, row: list[float]) -> None:
    status = status_in_process(loaded_app, json.dumps({"features": row}).encode())
    if all(abs(value) <= FLOAT32_MAX for value in row):  # exact for ints of any size
        assert status == 200
    else:
        assert status == 422


@OVER_HTTP
@given(bodies)
def test_any_body_is_answered_2xx_or_4xx_over_http(server: RunningServer, body: bytes) -> None:
    response = server.client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/json"
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}


@OVER_HTTP
@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    st.sampled_from(["/predict", "/health", "/ready", "/metrics", "/", "/predict/", "/PREDICT", "/%00"]),
    st.dictionaries(
        st.sampled_from(["content-type", "x-api-key", "authorization", "x-request-id", "content-encoding"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_any_method_path_and_headers_are_answered_without_5xx(
    server: RunningServer, method: str, path: str, headers: dict[str, str]
) -> None:
    try:
        response = server.client.request(method, path, headers=headers, content=b'{"features": [1, 2, 3, 4]}')
    except httpx.LocalProtocolError:  # a header value httpx itself refuses to send: not a server question
        return
    assert response.status_code < 500, (method, path, headers, response.text)
