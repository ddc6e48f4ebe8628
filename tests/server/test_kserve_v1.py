"""KServe V1 over a real socket: model list, model status, `:predict` with rows, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import KEY, NOTES_ROW, RunningServer, start_server

PREDICT = "/v1/models/iris:predict"


def test_models_lists_the_served_model(server: RunningServer) -> None:
    response = server.client.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {"models": ["iris"]}


def test_model_status_is_ready(server: RunningServer) -> None:
    response = server.client.get("/v1/models/iris")
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


def test_predict_answers_a_class_index_per_row_in_order(server: RunningServer) -> None:
    rows = [NOTES_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
    response = server.client.post(PREDICT, json={"instances": rows})
    assert response.status_code == 200
    assert response.json() == {"predictions": [0, 2, 1]}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/models/mnist"), ("POST", "/v1/models/mnist:predict")]
)
def test_unknown_model_is_json_404(server: RunningServer, method: str, path: str) -> None:
    response = server.client.request(
        method, path, json={"instances": [NOTES_ROW]} if method == "POST" else None
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown model 'mnist': this server serves 'iris'"}


@pytest.mark.parametrize("path", ["/v1/models/iris/predict", "/v1/models/iris:explain", "/v1/models/iris:"])
def test_only_the_colon_predict_verb_is_a_route(server: RunningServer, path: str) -> None:
    response = server.client.post(path, json={"instances": [NOTES_ROW]})
    assert response.status_code == 404
    assert response.json() == {"error": f"no route POST {path}"}


def test_get_on_the_predict_verb_is_405_with_allow(server: RunningServer) -> None:
    response = server.client.get(PREDICT)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"{}", 422, "Object missing required field instances"),
        (b'{"instances": [[1, 2, 3]]}', 422, "features has 3 values, expected 4"),
        (b'{"instances": []}', 422, "no rows to score"),
        (b'{"instances": [[1, 2, "3", 4]]}', 422, "got str - at $.instances[0][2]"),
        (b'{"instances": [[1, 2, 3, 1e300]]}', 422, "must lie within"),
    ],
)
def test_bad_rows_get_the_same_errors_as_predict(
    server: RunningServer, body: bytes, status: int, message: str
) -> None:
    response = server.client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]


def test_batch_over_max_batch_size_is_refused(server: RunningServer) -> None:
    response = server.client.post(PREDICT, json={"instances": [NOTES_ROW] * 1001})
    assert response.status_code == 422
    assert response.json() == {"error": "1001 rows is more than MAX_BATCH_SIZE=1000"}


def test_v1_routes_need_the_api_key_when_one_is_set(keyed_server: RunningServer) -> None:
    client = keyed_server.client
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models/iris").status_code == 401
    assert client.post(PREDICT, json={"instances": [NOTES_ROW]}).status_code == 401
    answer = client.post(PREDICT, json={"instances": [NOTES_ROW]}, headers={"x-api-key": KEY})
    assert answer.json() == {"predictions": [0]}


def test_model_status_is_503_while_the_model_is_not_loaded(tmp_path: Path) -> None:
    with start_server({"MODEL_DIR": str(tmp_path), "WORKERS": "1"}) as running:
        response = running.client.get("/v1/models/iris")
        assert response.status_code == 503
        assert response.json() == {"name": "iris", "ready": False}
        assert running.client.post(PREDICT, json={"instances": [NOTES_ROW]}).status_code == 503
