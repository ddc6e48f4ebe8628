"""Real-cluster fixtures: run only with MLKUBE_E2E=1 and a cluster that `kubectl cluster-info` reaches.

One command on kind or minikube: `tests/e2e/run.sh` (builds both images into the cluster, then runs
these tests). By hand: both images in the cluster's image store, built with their model versions:
    eval $(minikube docker-env)
    docker build --build-arg MODEL_VERSION=v2 -t ml-model:v2 .
    docker build --build-arg MODEL_VERSION=v3 -t ml-model:v3 .
The overlay's image (ml-model:v2) is deployed first; MLKUBE_E2E_NEW_IMAGE (default ml-model:v3) is rolled
out. Each run works in a namespace of its own, deleted at the end. All traffic goes to 127.0.0.1: through
`kubectl proxy` and the API server's proxy to the Service, which picks a ready endpoint per request.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "kubernetes" / "overlays" / "minikube"
DEPLOYMENT = "deployment/ml-model-deployment"
SERVICE = "ml-model-service"


@dataclass(frozen=True)
class Cluster:
    """kubectl bound to the test's namespace."""

    kubectl: str
    namespace: str

    def run(self, *args: str, timeout: float = 240) -> str:
        result = subprocess.run(
            [self.kubectl, "--namespace", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr or result.stdout}"
        return result.stdout

    def jsonpath(self, resource: str, path: str) -> str:
        return self.run("get", resource, "-o", f"jsonpath={path}").strip()

    def pods(self) -> list[str]:
        return self.jsonpath("pods", "{.items[*].metadata.name}").split()

    def wait_ready_replicas(self, count: int, timeout: float = 180) -> None:
        """Until the Deployment has `count` ready, updated pods and no others."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.jsonpath(
                DEPLOYMENT, "{.status.readyReplicas}/{.status.updatedReplicas}/{.status.replicas}"
            )
            if status == f"{count}/{count}/{count}":
                return
            time.sleep(2)
        raise AssertionError(f"ready/updated/total replicas {status}, wanted {count} within {timeout}s")

    def rollout(self) -> None:
        self.run("rollout", "status", DEPLOYMENT, "--timeout=240s", timeout=260)


@dataclass(frozen=True)
class Service:
    """The Service, reached through `kubectl proxy` on 127.0.0.1."""

    url: str
    api_key: str

    def predict(self, client: httpx.Client) -> httpx.Response:
        return client.post(
            f"{self.url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, headers=self.headers
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def version(self) -> str:
        with httpx.Client(timeout=10) as client:
            response = self.predict(client)
        assert response.status_code == 200, response.text
        version: str = response.json()["version"]
        return version


@dataclass
class Traffic:
    """Steady predictions in a background thread (at most ~30 per second, for at most 5 minutes)."""

    service: Service
    outcomes: Counter[str] = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + 300
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    response = self.service.predict(client)
                    self.outcomes[str(response.status_code)] += 1
                    if response.status_code == 200:
                        self.versions.append(response.json()["version"])
                except httpx.HTTPError as error:
                    self.outcomes[type(error).__name__] += 1
                time.sleep(0.03)


@pytest.fixture(scope="session")
def kubectl() -> str:
    if os.environ.get("MLKUBE_E2E") != "1":
        pytest.skip("real-cluster tests: set MLKUBE_E2E=1 (and KUBECONFIG) to run them")
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("real-cluster tests: kubectl is not installed")
    probe = subprocess.run(
        [found, "cluster-info", "--request-timeout=10s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        last_line = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"real-cluster tests: no cluster reachable (kubectl cluster-info: {last_line[:200]})")
    return found


@pytest.fixture(scope="module")
def cluster(kubectl: str) -> Iterator[Cluster]:
    namespace = f"mlkube-e2e-{secrets.token_hex(3)}"
    subprocess.run([kubectl, "create", "namespace", namespace], check=True, capture_output=True, timeout=60)
    try:
        yield Cluster(kubectl, namespace)
    finally:
        subprocess.run(
            [kubectl, "delete", "namespace", namespace, "--wait=false"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def service(cluster: Cluster) -> Iterator[Service]:
    """The minikube overlay deployed with a fresh API key, ready at the HPA's 2 pods."""
    api_key = secrets.token_urlsafe(24)
    cluster.run("create", "secret", "generic", "ml-model-secret", f"--from-literal=API_KEY={api_key}")
    cluster.run("apply", "-k", str(OVERLAY))
    cluster.rollout()
    cluster.wait_ready_replicas(2)
    proxy = subprocess.Popen(
        [cluster.kubectl, "proxy", "--port=0", "--address=127.0.0.1"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proxy.stdout is not None
        match = re.search(r"127\.0\.0\.1:(\d+)", proxy.stdout.readline())
        assert match, "kubectl proxy printed no address"
        path = f"/api/v1/namespaces/{cluster.namespace}/services/{SERVICE}:http/proxy"
        yield Service(f"http://127.0.0.1:{match.group(1)}{path}", api_key)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
