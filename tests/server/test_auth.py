"""API keys: off by default; when set, prediction routes need one; probes and metrics stay open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import KEY as NEW_KEY
from tests.support import NOTES_ROW, OLD_KEY, RunningServer, start_server


def test_without_a_configured_key_predict_is_open(server: RunningServer) -> None:
    assert server.client.post("/predict", json={"features": NOTES_ROW}).status_code == 200


def test_missing_key_is_401_json(keyed_server: RunningServer) -> None:
    response = keyed_server.client.post("/predict", json={"features": NOTES_ROW})
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_key_is_401_and_not_echoed(keyed_server: RunningServer) -> None:
    response = keyed_server.client.post(
        "/predict", json={"features": NOTES_ROW}, headers={"x-api-key": "guess"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "invalid API key"}


@pytest.mark.parametrize("key", [OLD_KEY, NEW_KEY])
def test_either_rotation_key_is_accepted_in_x_api_key(keyed_server: RunningServer, key: str) -> None:
    response = keyed_server.client.post("/predict", json={"features": NOTES_ROW}, headers={"x-api-key": key})
    assert response.status_code == 200


def test_bearer_form_is_accepted(keyed_server: RunningServer) -> None:
    headers = {"authorization": f"Bearer {NEW_KEY}"}
    assert (
        keyed_server.client.post("/predict", json={"features": NOTES_ROW}, headers=headers).status_code == 200
    )


def test_auth_is_checked_before_the_body_is_read(keyed_server: RunningServer) -> None:
    response = keyed_server.client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probe_and_metrics_routes_stay_open(keyed_server: RunningServer, path: str) -> None:
    assert keyed_server.client.get(path).status_code == 200


def test_keys_never_reach_the_log(keyed_server: RunningServer) -> None:
    sent = {
        "old-key-request": {"x-api-key": OLD_KEY},
        "new-key-request": {"authorization": f"Bearer {NEW_KEY}"},
    }
    for request_id, key in sent.items():
        headers = {**key, "x-request-id": request_id}
        answer = keyed_server.client.post("/predict", json={"features": NOTES_ROW}, headers=headers)
        assert answer.status_code == 200
    logged = keyed_server.wait_for_log('"request_id":"new-key-request"')
    assert len(logged) == 1, "the access log never showed the second request"
    lines = keyed_server.log_lines()
    access = [json.loads(line) for line in lines if '"request_id"' in line]
    entries = {entry["request_id"]: entry for entry in access if entry["request_id"] in sent}
    logged_as = {request_id: (entry["path"], entry["status"]) for request_id, entry in entries.items()}
    assert logged_as == dict.fromkeys(sent, ("/predict", 200))
    log = "\n".join(lines)
    assert OLD_KEY not in log
    assert NEW_KEY not in log


def test_key_file_is_read_at_start_up(model_dir: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(f"{NEW_KEY}\n")
    with start_server(
        {"MODEL_DIR": str(model_dir), "WORKERS": "1", "API_KEY_FILE": str(key_file)}
    ) as running:
        assert running.client.post("/predict", json={"features": NOTES_ROW}).status_code == 401
        ok = running.client.post("/predict", json={"features": NOTES_ROW}, headers={"x-api-key": NEW_KEY})
        assert ok.status_code == 200
