"""The model page's routes over a real socket: `/`, its assets, `GET /model`, `POST /predict/proba`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from mlkube.model.bundle import Bundle
from tests.support import (
    KEY,
    NOTES_ROW,
    RunningServer,
    metric_samples,
    metric_value,
    start_server,
    wait_for_metric,
)

ASSETS = {
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@pytest.fixture(scope="module")
def renamed_server(model_dir: Path) -> Iterator[RunningServer]:
    overrides = {"MODEL_DIR": str(model_dir), "WORKERS": "1", "CLASS_NAMES": "Setosa,Versicolour,Virginica"}
    with start_server(overrides | {"MODEL_VERSION": "2024.06"}) as running:
        yield running


# --- the page and its assets ----------------------------------------------------------------------


def test_page_is_html_with_security_headers(server: RunningServer) -> None:
    response = server.client.get("/", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/page.js" defer></script>' in response.text


def test_page_tells_the_script_whether_a_key_is_needed(
    server: RunningServer, keyed_server: RunningServer
) -> None:
    marker = '<meta name="mlkube-auth-required" content="{}">'
    assert marker.format("false") in server.client.get("/", headers={"accept": "text/html"}).text
    assert marker.format("true") in keyed_server.client.get("/", headers={"accept": "text/html"}).text


@pytest.mark.parametrize(("name", "content_type"), ASSETS.items())
def test_assets_are_served_with_their_type(server: RunningServer, name: str, content_type: str) -> None:
    response = server.client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == resources.files("mlkube.server").joinpath("static").joinpath(name).read_bytes()


def test_unknown_asset_is_404_json(server: RunningServer) -> None:
    response = server.client.get("/static/secrets.txt")
    assert response.status_code == 404
    assert response.json() == {"error": "no asset 'secrets.txt'"}


def test_the_page_loads_nothing_from_another_origin() -> None:
    """No CDN, no web font: every URL in the page's files is a path on this server."""
    static = resources.files("mlkube.server").joinpath("static")
    for name in ("index.html", *ASSETS):
        text = static.joinpath(name).read_text(encoding="utf-8")
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text)
        external = [url for url in urls if url != "http://www.w3.org/2000/svg"]  # the SVG namespace
        assert external == [], f"{name} refers to {external}"
        assert "@import" not in text
        assert "@font-face" not in text


def test_page_and_assets_stay_open_when_a_key_is_required(keyed_server: RunningServer) -> None:
    assert keyed_server.client.get("/", headers={"accept": "text/html"}).status_code == 200
    assert keyed_server.client.get("/static/page.js").status_code == 200


# --- GET /model -------------------------------------------------------------------------------------


def test_model_card_has_what_the_page_shows(server: RunningServer, iris_bundle: Bundle) -> None:
    response = server.client.get("/model")
    assert response.status_code == 200
    card = response.json()
    metadata = iris_bundle.metadata
    assert (card["name"], card["version"], card["created_at"]) == ("iris", "v1", metadata.created_at)
    assert card["runtime"] == "onnx"
    assert card["class_names"] == ["setosa", "versicolor", "virginica"]
    assert card["features"] == [
        {"name": s.name, "min": s.min, "max": s.max, "mean": s.mean} for s in metadata.features
    ]
    assert card["samples"] == metadata.samples
    assert card["metrics"]["accuracy"] == metadata.metrics["accuracy"]
    assert card["confusion_matrix"] == metadata.metrics["confusion_matrix"]
    assert [row["support"] for row in card["per_class"]] == [10, 10, 10]
    assert card["params"]["n_estimators"] == 10


def test_model_card_uses_the_display_names_and_version(renamed_server: RunningServer) -> None:
    card = renamed_server.client.get("/model").json()
    assert card["class_names"] == ["Setosa", "Versicolour", "Virginica"]
    assert card["version"] == "2024.06"


def test_model_card_needs_the_key_when_one_is_set(keyed_server: RunningServer) -> None:
    assert keyed_server.client.get("/model").status_code == 401
    assert keyed_server.client.get("/model", headers={"x-api-key": KEY}).status_code == 200


# --- POST /predict/proba ------------------------------------------------------------------------------


def test_proba_answers_predict_keys_plus_every_probability(server: RunningServer) -> None:
    response = server.client.post("/predict/proba", json={"features": NOTES_ROW})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["prediction", "class_name", "confidence", "version", "probabilities"]
    plain = server.client.post("/predict", json={"features": NOTES_ROW}).json()
    assert {key: body[key] for key in plain} == plain
    assert body["probabilities"] == [1.0, 0.0, 0.0]


def test_proba_of_a_borderline_row_sums_to_one_and_peaks_at_the_prediction(server: RunningServer) -> None:
    body = server.client.post("/predict/proba", json={"features": [6.0, 2.7, 5.1, 1.6]}).json()
    probabilities = body["probabilities"]
    assert len(probabilities) == 3
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert max(probabilities) == body["confidence"]
    assert probabilities.index(body["confidence"]) == body["prediction"]
    assert sorted(probabilities)[-2] > 0  # a borderline row: a second class has votes too


def test_proba_batch(server: RunningServer) -> None:
    rows = [NOTES_ROW, [6.5, 3.0, 5.2, 2.0]]
    body = server.client.post("/predict/proba", json={"instances": rows}).json()
    assert [p["class_name"] for p in body["predictions"]] == ["setosa", "virginica"]
    assert all(len(p["probabilities"]) == 3 for p in body["predictions"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"features": [5.1, "wide", 1.4, 0.2]}, 422, "Expected float, got str - at $.features[1]"),
        ({"features": [5.1, None, 1.4, 0.2]}, 422, "Expected float, got null - at $.features[1]"),
        ({"features": [5.1, 3.5]}, 422, "features has 2 values, expected 4"),
        ({"features": [1e39, 3.5, 1.4, 0.2]}, 422, "feature values must lie within"),
        ({}, 422, "missing 'features'"),
        ({"features": NOTES_ROW, "instances": [NOTES_ROW]}, 422, "not both"),
    ],
)
def test_proba_refuses_what_predict_refuses_with_the_same_message(
    server: RunningServer, body: dict[str, object], status: int, message: str
) -> None:
    for route in ("/predict/proba", "/predict"):
        response = server.client.post(route, json=body)
        assert response.status_code == status
        assert message in response.json()["error"]


def test_proba_needs_the_key_when_one_is_set(keyed_server: RunningServer) -> None:
    response = keyed_server.client.post("/predict/proba", json={"features": NOTES_ROW})
    assert response.status_code == 401
    keyed = keyed_server.client.post(
        "/predict/proba", json={"features": NOTES_ROW}, headers={"x-api-key": KEY}
    )
    assert keyed.status_code == 200


def test_proba_requests_and_predictions_are_counted(server: RunningServer) -> None:
    requests = {"route": "/predict/proba", "method": "POST", "status": "200"}
    setosa = {"class_name": "setosa"}
    before = metric_samples(server)
    for _ in range(3):
        server.client.post("/predict/proba", json={"features": NOTES_ROW})
    expected = metric_value(before, "mlkube_requests_total", **requests) + 3
    after = wait_for_metric(server, "mlkube_requests_total", expected, **requests)
    for name, labels in (("mlkube_requests_total", requests), ("mlkube_predictions_total", setosa)):
        assert metric_value(after, name, **labels) - metric_value(before, name, **labels) == 3


def test_get_on_proba_is_405(server: RunningServer) -> None:
    response = server.client.get("/predict/proba")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
