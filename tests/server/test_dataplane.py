"""The data plane in process (no socket): every prediction route goes through it, micro-batched and counted;
readiness, the model check, the card and the errors it raises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from mlkube.errors import ModelNotReady, NotFound
from mlkube.model.bundle import Bundle
from mlkube.server.dataplane import DRAINING
from tests.inprocess import InProcessClient, in_process_app
from tests.support import NOTES_ROW

VIRGINICA = [6.7, 3.0, 5.2, 2.3]
MODEL = {"model_name": "iris", "model_version": "v1"}


def v2_body(rows: list[list[float]]) -> dict[str, object]:
    data = [value for row in rows for value in row]
    return {"inputs": [{"name": "features", "shape": [len(rows), 4], "datatype": "FP32", "data": data}]}


# one body of two rows per prediction route
PREDICTION_ROUTES = {
    "/predict": {"instances": [NOTES_ROW, VIRGINICA]},
    "/predict/proba": {"instances": [NOTES_ROW, VIRGINICA]},
    "/v1/models/iris:predict": {"instances": [NOTES_ROW, VIRGINICA]},
    "/v2/models/iris/infer": v2_body([NOTES_ROW, VIRGINICA]),
}


@pytest.fixture
def client(iris_bundle: Bundle, tmp_path: Path) -> Iterator[InProcessClient]:
    running = InProcessClient(in_process_app(iris_bundle, tmp_path))
    yield running
    running.close()


def counted(client: InProcessClient, name: str, **labels: str) -> float:
    """A metric's value in this process, after the worker's local counts are pushed."""
    client.app.metrics.flush()
    return REGISTRY.get_sample_value(name, {**labels, **MODEL}) or 0.0


@pytest.mark.parametrize("path", PREDICTION_ROUTES)
def test_requests_that_arrive_together_share_one_model_call_on_every_route(
    client: InProcessClient, path: str
) -> None:
    body = json.dumps(PREDICTION_ROUTES[path]).encode()
    calls = counted(client, "mlkube_model_call_rows_count")
    rows = counted(client, "mlkube_model_call_rows_sum")

    async def three_together() -> list[int]:
        answers = await asyncio.gather(*(client.send("POST", path, body) for _ in range(3)))
        return [answer.status for answer in answers]

    assert client.loop.run_until_complete(three_together()) == [200, 200, 200]
    assert counted(client, "mlkube_model_call_rows_count") == calls + 1
    assert counted(client, "mlkube_model_call_rows_sum") == rows + 6


@pytest.mark.parametrize("path", PREDICTION_ROUTES)
def test_every_route_counts_its_predictions(client: InProcessClient, path: str) -> None:
    setosa = counted(client, "mlkube_predictions_total", class_name="setosa")
    virginica = counted(client, "mlkube_predictions_total", class_name="virginica")
    confidence = counted(client, "mlkube_prediction_confidence_count")
    assert client.post_json(path, PREDICTION_ROUTES[path]).status == 200
    assert counted(client, "mlkube_predictions_total", class_name="setosa") == setosa + 1
    assert counted(client, "mlkube_predictions_total", class_name="virginica") == virginica + 1
    assert counted(client, "mlkube_prediction_confidence_count") == confidence + 2


def test_probabilities_extend_the_simple_answers_key_for_key(client: InProcessClient) -> None:
    rows = [NOTES_ROW, VIRGINICA, [6.0, 2.7, 5.1, 1.6]]
    simple = client.post_json("/predict", {"instances": rows}).json()["predictions"]
    proba = client.post_json("/predict/proba", {"instances": rows}).json()["predictions"]
    assert [{k: v for k, v in answer.items() if k != "probabilities"} for answer in proba] == simple
    for answer in proba:
        assert len(answer["probabilities"]) == 3
        assert max(answer["probabilities"]) == answer["confidence"]


def test_ready_until_the_drain_marker_appears(client: InProcessClient, tmp_path: Path) -> None:
    plane = client.app.plane
    assert plane.why_not_ready() is None
    assert client.get("/ready").status == 200
    (tmp_path / "draining").touch()
    assert plane.why_not_ready() == DRAINING
    assert client.get("/ready").json() == {
        "status": "not ready",
        "model": "iris",
        "version": "v1",
        "runtime": "onnx",
        "reason": DRAINING,
    }
    assert client.get("/v2/health/ready").json() == {"ready": False, "reason": DRAINING}
    assert plane.model_ready, "draining is the server's state; the model itself stays ready"
    assert client.post_json("/predict", {"features": NOTES_ROW}).status == 200, "traffic is still served"


def test_without_a_model_the_plane_refuses_with_503_on_every_prediction_route(tmp_path: Path) -> None:
    client = InProcessClient(in_process_app(None, tmp_path))
    try:
        plane = client.app.plane
        assert plane.why_not_ready() == "model not loaded yet"
        with pytest.raises(ModelNotReady):
            plane.submit([NOTES_ROW])
        with pytest.raises(ModelNotReady):
            plane.card()
        for path, body in PREDICTION_ROUTES.items():
            answer = client.post_json(path.replace("iris", client.app.plane.name), body)
            assert answer.status == 503, path
            assert answer.headers["retry-after"] == "1"
            assert "model not ready" in answer.json()["error"]
    finally:
        client.close()


def test_the_model_check_names_what_is_served(client: InProcessClient) -> None:
    plane = client.app.plane
    plane.check_model({"name": "iris"})
    plane.check_model({"name": "iris", "version": "v1"})
    with pytest.raises(NotFound, match="unknown model 'mnist'"):
        plane.check_model({"name": "mnist"})
    with pytest.raises(NotFound, match="no version 'v9'"):
        plane.check_model({"name": "iris", "version": "v9"})


def test_the_card_is_the_bundles_with_the_served_version(client: InProcessClient) -> None:
    card = client.app.plane.card()
    assert (card.name, card.version, card.runtime) == ("iris", "v1", "onnx")
    assert card.class_names == ["setosa", "versicolor", "virginica"]
    assert len(card.features) == 4
    assert client.get("/model").json()["class_names"] == card.class_names


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html; charset=utf-8"),
        ("text/html", "text/html; charset=utf-8"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (None, "application/json"),
    ],
)
def test_root_is_the_page_for_browsers_and_kserve_v1_liveness_otherwise(
    client: InProcessClient, accept: str | None, content_type: str
) -> None:
    answer = client.get("/", headers={"accept": accept} if accept else None)
    assert answer.status == 200
    assert answer.headers["content-type"] == content_type
    if content_type == "application/json":
        assert answer.json() == {"status": "alive"}
    else:
        assert b"<html" in answer.body
