"""Issue 13 #4, #14, #15 against a real server: V2 outputs named once, probes that reveal no layout, an
OpenAPI example that reveals no training statistics, and Triton's binary bodies sent as octet-stream."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlkube.model.bundle import Bundle
from tests.support import RunningServer, start_server

INFER = "/v2/models/iris/infer"
BINARY_HEADER = "inference-header-content-length"
HASH_PREFIX = re.compile(r"[0-9a-f]{8,}")


def binary_body(rows: int, outputs: list[dict[str, Any]]) -> tuple[bytes, int]:
    raw = np.tile(np.array([5.1, 3.5, 1.4, 0.2], dtype="<f4"), (rows, 1)).tobytes()
    tensor = {
        "name": "features",
        "shape": [rows, 4],
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor], "outputs": outputs}).encode()
    return header + raw, len(header)


# --- #4: V2 `outputs` multiplied the answer ------------------------------------------------------------


def test_a_thousand_copies_of_one_output_are_refused(server: RunningServer) -> None:
    body, length = binary_body(1000, [{"name": "predict_proba"}] * 1000)
    response = server.client.post(INFER, content=body, headers={BINARY_HEADER: str(length)})
    assert response.status_code == 400
    assert response.json() == {"error": "'outputs' names an output more than once: ask for each at most once"}
    assert len(response.content) < 200


def test_one_duplicate_output_is_refused_and_distinct_ones_are_served(server: RunningServer) -> None:
    twice: list[dict[str, Any]] = [
        {"name": "label"},
        {"name": "predict"},
        {"name": "label", "parameters": {"binary_data": True}},
    ]
    body, length = binary_body(2, twice)
    assert server.client.post(INFER, content=body, headers={BINARY_HEADER: str(length)}).status_code == 400
    body, length = binary_body(2, [{"name": "label"}, {"name": "predict"}])
    response = server.client.post(INFER, content=body, headers={BINARY_HEADER: str(length)})
    assert response.status_code == 200
    assert [output["name"] for output in response.json()["outputs"]] == ["label", "predict"]


# --- #15: binary bodies sent as application/octet-stream -----------------------------------------------


def test_octet_stream_with_the_binary_header_is_inferred(server: RunningServer) -> None:
    body, length = binary_body(3, [{"name": "predict"}])
    headers = {"content-type": "application/octet-stream", BINARY_HEADER: str(length)}
    response = server.client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0, 0, 0]


def test_octet_stream_without_the_binary_header_or_on_another_route_is_415(server: RunningServer) -> None:
    body, length = binary_body(1, [{"name": "predict"}])
    response = server.client.post(INFER, content=body, headers={"content-type": "application/octet-stream"})
    assert response.status_code == 415
    headers = {"content-type": "application/octet-stream", BINARY_HEADER: str(length)}
    assert server.client.post("/predict", content=body, headers=headers).status_code == 415


# --- #14: what the open routes tell without a key ------------------------------------------------------


@pytest.fixture
def tampered_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A MODEL_DIR whose model.onnx no longer matches its sha256."""
    bundle = tmp_path / "private-layout" / "models" / "iris" / "v1"
    shutil.copytree(model_dir / "iris" / "v1", bundle)
    with (bundle / "model.onnx").open("ab") as model:
        model.write(b"\0")
    return bundle.parents[1]


def test_probe_reasons_name_no_folder_and_no_hash(tampered_dir: Path) -> None:
    pin = "ab" * 32
    for overrides in ({}, {"MODEL_SHA256": pin}):
        with start_server({"MODEL_DIR": str(tampered_dir), "WORKERS": "1", **overrides}) as server:
            reasons = [
                server.client.get("/ready").json()["reason"],
                server.client.get("/v2/health/ready").json()["reason"],
                server.client.post("/predict", json={"features": [1, 2, 3, 4]}).json()["error"],
            ]
            for reason in reasons:
                assert "/" not in reason, reason
                assert "private-layout" not in reason, reason
                assert not HASH_PREFIX.search(reason), reason
            assert ("digest mismatch" if overrides else "model.onnx: sha256 mismatch") in reasons[0]
            refused = server.wait_for_log("model bundle refused")
            assert refused
            assert str(tampered_dir) in refused[0]  # the operator's log keeps the whole reason


def example_row(body: dict[str, Any]) -> Any:
    """The row of an example body: /predict's, V1's, V2's first input or MLflow's `dataframe_split`."""
    if "dataframe_split" in body:
        return body["dataframe_split"]["data"][0]
    return body.get("features") or (body.get("instances") or body["inputs"])[0]


def test_openapi_examples_hold_no_training_statistics(server: RunningServer, iris_bundle: Bundle) -> None:
    document = server.client.get("/openapi.json").json()
    means = {round(stat.mean, 2) for stat in iris_bundle.metadata.features}
    rows = []
    for path in document["paths"].values():
        for operation in path.values():
            example = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "example" in example:
                rows.append(example_row(example["example"]))
    assert rows
    for row in rows:
        values = row["data"] if isinstance(row, dict) else row
        assert values == [0.0, 0.0, 0.0, 0.0]
        assert not means.intersection(values)
