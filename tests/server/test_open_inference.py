"""Open Inference Protocol (V2) REST over a real socket: metadata, probes, infer, errors, binary tensors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlkube import __version__
from tests.support import KEY, NOTES_ROW, RunningServer, metric_value, start_server, wait_for_metric

ROWS = [NOTES_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
FLAT_ROWS = [value for row in ROWS for value in row]
CLASSES = [0, 2, 1]
LABELS = ["setosa", "virginica", "versicolor"]
# integer rows that score like ROWS, for the integer datatypes
INTEGER_ROWS = [[5, 4, 1, 0], [7, 3, 6, 2], [6, 3, 4, 1]]
INFER = "/v2/models/iris/infer"


def features(data: Any, shape: list[int], datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {"name": "features", "shape": shape, "datatype": datatype, "data": data, **extra}


def infer(server: RunningServer, body: dict[str, Any], path: str = INFER) -> httpx.Response:
    return server.client.post(path, json=body)


def outputs_by_name(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


def test_server_metadata_names_mlkube_and_the_binary_extension(server: RunningServer) -> None:
    response = server.client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {"name": "mlkube", "version": __version__, "extensions": ["binary_tensor_data"]}


def test_live_and_ready_probes_answer_true(server: RunningServer) -> None:
    assert server.client.get("/v2/health/live").json() == {"live": True}
    ready = server.client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/v1"])
def test_model_metadata_lists_the_real_input_and_outputs(server: RunningServer, path: str) -> None:
    response = server.client.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "name": "iris",
        "versions": ["v1"],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    }


@pytest.mark.parametrize("path", ["/v2/models/iris/ready", "/v2/models/iris/versions/v1/ready"])
def test_model_ready_with_and_without_the_version(server: RunningServer, path: str) -> None:
    response = server.client.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v2/models/mnist", "unknown model 'mnist': this server serves 'iris'"),
        ("GET", "/v2/models/mnist/ready", "unknown model 'mnist'"),
        ("GET", "/v2/models/iris/versions/v2", "model 'iris' has no version 'v2': this server serves 'v1'"),
        ("GET", "/v2/models/iris/versions/v2/ready", "no version 'v2'"),
        ("POST", "/v2/models/mnist/infer", "unknown model 'mnist'"),
        ("POST", "/v2/models/iris/versions/v7/infer", "no version 'v7'"),
    ],
)
def test_unknown_model_or_version_is_json_404(
    server: RunningServer, method: str, path: str, message: str
) -> None:
    body = {"inputs": [features(NOTES_ROW, [1, 4])]}
    response = server.client.request(method, path, json=body if method == "POST" else None)
    assert response.status_code == 404
    assert message in response.json()["error"]


def test_infer_answers_every_output_with_the_spec_shapes(server: RunningServer) -> None:
    response = infer(server, {"id": "req-42", "inputs": [features(FLAT_ROWS, [3, 4])]})
    body = response.json()
    assert body["model_name"] == "iris"
    assert body["model_version"] == "v1"
    assert body["id"] == "req-42"
    outputs = outputs_by_name(response)
    assert list(outputs) == ["predict", "predict_proba", "label"]
    assert outputs["predict"] == {"name": "predict", "shape": [3], "datatype": "INT64", "data": CLASSES}
    assert outputs["label"] == {"name": "label", "shape": [3], "datatype": "BYTES", "data": LABELS}
    proba = outputs["predict_proba"]
    assert (proba["shape"], proba["datatype"]) == ([3, 3], "FP32")
    probabilities = np.array(proba["data"]).reshape(3, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities.argmax(axis=1).tolist() == CLASSES


def test_nested_data_scores_like_flat_data(server: RunningServer) -> None:
    flat = outputs_by_name(infer(server, {"inputs": [features(FLAT_ROWS, [3, 4])]}))
    nested = outputs_by_name(infer(server, {"inputs": [features(ROWS, [3, 4])]}))
    assert nested == flat


def test_without_an_id_none_is_invented(server: RunningServer) -> None:
    body = infer(server, {"inputs": [features(NOTES_ROW, [1, 4])]}).json()
    assert "id" not in body


def test_version_path_infers_too(server: RunningServer) -> None:
    response = infer(server, {"inputs": [features(NOTES_ROW, [1, 4])]}, "/v2/models/iris/versions/v1/infer")
    assert outputs_by_name(response)["label"]["data"] == ["setosa"]


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_every_float_datatype_scores_the_rows(server: RunningServer, datatype: str) -> None:
    outputs = outputs_by_name(infer(server, {"inputs": [features(ROWS, [3, 4], datatype)]}))
    assert outputs["predict"]["data"] == CLASSES


@pytest.mark.parametrize(
    "datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
)
def test_every_integer_datatype_scores_the_rows(server: RunningServer, datatype: str) -> None:
    outputs = outputs_by_name(infer(server, {"inputs": [features(INTEGER_ROWS, [3, 4], datatype)]}))
    assert outputs["label"]["data"] == LABELS


def test_requested_outputs_come_alone_in_the_order_asked(server: RunningServer) -> None:
    body = {"inputs": [features(NOTES_ROW, [1, 4])], "outputs": [{"name": "label"}, {"name": "predict"}]}
    response = infer(server, body)
    assert [output["name"] for output in response.json()["outputs"]] == ["label", "predict"]


def test_request_parameters_are_accepted_and_ignored(server: RunningServer) -> None:
    body = {
        "parameters": {"priority": 1, "note": "x"},
        "inputs": [features(NOTES_ROW, [1, 4], parameters={})],
    }
    assert outputs_by_name(infer(server, body))["predict"]["data"] == [0]


def test_batch_at_max_batch_size_is_served(server: RunningServer) -> None:
    response = infer(server, {"inputs": [features([NOTES_ROW] * 1000, [1000, 4])]})
    assert outputs_by_name(response)["predict"]["data"] == [0] * 1000


BAD_REQUESTS = [
    pytest.param(b"{not json", "body is not valid JSON", id="invalid-json"),
    pytest.param(b'{"inputs": []}', "Expected array of length >= 1 - at $.inputs", id="no-inputs"),
    pytest.param(
        {"inputs": [features(NOTES_ROW, [1, 4])] * 2}, "send one input 'features', or one", id="two-inputs"
    ),
    pytest.param(
        {"inputs": [features(NOTES_ROW, [1, 4]) | {"name": "x"}]}, "unknown input 'x'", id="input-name"
    ),
    pytest.param({"inputs": [features(NOTES_ROW, [4])]}, "shape [4], expected [-1, 4]", id="1d-shape"),
    pytest.param(
        {"inputs": [features([1, 2, 3], [1, 3])]}, "shape [1, 3], expected [-1, 4]", id="3-features"
    ),
    pytest.param({"inputs": [features([], [0, 4])]}, "no rows to score", id="zero-rows"),
    pytest.param({"inputs": [features(NOTES_ROW, [-1, 4])]}, "Expected int >= 0", id="negative-dim"),
    pytest.param(
        {"inputs": [features(NOTES_ROW, [2, 4])]}, "'data' has 4 values, shape [2, 4] needs 8", id="short"
    ),
    pytest.param({"inputs": [features([NOTES_ROW, [1, 2]], [2, 4])]}, "not 2 rows of 4 values", id="ragged"),
    pytest.param(
        {"inputs": [features([[NOTES_ROW]], [1, 4])]}, "got array - at $.inputs[0].data[0][0]", id="3-deep"
    ),
    pytest.param({"inputs": [features(NOTES_ROW, [1, 4], "BOOL")]}, "Invalid enum value 'BOOL'", id="bool"),
    pytest.param(
        {"inputs": [features(["a", "b", "c", "d"], [1, 4], "BYTES")]},
        "takes numbers: BYTES is not",
        id="bytes",
    ),
    pytest.param(
        {"inputs": [features([1, 2, "3", 4], [1, 4])]}, "got str - at $.inputs[0].data[2]", id="string"
    ),
    pytest.param({"inputs": [features([1, 2, True, 4], [1, 4])]}, "got bool", id="boolean"),
    pytest.param({"inputs": [features([1, 2, None, 4], [1, 4])]}, "got null", id="null"),
    pytest.param(
        {"inputs": [features([5.1, 3, 1, 0], [1, 4], "INT32")]}, "Expected int, got float", id="float-int"
    ),
    pytest.param(
        {"inputs": [features([5, 3, 1, 300], [1, 4], "INT8")]}, "within [-128, 127]", id="int8-range"
    ),
    pytest.param(
        {"inputs": [features([5, 3, -1, 0], [1, 4], "UINT8")]}, "within [0, 255]", id="uint-negative"
    ),
    pytest.param(
        {"inputs": [features([5, 3, 2**64, 0], [1, 4], "UINT64")]},
        "within [0, 18446744073709551615]",
        id="u64",
    ),
    pytest.param({"inputs": [features([5, 3, 1, 7e4], [1, 4], "FP16")]}, "within ±65504", id="fp16-range"),
    pytest.param({"inputs": [features([5, 3, 1, 1e39], [1, 4])]}, "within ±3.40282e+38", id="fp32-range"),
    pytest.param(
        {"inputs": [features([5, 3, 1, 1e300], [1, 4], "FP64")]}, "within ±3.40282e+38", id="fp64-range"
    ),
    pytest.param(
        b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 1e999]}]}',
        "out of range",
        id="overflow",
    ),
    pytest.param(
        {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32"}]}, "has no 'data'", id="no-data"
    ),
    pytest.param(
        {"inputs": [features(NOTES_ROW, [1, 4])], "outputs": [{"name": "proba"}]},
        "Invalid enum value 'proba' - at $.outputs[0].name",
        id="unknown-output",
    ),
    pytest.param(
        {"inputs": [features([NOTES_ROW] * 1001, [1001, 4])]},
        "1001 rows is more than MAX_BATCH_SIZE=1000",
        id="over-batch-limit",
    ),
    pytest.param({"id": 42, "inputs": [features(NOTES_ROW, [1, 4])]}, "got int - at $.id", id="int-id"),
]


@pytest.mark.parametrize(("body", "message"), BAD_REQUESTS)
def test_bad_requests_get_400_with_the_spec_error_object(
    server: RunningServer, body: dict[str, Any] | bytes, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = server.client.post(INFER, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    assert list(error) == ["error"]
    assert message in error["error"]


def binary_request(
    rows: np.ndarray, datatype: str, outputs: list[dict[str, Any]] | None
) -> tuple[bytes, int]:
    raw = rows.astype(rows.dtype.newbyteorder("<")).tobytes()
    tensor = {
        "name": "features",
        "shape": list(rows.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor], **({"outputs": outputs} if outputs else {})}).encode()
    return header + raw, len(header)


def split_binary_answer(response: httpx.Response) -> tuple[dict[str, Any], dict[str, bytes]]:
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    blobs, offset = {}, length
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        blobs[output["name"]] = response.content[offset : offset + size]
        offset += size
    assert offset == len(response.content)
    return header, blobs


def test_binary_input_and_binary_outputs_follow_the_extension(server: RunningServer) -> None:
    rows = np.array(ROWS, dtype=np.float32)
    outputs = [
        {"name": name, "parameters": {"binary_data": True}} for name in ("predict", "predict_proba", "label")
    ]
    body, header_length = binary_request(rows, "FP32", outputs)
    response = server.client.post(
        INFER, content=body, headers={"inference-header-content-length": str(header_length)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header, blobs = split_binary_answer(response)
    assert "data" not in header["outputs"][0]
    assert np.frombuffer(blobs["predict"], dtype="<i8").tolist() == CLASSES
    assert np.frombuffer(blobs["predict_proba"], dtype="<f4").reshape(3, 3).argmax(axis=1).tolist() == CLASSES
    labels, cursor = [], blobs["label"]
    while cursor:
        (size,) = struct.unpack("<I", cursor[:4])
        labels.append(cursor[4 : 4 + size].decode())
        cursor = cursor[4 + size :]
    assert labels == LABELS


def test_binary_input_with_json_outputs(server: RunningServer) -> None:
    body, header_length = binary_request(
        np.array(INTEGER_ROWS, dtype=np.uint16), "UINT16", [{"name": "label"}]
    )
    response = server.client.post(
        INFER, content=body, headers={"inference-header-content-length": str(header_length)}
    )
    assert response.headers["content-type"] == "application/json"
    assert outputs_by_name(response)["label"]["data"] == LABELS


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda body, n: (body[:-1], str(n)), "binary_data_size 48 is more than the 47 bytes sent"),
        (lambda body, n: (body + b"\0", str(n)), "1 bytes after the JSON header belong to no input"),
        (lambda body, n: (body, "999999"), "is not a length within the body"),
        (lambda body, n: (body, "x"), "is not a length within the body"),
    ],
)
def test_broken_binary_requests_are_400(server: RunningServer, tamper: Any, message: str) -> None:
    body, header_length = binary_request(np.array(ROWS, dtype=np.float32), "FP32", None)
    content, header = tamper(body, header_length)
    response = server.client.post(INFER, content=content, headers={"inference-header-content-length": header})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_binary_values_are_checked_like_json_ones(server: RunningServer) -> None:
    rows = np.array([[5.1, 3.5, np.inf, 0.2]], dtype=np.float32)
    body, header_length = binary_request(rows, "FP32", None)
    response = server.client.post(
        INFER, content=body, headers={"inference-header-content-length": str(header_length)}
    )
    assert response.status_code == 400
    assert "must be finite" in response.json()["error"]


def test_v2_routes_are_counted_by_template_and_logged(server: RunningServer) -> None:
    infer(server, {"inputs": [features(NOTES_ROW, [1, 4])]}, "/v2/models/iris/versions/v1/infer")
    assert server.wait_for_log('"path":"/v2/models/iris/versions/v1/infer"')
    template = "/v2/models/{name}/versions/{version}/infer"
    found = wait_for_metric(server, "mlkube_requests_total", 1, route=template, method="POST", status="200")
    assert metric_value(found, "mlkube_requests_total", route=template, method="POST", status="200") >= 1
    routes = {dict(labels).get("route", "") for _name, labels in found}
    assert not any(route.startswith("/v2/models/iris") for route in routes), routes


def test_health_probes_stay_open_and_everything_else_needs_the_key(keyed_server: RunningServer) -> None:
    client = keyed_server.client
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    for path in ("/v2", "/v2/models/iris", "/v2/models/iris/ready"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"x-api-key": KEY}).status_code == 200, path
    body = {"inputs": [features(NOTES_ROW, [1, 4])]}
    assert client.post(INFER, json=body).status_code == 401
    assert client.post(INFER, json=body, headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_a_server_without_a_model_says_so_on_every_v2_route(tmp_path: Path) -> None:
    with start_server({"MODEL_DIR": str(tmp_path), "WORKERS": "1"}) as running:
        client = running.client
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert "mlkube train" in ready.json()["reason"]
        assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
        assert client.get("/v2/models/iris").status_code == 503
        response = client.post(INFER, json={"inputs": [features(NOTES_ROW, [1, 4])]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"


def test_binary_data_size_as_an_integral_float_is_a_byte_count(server: RunningServer) -> None:
    """JSON Schema's "integer" (what /openapi.json promises) counts 48.0 as an integer; so does the server."""
    body, header_length = binary_request(np.array(ROWS, dtype=np.float32), "FP32", [{"name": "label"}])
    header = json.loads(body[:header_length])
    header["inputs"][0]["parameters"]["binary_data_size"] = float(
        header["inputs"][0]["parameters"]["binary_data_size"]
    )
    new_header = json.dumps(header).encode()
    response = server.client.post(
        INFER,
        content=new_header + body[header_length:],
        headers={"inference-header-content-length": str(len(new_header))},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == LABELS
