"""/openapi.json: a valid OpenAPI 3.1 document of every route, whose schemas take what the server takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from mlkube.model.bundle import Bundle
from mlkube.server.app import build_app
from mlkube.settings import Settings
from tests.server.openapi_documents import JSON, request_validator
from tests.support import NOTES_ROW, RunningServer


@pytest.fixture(scope="module")
def document(server: RunningServer) -> dict[str, Any]:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body: dict[str, Any] = response.json()
    return body


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "mlkube"


def test_every_route_of_the_app_is_described(
    document: dict[str, Any], iris_bundle: Bundle, tmp_path: Path
) -> None:
    app = build_app(Settings(), iris_bundle, None, tmp_path / "draining")
    routes = {(method.lower(), route.template) for route in app.routes() for method in route.handlers}
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == routes
    assert ("post", "/v1/models/{name}:predict") in described
    assert ("post", "/v2/models/{name}/versions/{version}/infer") in described


def test_operation_ids_are_unique_and_path_parameters_declared(document: dict[str, Any]) -> None:
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    infer = document["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert [(p["name"], p["in"], p["example"]) for p in infer["parameters"]] == [
        ("name", "path", "iris"),
        ("version", "path", "v1"),
    ]


def test_predict_schema_takes_the_notes_body_and_refuses_a_string(document: dict[str, Any]) -> None:
    validator = request_validator(document, "POST", "/predict")
    assert validator.is_valid({"features": [5.1, 3.5, 1.4, 0.2]})
    assert not validator.is_valid("features")
    assert not validator.is_valid({"features": "5.1,3.5,1.4,0.2"})


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/predict", {"200", "400", "413", "415", "422", "503"}),
        ("post", "/v1/models/{name}:predict", {"200", "400", "404", "413", "415", "422", "503"}),
        ("post", "/v2/models/{name}/infer", {"200", "400", "404", "413", "415", "503"}),
        ("get", "/v2/models/{name}", {"200", "404", "503"}),
        ("get", "/ready", {"200", "503"}),
        ("get", "/health", {"200"}),
        ("get", "/docs/{asset}", {"200", "404"}),
    ],
)
def test_each_operation_lists_the_statuses_it_can_answer(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    responses = document["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status, response in responses.items():
        assert "X-Request-ID" in response["headers"]
        if status.startswith("4"):
            assert response["content"][JSON]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_metrics_and_docs_declare_their_content_types(document: dict[str, Any]) -> None:
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert next(iter(metrics)).startswith("text/plain")
    assert list(document["paths"]["/docs"]["get"]["responses"]["200"]["content"]) == [
        "text/html; charset=utf-8"
    ]


def test_without_api_keys_no_security_is_declared(document: dict[str, Any]) -> None:
    assert "securitySchemes" not in document["components"]
    assert all("security" not in op for item in document["paths"].values() for op in item.values())


def test_every_json_body_has_an_example_that_is_valid_and_answered_200(
    server: RunningServer, document: dict[str, Any]
) -> None:
    with_body = {
        (method, path): operation["requestBody"]["content"][JSON]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if JSON in operation.get("requestBody", {}).get("content", {})
    }
    assert ("post", "/predict") in with_body
    assert ("post", "/invocations") in with_body  # MLflow's scoring bodies
    missing = [operation for operation, body in with_body.items() if "example" not in body]
    assert missing == [], "operations that take JSON without an example for Swagger UI's Try it out"
    for (method, path), body in with_body.items():
        assert request_validator(document, method, path).is_valid(body["example"]), path
        concrete = path.replace("{name}", "iris").replace("{version}", "v1")
        assert server.client.request(method, concrete, json=body["example"]).status_code == 200, path


def test_only_invocations_takes_text_csv_and_its_example_is_answered_200(
    server: RunningServer, document: dict[str, Any]
) -> None:
    """MLflow's text/csv: documented on `/invocations` alone, with an example the server answers."""
    with_csv = {
        (method, path): operation["requestBody"]["content"]["text/csv"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "text/csv" in operation.get("requestBody", {}).get("content", {})
    }
    assert list(with_csv) == [("post", "/invocations")]
    example = with_csv["post", "/invocations"]["example"]
    assert example.splitlines()[0] == "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm"
    answer = server.client.post("/invocations", content=example, headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert list(answer.json()) == ["predictions"]


V2 = "/v2/models/{name}/infer"


def v2(data: Any, shape: list[int] | None = None, datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    shape = shape or [1, 4]
    return {"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}], **extra}


AGREEMENT = [
    ("/predict", {"features": NOTES_ROW}),
    ("/predict", {"instances": [NOTES_ROW, NOTES_ROW]}),
    ("/predict", {"features": NOTES_ROW, "instances": None}),
    ("/predict", {"features": NOTES_ROW, "unknown": 1}),
    ("/predict", "features"),
    ("/predict", [NOTES_ROW]),
    ("/predict", {}),
    ("/predict", {"features": None}),
    ("/predict", {"features": [1, 2, 3]}),
    ("/predict", {"features": [True, 3.5, 1.4, 0.2]}),
    ("/predict", {"features": [1e39, 3.5, 1.4, 0.2]}),
    ("/predict", {"features": NOTES_ROW, "instances": [NOTES_ROW]}),
    ("/predict", {"instances": []}),
    ("/predict", {"instances": [NOTES_ROW] * 1001}),
    ("/predict", {"instances": NOTES_ROW}),
    ("/v1/models/{name}:predict", {"instances": [NOTES_ROW]}),
    ("/v1/models/{name}:predict", {"instances": []}),
    ("/v1/models/{name}:predict", {"instances": [[1, 2, 3]]}),
    ("/v1/models/{name}:predict", {}),
    (V2, v2(NOTES_ROW)),
    (V2, v2([NOTES_ROW])),
    (V2, v2([5, 3, 1, 0], datatype="INT32")),
    (V2, v2([5, 3, 1, 0], datatype="UINT8", id="x", outputs=[{"name": "label"}])),
    (V2, v2(NOTES_ROW, datatype="INT32")),
    (V2, v2([5, 3, 1, 300], datatype="INT8")),
    (V2, v2([5, 3, 1, -1], datatype="UINT16")),
    (V2, v2([5, 3, 1, 70000], datatype="FP16")),
    (V2, v2([5, 3, 1, 1e39], datatype="FP64")),
    (V2, v2(NOTES_ROW, datatype="BOOL")),
    (V2, v2([1, 2, "3", 4])),
    (V2, v2([1, 2, 3], shape=[1, 3])),
    (V2, v2([NOTES_ROW] * 1001, shape=[1001, 4])),
    (V2, v2(NOTES_ROW, outputs=[{"name": "scores"}])),
    (V2, v2(NOTES_ROW, id=7)),
    (V2, {"inputs": []}),
    (V2, {"inputs": [v2(NOTES_ROW)["inputs"][0] | {"name": "x"}]}),
    (V2, {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32"}]}),
    (V2, v2([5.0, 3.0, 1.0, 0.0], datatype="INT32")),  # 5.0 is an integer to JSON Schema
    (V2, {"inputs": [v2(NOTES_ROW)["inputs"][0] | {"parameters": {"binary_data_size": "16"}}]}),
    ("/predict/proba", {"features": NOTES_ROW}),
    ("/predict/proba", {"features": [1, 2, 3]}),
    ("/predict/proba", {}),
]


@pytest.mark.parametrize(("path", "body"), AGREEMENT)
def test_schema_and_server_agree_on_what_is_accepted(
    server: RunningServer, document: dict[str, Any], path: str, body: Any
) -> None:
    promised = request_validator(document, "POST", path).is_valid(body)
    concrete = path.replace("{name}", "iris")
    status = server.client.post(concrete, json=body).status_code
    assert promised == (status == 200), f"schema says {promised}, server answers {status}"


@pytest.fixture(scope="module")
def keyed_document(keyed_server: RunningServer) -> dict[str, Any]:
    response = keyed_server.client.get("/openapi.json")  # open, like the probes
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_with_api_keys_protected_operations_declare_the_schemes(keyed_document: dict[str, Any]) -> None:
    validate(keyed_document)
    assert keyed_document["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer"},
    }
    paths = keyed_document["paths"]
    for method, path in [("post", "/predict"), ("post", V2), ("get", "/v1/models"), ("get", "/v2")]:
        assert paths[path][method]["security"] == [{"ApiKey": []}, {"Bearer": []}], path
        assert "401" in paths[path][method]["responses"], path
    for method, path in [
        ("get", "/health"),
        ("get", "/v2/health/ready"),
        ("get", "/metrics"),
        ("get", "/docs"),
    ]:
        assert "security" not in paths[path][method], path
        assert "401" not in paths[path][method]["responses"], path
