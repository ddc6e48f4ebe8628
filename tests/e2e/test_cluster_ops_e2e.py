"""What an SRE checks before trusting the manifests, against a real cluster: Pod Security admission of the
production overlay, self-healing while load runs, a node drain that honours the PodDisruptionBudget, and
the HPA scaling up under the in-cluster load Job and back down.

Skipped without MLKUBE_E2E=1 and a reachable cluster (conftest.py's `kubectl` fixture says which); run them
all on kind or minikube with `tests/e2e/run.sh`. The module deploys the minikube overlay in a namespace of
its own (conftest.py's `cluster` and `service`), deleted at the end.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import DEPLOYMENT, REPO, Cluster, Service, Traffic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

PRODUCTION = REPO / "deploy" / "kubernetes" / "overlays" / "production"


def traffic_during(service: Service) -> tuple[Traffic, threading.Thread]:
    traffic = Traffic(service)
    sender = threading.Thread(target=traffic.run, daemon=True)
    sender.start()
    time.sleep(3)
    return traffic, sender


def stop(traffic: Traffic, sender: threading.Thread) -> dict[str, int]:
    traffic.stop.set()
    sender.join(timeout=30)
    return dict(traffic.outcomes)


def ready_replicas(cluster: Cluster) -> int:
    return int(cluster.jsonpath(DEPLOYMENT, "{.status.readyReplicas}") or 0)


def test_production_overlay_passes_pod_security_admission(kubectl: str, tmp_path: Path) -> None:
    """`kubectl apply --dry-run=server`: the API server's admission (Pod Security "restricted" enforced,
    schemas, defaulting) judges every object, in a throw-away namespace labelled like the overlay's."""
    namespace = f"mlkube-prod-e2e-{int(time.time())}"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(PRODUCTION)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    [ns] = [doc for doc in docs if doc["kind"] == "Namespace"]
    ns["metadata"]["name"] = namespace
    for doc in docs:
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
    subprocess.run(
        [kubectl, "apply", "-f", "-"],
        input=yaml.safe_dump(ns),
        text=True,
        check=True,
        timeout=60,
        capture_output=True,
    )
    try:
        others = [doc for doc in docs if doc["kind"] != "Namespace"]
        path = tmp_path / "production.yaml"
        path.write_text(yaml.safe_dump_all(others), encoding="utf-8")
        result = subprocess.run(
            [kubectl, "apply", "--dry-run=server", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(
            [kubectl, "delete", "namespace", namespace, "--wait=false"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert "violate PodSecurity" not in result.stderr, result.stderr
    assert "deployment.apps/ml-model-deployment created (server dry run)" in result.stdout


def test_self_heals_under_load_without_a_failed_request(cluster: Cluster, service: Service) -> None:
    traffic, sender = traffic_during(service)
    try:
        victim = cluster.pods()[0]
        cluster.run("delete", "pod", victim, "--wait=false")
        deadline = time.monotonic() + 180
        while victim in cluster.pods() and time.monotonic() < deadline:
            time.sleep(2)
        cluster.wait_ready_replicas(2)
        time.sleep(5)
    finally:
        outcomes = stop(traffic, sender)
    print(f"self-heal under load: {outcomes}")
    assert outcomes.get("200", 0) > 100
    assert set(outcomes) == {"200"}, f"failed requests while a pod was replaced: {outcomes}"


def test_a_node_drain_honours_the_disruption_budget(cluster: Cluster, service: Service) -> None:
    """One node (minikube, kind): the first eviction goes through, the second is refused by the PDB while
    the replacement cannot schedule, so a pod keeps serving. Several nodes: the drain completes, one pod
    at a time. Either way no request fails and a pod is always ready."""
    node = cluster.jsonpath(f"pod/{cluster.pods()[0]}", "{.spec.nodeName}")
    lowest: list[int] = []
    watching = threading.Event()

    def watch_ready() -> None:
        while not watching.is_set():
            lowest.append(ready_replicas(cluster))
            time.sleep(1)

    watcher = threading.Thread(target=watch_ready, daemon=True)
    traffic, sender = traffic_during(service)
    watcher.start()
    try:
        drained = subprocess.run(
            [
                cluster.kubectl,
                "drain",
                node,
                "--pod-selector=app=ml-model",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=90s",
            ],
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
    finally:
        subprocess.run([cluster.kubectl, "uncordon", node], capture_output=True, timeout=60, check=False)
        watching.set()
        watcher.join(timeout=10)
        outcomes = stop(traffic, sender)
    cluster.wait_ready_replicas(2)
    print(f"drain of {node}: exit {drained.returncode}; ready replicas min {min(lowest)}; {outcomes}")
    output = drained.stdout + drained.stderr
    assert drained.returncode == 0 or "disruption budget" in output, output
    assert min(lowest) >= 1, "the PDB keeps a pod ready through the drain"
    assert set(outcomes) == {"200"}, f"failed requests during the drain: {outcomes}"


@pytest.fixture
def metrics_server(cluster: Cluster) -> None:
    probe = subprocess.run(
        [cluster.kubectl, "top", "pods", "--namespace", cluster.namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            "the HPA needs CPU metrics: `minikube addons enable metrics-server` (kind: install "
            f"metrics-server with --kubelet-insecure-tls); kubectl top: {probe.stderr.strip()[:200]}"
        )


@pytest.fixture
def in_cluster_load(
    cluster: Cluster, service: Service, metrics_server: None
) -> Iterator[subprocess.Popen[str]]:
    """`mlkube load --in-cluster` for 4 minutes, at a rate 2 pods at their 60% CPU target cannot absorb."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlkube",
            "load",
            "--in-cluster",
            "--rps",
            "1500",
            "--duration",
            "4m",
            "--concurrency",
            "128",
            "--max-errors",
            "0.05",
            "--namespace",
            cluster.namespace,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        output, _ = process.communicate(timeout=60)
        print(output)
        cluster.run("delete", "job", "ml-model-load", "--ignore-not-found")


def test_the_hpa_scales_up_under_in_cluster_load_and_back_down(
    cluster: Cluster, in_cluster_load: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 240
    most = 2
    while time.monotonic() < deadline and in_cluster_load.poll() is None:
        most = max(most, int(cluster.jsonpath("hpa/ml-model-hpa", "{.status.desiredReplicas}") or 0))
        if most > 2:
            break
        time.sleep(5)
    assert most > 2, "the HPA did not ask for a third pod under the load"
    assert in_cluster_load.wait(timeout=400) == 0, "the load Job failed (its output is printed above)"
    # scale-down: 300 s stabilisation, then one pod a minute (hpa.yaml's behavior)
    deadline = time.monotonic() + 300 + 60 * (most - 2) + 180
    while time.monotonic() < deadline:
        if cluster.jsonpath("hpa/ml-model-hpa", "{.status.desiredReplicas}") == "2":
            break
        time.sleep(10)
    assert cluster.jsonpath("hpa/ml-model-hpa", "{.status.desiredReplicas}") == "2"
    cluster.wait_ready_replicas(2, timeout=300)
