"""`mlkube status`: Deployment, pods with the version each reports, HPA, Service URL."""

from __future__ import annotations

from tests.kube import cluster
from tests.kube.conftest import current_context, host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer


def a_cluster(fake: FakeKubectl, server: RunningServer, *, hpa: dict[str, object] | None = None) -> None:
    current_context(fake)
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        reply=reply_json(cluster.deployment(image="ml-model:v2", revision=4)),
    )
    fake.on(
        "get",
        "pods",
        "-l",
        "app=ml-model",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-abc-1", restarts=1, node="node-a"),
                cluster.pod("ml-model-deployment-abc-2", node="node-b"),
                cluster.pod("ml-model-deployment-def-1", ready=False, waiting="CrashLoopBackOff", restarts=5),
            )
        ),
    )
    fake.on(
        "get", "hpa/ml-model-hpa", reply=reply_json(hpa or cluster.hpa(current=34, replicas=2, desired=2))
    )
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("NodePort", 31234)))
    fake.on("port-forward", reply={"forward_to": host_port(server)})


def test_status_shows_pods_with_their_reported_version(fake: FakeKubectl, server_v1: RunningServer) -> None:
    a_cluster(fake, server_v1)
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert (
        "Deployment ml-model-deployment: 2/2 ready, 2 up to date, 2 available; image ml-model:v2, revision 4"
        in out
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ml-model-")}
    assert rows["ml-model-deployment-abc-1"] == ["1/1", "1", "node-a", "Running", "v1"]
    assert rows["ml-model-deployment-abc-2"] == ["1/1", "0", "node-b", "Running", "v1"]
    assert rows["ml-model-deployment-def-1"] == ["0/1", "5", "minikube", "CrashLoopBackOff", "-"]
    forwards = [call.command for call in fake.calls() if call.command[:1] == ["port-forward"]]
    assert [command[1] for command in forwards] == [
        "pod/ml-model-deployment-abc-1",
        "pod/ml-model-deployment-abc-2",
    ]
    assert "HPA ml-model-hpa: CPU 34% of target 50%, replicas 2 (desired 2, min 2, max 5)" in out
    assert "Service ml-model-service: NodePort 10.0.0.7 port 5000:31234" in out


def test_status_without_metrics_server_says_how_to_enable_it(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    a_cluster(fake, server_v1, hpa=cluster.hpa(current=None))
    result = run_cli("status", "--no-versions")
    assert result.exit_code == 0, result.output
    assert "CPU <unknown> (metrics-server? `minikube addons enable metrics-server`)" in result.stdout
    assert not any("port-forward" in line for line in fake.lines())


def test_status_uses_minikube_for_the_url_on_a_minikube_context(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    a_cluster(fake, server_v1)
    fake.install("minikube")
    fake.on(
        "profile", "list", tool="minikube", reply=reply_json({"valid": [{"Name": "minikube"}], "invalid": []})
    )
    fake.on(
        "service",
        "ml-model-service",
        "--url",
        tool="minikube",
        reply={"stdout": "http://192.168.49.2:31234\n"},
    )
    result = run_cli("status", "--no-versions")
    assert result.exit_code == 0, result.output
    assert "port 5000:31234; URL http://192.168.49.2:31234" in result.stdout
    assert "$ minikube service ml-model-service --url -p minikube" in result.stdout


def test_status_of_a_missing_deployment_says_so(fake: FakeKubectl) -> None:
    current_context(fake)
    fake.on(
        "get",
        reply={
            "stderr": 'Error from server (NotFound): deployments.apps "ml-model-deployment" not found\n',
            "exit": 1,
        },
    )
    result = run_cli("status", "-n", "ml")
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "error: deployments.apps \"ml-model-deployment\" not found in namespace 'ml'"
    )
