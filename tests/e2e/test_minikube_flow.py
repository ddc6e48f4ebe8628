"""The notes' Quick Reference against a real cluster: deploy, predict, self-heal, roll out, history, undo.

Tests run in file order and share one deployment (module fixtures). Skipped without MLKUBE_E2E=1 and a
reachable cluster; see conftest.py for the images they expect.
"""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

from tests.e2e.conftest import DEPLOYMENT, Cluster, Service, Traffic

pytestmark = pytest.mark.e2e

NEW_IMAGE = os.environ.get("MLKUBE_E2E_NEW_IMAGE", "ml-model:v3")
CHANGE_CAUSE = "kubernetes.io/change-cause"


def annotate_cause(cluster: Cluster, cause: str) -> None:
    cluster.run("annotate", DEPLOYMENT, f"{CHANGE_CAUSE}={cause}", "--overwrite")


def container_image(cluster: Cluster) -> str:
    return cluster.jsonpath(DEPLOYMENT, "{.spec.template.spec.containers[0].image}")


@pytest.fixture(scope="module")
def first_version(cluster: Cluster, service: Service) -> str:
    version = service.version()
    annotate_cause(cluster, f"apply overlays/minikube: image {container_image(cluster)}, model {version}")
    return version


def test_deployment_is_ready_with_the_hpas_minimum(cluster: Cluster, service: Service) -> None:
    assert cluster.jsonpath(DEPLOYMENT, "{.status.readyReplicas}") == "2"
    assert cluster.jsonpath("hpa/ml-model-hpa", "{.spec.minReplicas}-{.spec.maxReplicas}") == "2-5"


def test_predicts_through_the_service(service: Service, first_version: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = service.predict(client)
        unauthorised = client.post(f"{service.url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    assert response.status_code == 200, response.text
    assert response.json()["class_name"] == "setosa"
    assert response.json()["version"] == first_version
    assert unauthorised.status_code == 401


def test_deleted_pod_is_replaced(cluster: Cluster, service: Service) -> None:
    before = cluster.pods()
    cluster.run("delete", "pod", before[0], "--wait=false")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = cluster.pods()
        if before[0] not in pods and len(pods) == len(before):
            break
        time.sleep(2)
    cluster.wait_ready_replicas(len(before))
    assert before[0] not in cluster.pods()


def test_rolling_update_under_traffic_fails_no_request(
    cluster: Cluster, service: Service, first_version: str
) -> None:
    traffic = Traffic(service)
    sender = threading.Thread(target=traffic.run, daemon=True)
    sender.start()
    time.sleep(3)
    cluster.run("set", "image", DEPLOYMENT, f"ml-model={NEW_IMAGE}")
    annotate_cause(cluster, f"set image {NEW_IMAGE}")
    cluster.rollout()
    cluster.wait_ready_replicas(2)
    time.sleep(5)
    traffic.stop.set()
    sender.join(timeout=30)
    new_version = service.version()
    annotate_cause(cluster, f"set image {NEW_IMAGE}, model {new_version}")
    print(f"rolling update under traffic: {dict(traffic.outcomes)}")
    assert set(traffic.outcomes) == {"200"}, f"failed requests during the rollout: {dict(traffic.outcomes)}"
    assert traffic.outcomes["200"] > 100
    assert new_version != first_version, f"{NEW_IMAGE} must carry another model version than {first_version}"
    assert traffic.versions[0] == first_version
    assert traffic.versions[-1] == new_version


def test_rollout_history_shows_the_model_versions(cluster: Cluster, first_version: str) -> None:
    history = cluster.run("rollout", "history", DEPLOYMENT)
    assert f"image ml-model:v2, model {first_version}" in history, history
    assert f"set image {NEW_IMAGE}, model " in history, history


def test_rollout_undo_brings_the_old_version_back(
    cluster: Cluster, service: Service, first_version: str
) -> None:
    cluster.run("rollout", "undo", DEPLOYMENT)
    cluster.rollout()
    cluster.wait_ready_replicas(2)
    assert container_image(cluster) != NEW_IMAGE
    assert service.version() == first_version
