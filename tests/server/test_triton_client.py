"""An off-the-shelf Open Inference Protocol client (tritonclient's HTTP client) against a real mlkube.

Users who run Triton or KServe V2 clients point them at mlkube unchanged: metadata, readiness and
inference with every numeric datatype, JSON or binary tensors, chosen outputs and batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlkube import __version__
from tests.support import NOTES_ROW, RunningServer

ROWS = [NOTES_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
INTEGER_ROWS = [[5, 4, 1, 0], [7, 3, 6, 2], [6, 3, 4, 1]]
CLASSES = [0, 2, 1]
LABELS = ["setosa", "virginica", "versicolor"]
DATATYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield connection
    connection.close()


def features(rows: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("features", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


def labels(result: triton.InferResult) -> list[str]:
    values = result.as_numpy("label")
    assert values is not None
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values.tolist()]


def test_server_is_live_ready_and_describes_itself(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata() == {
        "name": "mlkube",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }


@pytest.mark.parametrize("version", ["", "v1"])
def test_model_metadata_and_readiness(client: triton.InferenceServerClient, version: str) -> None:
    assert client.is_model_ready("iris", version)
    metadata = client.get_model_metadata("iris", version)
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert [output["name"] for output in metadata["outputs"]] == ["predict", "predict_proba", "label"]


def test_unknown_model_is_not_ready_and_its_metadata_fails(client: triton.InferenceServerClient) -> None:
    assert not client.is_model_ready("mnist")
    with pytest.raises(InferenceServerException, match="unknown model 'mnist'"):
        client.get_model_metadata("mnist")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_infer_with_each_datatype(client: triton.InferenceServerClient, datatype: str, binary: bool) -> None:
    rows = np.array(INTEGER_ROWS if "INT" in datatype else ROWS, dtype=DATATYPES[datatype])
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("predict", "predict_proba", "label")
    ]
    result = client.infer("iris", [features(rows, datatype, binary)], outputs=outputs, request_id="t-1")
    predict = result.as_numpy("predict")
    proba = result.as_numpy("predict_proba")
    assert predict is not None
    assert proba is not None
    assert predict.dtype == np.int64
    assert predict.tolist() == CLASSES
    assert proba.dtype == np.float32
    assert proba.shape == (3, 3)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert labels(result) == LABELS
    response = result.get_response()
    assert (response["id"], response["model_name"], response["model_version"]) == ("t-1", "iris", "v1")


def test_default_request_gets_every_output(client: triton.InferenceServerClient) -> None:
    # tritonclient's defaults: binary input, and binary_data_output on the request when no output is named
    result = client.infer("iris", [features(np.array(ROWS, dtype=np.float32), "FP32", True)])
    assert {output["name"] for output in result.get_response()["outputs"]} == {
        "predict",
        "predict_proba",
        "label",
    }
    predict = result.as_numpy("predict")
    assert predict is not None
    assert predict.tolist() == CLASSES


def test_only_the_requested_outputs_come_back(client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer(
        "iris", [features(np.array(ROWS, dtype=np.float32), "FP32", False)], outputs=outputs
    )
    assert [output["name"] for output in result.get_response()["outputs"]] == ["label"]
    assert result.as_numpy("predict") is None
    assert labels(result) == LABELS


def test_a_batch_of_max_batch_size_rows(client: triton.InferenceServerClient) -> None:
    rows = np.tile(np.array(ROWS, dtype=np.float32), (334, 1))[:1000]
    result = client.infer("iris", [features(rows, "FP32", True)], model_version="v1")
    predict = result.as_numpy("predict")
    assert predict is not None
    assert predict.shape == (1000,)
    assert predict[:3].tolist() == CLASSES


def test_server_errors_reach_the_client_with_their_message(client: triton.InferenceServerClient) -> None:
    rows = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\], expected \[-1, 4\]"):
        client.infer("iris", [features(rows, "FP32", False)])
    with pytest.raises(InferenceServerException, match="no version 'v9'"):
        client.infer("iris", [features(np.array(ROWS, dtype=np.float32), "FP32", False)], model_version="v9")
