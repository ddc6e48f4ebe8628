"""Finding the Service's URL: minikube's NodePort, else a temporary port-forward; and when that fails."""

from __future__ import annotations

import pytest

from mlkube.kube.endpoint import port_forward, service_endpoint
from mlkube.kube.errors import ClusterUnreachable, KubeError
from mlkube.kube.httpclient import HttpClient
from mlkube.kube.kubectl import Kubectl
from tests.kube import cluster
from tests.kube.conftest import host_port, printer, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer


def test_port_forward_reaches_the_pod_and_stops_afterwards(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    fake.on("port-forward", reply={"forward_to": host_port(server_v1)})
    out, printed = printer()
    with port_forward(Kubectl(out), "pod/ml-model-deployment-abc-1") as url, HttpClient(url) as client:
        assert client.get("/ready").status == 200
    with pytest.raises(ConnectionRefusedError):
        HttpClient(url, timeout=1).get("/ready")
    assert "$ kubectl port-forward pod/ml-model-deployment-abc-1 " in printed.getvalue()
    assert ":5000 --address 127.0.0.1   # temporary; stopped when done" in printed.getvalue()


def test_a_failing_port_forward_is_classified(fake: FakeKubectl) -> None:
    fake.on(
        "port-forward",
        reply={"stderr": "error: unable to connect to the server: dial tcp: i/o timeout\n", "exit": 1},
    )
    fake.on("config", "current-context", reply={"stdout": "kind-kind\n"})
    kubectl = Kubectl(printer()[0])
    with (
        pytest.raises(ClusterUnreachable, match="cannot reach the cluster of context 'kind-kind'"),
        port_forward(kubectl, "service/ml-model-service"),
    ):
        pass


def test_minikube_nodeport_is_used_when_the_context_is_a_minikube_profile(fake: FakeKubectl) -> None:
    fake.install("minikube")
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("NodePort", 31234)))
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    fake.on("profile", "list", tool="minikube", reply=reply_json({"valid": [{"Name": "minikube"}]}))
    fake.on(
        "service",
        tool="minikube",
        reply={"stdout": "* Starting tunnel for service ml-model-service.\nhttp://127.0.0.1:40111\n"},
    )
    with service_endpoint(Kubectl(printer()[0])) as url:
        assert url == "http://127.0.0.1:40111"
    assert not any("port-forward" in line for line in fake.lines())


def test_a_kind_context_gets_a_port_forward_even_for_a_nodeport(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    fake.install("minikube")
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("NodePort", 31234)))
    fake.on("config", "current-context", reply={"stdout": "kind-kind\n"})
    fake.on("profile", "list", tool="minikube", reply=reply_json({"valid": [{"Name": "minikube"}]}))
    fake.on("port-forward", "service/ml-model-service", reply={"forward_to": host_port(server_v1)})
    with service_endpoint(Kubectl(printer()[0])) as url:
        assert url.startswith("http://127.0.0.1:")
    assert not any(line.startswith("minikube service") for line in fake.lines())


def test_minikube_without_a_url_says_why(fake: FakeKubectl) -> None:
    fake.install("minikube")
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("NodePort", 31234)))
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    fake.on("profile", "list", tool="minikube", reply=reply_json({"valid": [{"Name": "minikube"}]}))
    fake.on("service", tool="minikube", reply={"stderr": "X Exiting due to SVC_NOT_FOUND\n", "exit": 85})
    kubectl = Kubectl(printer()[0])
    with (
        pytest.raises(KubeError, match="printed no URL: X Exiting due to SVC_NOT_FOUND"),
        service_endpoint(kubectl),
    ):
        pass


def test_a_given_url_needs_no_cluster(fake: FakeKubectl) -> None:
    with service_endpoint(Kubectl(printer()[0]), "http://example.test:8080/") as url:
        assert url == "http://example.test:8080"
    assert fake.calls() == []


def test_mlkube_smoke_without_url_finds_the_service(fake: FakeKubectl, server_v1: RunningServer) -> None:
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("ClusterIP", None)))
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(cluster.deployment()))
    fake.on("get", "secret", "ml-model-secret", reply={"stdout": ""})
    fake.on("config", "current-context", reply={"stdout": "kind-kind\n"})
    fake.on("port-forward", "service/ml-model-service", reply={"forward_to": host_port(server_v1)})
    result = run_cli("smoke", "--expect-version", "v1", "-n", "ml")
    assert result.exit_code == 0, result.output
    assert "✓ reported version: v1 as expected" in result.stdout
    first, *later = fake.calls()
    assert first.argv == ["--namespace", "ml", "config", "current-context"]
    assert all(call.argv[:4] == ["--context", "kind-kind", "--namespace", "ml"] for call in later)
