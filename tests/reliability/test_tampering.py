"""Tampering with what the server loads, and configurations that would weaken it: each attack, performed.

- a model file replaced while the server runs, then a worker killed so granian respawns it (issue 13 #3);
- a model rewritten together with its hash in metadata.json, against a pinned MODEL_SHA256 (#5);
- a folder that is not `v<N>` beside the versions, and a version folder linked outside MODEL_DIR (#8);
- `API_KEY=","`, a short key and `MODEL_NAME=../x/iris`, which must stop the server (#11, #12).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from mlkube.model.bundle import METADATA_FILE, ONNX_FILE, SKOPS_FILE, sha256_file
from mlkube.model.train import TrainParams, load_iris_dataset, train_bundle
from tests.reliability.procs import children, wait_for_children
from tests.reliability.report import record
from tests.support import NOTES_ROW, RunningServer, spawn_server, start_server


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A valid ONNX model that is not the one shipped: what an attacker would plant."""
    root = tmp_path_factory.mktemp("other-models")
    bundle = train_bundle(
        load_iris_dataset(), TrainParams(n_estimators=2, max_depth=1, seed=3), root, version="v1"
    )
    return (bundle.path / ONNX_FILE).read_bytes()


@pytest.fixture
def served_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A private MODEL_DIR holding a copy of the notes' bundle as iris/v1."""
    shutil.copytree(model_dir / "iris" / "v1", tmp_path / "models" / "iris" / "v1")
    return tmp_path / "models"


def rewrite_model_with_its_hash(bundle: Path, model: bytes) -> None:
    (bundle / ONNX_FILE).write_bytes(model)
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    metadata["files"][ONNX_FILE] = sha256_file(bundle / ONNX_FILE)
    (bundle / METADATA_FILE).write_text(json.dumps(metadata))


def readiness_after_respawn(server: RunningServer, timeout: float = 20) -> httpx.Response:
    """SIGKILL the only worker, wait for granian's replacement, and return the replacement's /ready."""
    pid = server.process.pid
    victim = children(pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for_children(pid, 1, timeout, frozenset({victim}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"{server.url}/ready", headers={"connection": "close"}, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_respawned_worker_refuses_a_model_file_replaced_after_start(
    served_dir: Path, other_model: bytes
) -> None:
    bundle = served_dir / "iris" / "v1"
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1"}) as server:
        assert server.client.get("/ready").status_code == 200
        (bundle / ONNX_FILE).write_bytes(other_model)
        ready = readiness_after_respawn(server)
        predict = httpx.post(f"{server.url}/predict", json={"features": NOTES_ROW}, timeout=5)

    record("tampering[model_replaced_then_worker_killed]", ready_status=ready.status_code)
    assert ready.status_code == 503
    assert "model.onnx: sha256 mismatch" in ready.json()["reason"]
    assert predict.status_code == 503


def test_a_respawned_worker_refuses_a_model_rewritten_with_its_hash(
    served_dir: Path, other_model: bytes
) -> None:
    """Rewriting metadata.json on disk changes nothing: workers check against the verified copy in memory."""
    bundle = served_dir / "iris" / "v1"
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1"}) as server:
        assert server.client.get("/ready").status_code == 200
        rewrite_model_with_its_hash(bundle, other_model)
        ready = readiness_after_respawn(server)

    assert ready.status_code == 503
    assert "model.onnx: sha256 mismatch" in ready.json()["reason"]


def test_a_pinned_digest_refuses_a_bundle_rewritten_before_start(
    served_dir: Path, other_model: bytes
) -> None:
    bundle = served_dir / "iris" / "v1"
    pinned = sha256_file(bundle / METADATA_FILE)
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1", "MODEL_SHA256": pinned}) as server:
        assert server.client.get("/ready").status_code == 200
    rewrite_model_with_its_hash(bundle, other_model)
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1", "MODEL_SHA256": pinned}) as server:
        ready = server.client.get("/ready")
        errors = [line for line in server.log_lines() if '"level":"ERROR"' in line]

    record("tampering[model_and_hash_rewritten_digest_pinned]", ready_status=ready.status_code)
    assert ready.status_code == 503
    assert "bundle digest mismatch (MODEL_SHA256 pins" in ready.json()["reason"]
    assert len(errors) == 1, errors


def test_the_sklearn_runtime_never_loads_a_skops_file_metadata_json_does_not_list(served_dir: Path) -> None:
    bundle = served_dir / "iris" / "v1"
    (bundle / SKOPS_FILE).write_bytes(b"PK\x05\x06" + bytes(18))  # planted, and struck from the hashes
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    del metadata["files"][SKOPS_FILE]
    (bundle / METADATA_FILE).write_text(json.dumps(metadata))
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1", "MODEL_RUNTIME": "sklearn"}) as server:
        ready = server.client.get("/ready")

    assert ready.status_code == 503
    assert "does not list model.skops, so it cannot be verified" in ready.json()["reason"]


def test_only_numbered_versions_are_served_and_the_log_says_which(served_dir: Path) -> None:
    shutil.copytree(served_dir / "iris" / "v1", served_dir / "iris" / "old-backup")
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1"}) as server:
        assert server.client.get("/ready").status_code == 200
        serving = [json.loads(line) for line in server.wait_for_log('"msg":"serving"')]

    assert serving, "no start-up line"
    assert serving[0]["bundle"] == str(served_dir / "iris" / "v1")
    assert serving[0]["version"] == "v1"


def test_a_version_folder_linked_outside_model_dir_is_refused(served_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "v7"
    shutil.copytree(served_dir / "iris" / "v1", outside)
    (served_dir / "iris" / "v2").symlink_to(outside, target_is_directory=True)
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1"}) as server:
        ready = server.client.get("/ready")

    assert ready.status_code == 503
    assert "is a link that leads outside" in ready.json()["reason"]


def test_the_start_up_log_says_whether_auth_is_on_and_how_many_keys(served_dir: Path) -> None:
    keys = "first-key-0123456789,second-key-0123456789"
    with start_server({"MODEL_DIR": str(served_dir), "WORKERS": "1", "API_KEY": keys}) as server:
        serving = [json.loads(line) for line in server.wait_for_log('"msg":"serving"')]
        log = "\n".join(server.log_lines())

    assert serving
    assert (serving[0]["auth"], serving[0]["api_keys"]) == ("on", 2)
    assert "first-key" not in log
    assert "second-key" not in log


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("API_KEY", ",", "invalid API_KEY=<hidden>: it is set but holds no key"),
        ("API_KEY", "change-me", "invalid API_KEY=<hidden>: key 1 of 1 has 9 characters, fewer than 16"),
        ("MODEL_NAME", "../x/iris", "invalid MODEL_NAME='../x/iris': expected a folder name"),
        ("MODEL_SHA256", "1234", "invalid MODEL_SHA256='1234': expected 64 hexadecimal digits"),
    ],
)
def test_a_weakening_configuration_stops_the_server(
    served_dir: Path, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    log_path = tmp_path / "server.log"
    process, _ = spawn_server({"MODEL_DIR": str(served_dir), variable: value}, log_path)
    assert process.wait(30) == 1
    output = log_path.read_text()
    assert message in output
    assert "Traceback" not in output
    assert "change-me" not in output
