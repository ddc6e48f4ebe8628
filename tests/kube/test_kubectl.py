"""The kubectl runner: argv, printing, dry run, timeouts, and one clear line for each way kubectl fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlkube.kube.errors import ClusterUnreachable, KubeError, ObjectNotFound, ToolMissing, WrongContext
from mlkube.kube.kubectl import Kubectl, Target
from mlkube.kube.objects import Deployment
from tests.kube import cluster
from tests.kube.conftest import printer, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json


def test_context_and_namespace_flags_go_on_every_command() -> None:
    out, _ = printer()
    kubectl = Kubectl(out, Target(context="minikube", namespace="ml"))
    assert kubectl.argv("get", "pods") == [
        "kubectl",
        "--context",
        "minikube",
        "--namespace",
        "ml",
        "get",
        "pods",
    ]
    assert Kubectl(out).argv("get", "pods") == ["kubectl", "get", "pods"]


def test_each_command_is_printed_before_it_runs(fake: FakeKubectl) -> None:
    fake.on(
        "get", "deployment/ml-model-deployment", reply=reply_json(cluster.deployment(image="ml-model:v7"))
    )
    out, printed = printer()
    found = Kubectl(out, Target(namespace="ml")).get(Deployment, "deployment/ml-model-deployment")
    assert found.spec.template.spec.containers[0].image == "ml-model:v7"
    assert "$ kubectl --namespace ml get deployment/ml-model-deployment -o json" in printed.getvalue()
    assert fake.lines() == ["kubectl --namespace ml get deployment/ml-model-deployment -o json"]


def test_dry_run_prints_without_running(fake: FakeKubectl) -> None:
    out, printed = printer()
    Kubectl(out, dry_run=True).run("apply", "-k", "deploy/kubernetes/overlays/minikube")
    assert "(dry run" in printed.getvalue()
    assert "$ kubectl apply -k deploy/kubernetes/overlays/minikube" in printed.getvalue()
    assert fake.calls() == []


def test_cli_dry_run_of_a_release_runs_nothing(fake: FakeKubectl) -> None:
    result = run_cli("release", "--image", "ml-model:v3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "kubectl set image deployment/ml-model-deployment ml-model=ml-model:v3" in result.stdout
    assert "kubectl rollout undo" in result.stdout
    assert fake.calls() == []


def test_missing_kubectl_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"^kubectl not found on PATH: install it"):
        Kubectl(printer()[0]).run("get", "pods")
    result = run_cli("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: kubectl not found on PATH")
    assert len(result.stderr.strip().splitlines()) == 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "{server}"}}
contexts:
- name: minikube
  context: {{cluster: local, user: learner}}
- name: kind-kind
  context: {{cluster: local, user: learner}}
current-context: minikube
users:
- name: learner
  user: {{token: not-a-real-token}}
""",
        encoding="utf-8",
    )
    return path


def test_unreachable_cluster_is_one_line_with_the_real_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("KUBECONFIG", str(config))
    result = run_cli("history")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("error: cannot reach the cluster of context 'minikube': ")
    assert "was refused" in line
    assert "minikube status" in line
    assert "\n" not in line


def test_unknown_context_names_the_contexts_there_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", "https://127.0.0.1:1")))
    result = run_cli("status", "--context", "prod")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: kubectl context 'prod' does not exist (contexts in your kubeconfig: kind-kind, minikube)"
    )


def test_no_kubeconfig_at_all_says_start_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(ClusterUnreachable, match="kubectl has no current context"):
        Kubectl(printer()[0]).run("get", "pods")


def test_not_found_names_the_object_and_namespace(fake: FakeKubectl) -> None:
    fake.on(
        "get",
        reply={
            "stderr": 'Error from server (NotFound): deployments.apps "ml-model-deployment" not found\n',
            "exit": 1,
        },
    )
    with pytest.raises(ObjectNotFound) as raised:
        Kubectl(printer()[0], Target(namespace="ml")).get(Deployment, "deployment/ml-model-deployment")
    assert str(raised.value) == "deployments.apps \"ml-model-deployment\" not found in namespace 'ml'"


def test_klog_noise_is_skipped_for_the_meaningful_line(fake: FakeKubectl) -> None:
    noise = 'E1128 03:25:43.639719   21253 memcache.go:265] "Unhandled Error" err="..."\n'
    fake.on("apply", reply={"stderr": noise * 3 + "error: no objects passed to apply\n", "exit": 1})
    with pytest.raises(KubeError) as raised:
        Kubectl(printer()[0]).run("apply", "-k", "x")
    assert str(raised.value) == "`kubectl apply -k x` failed: error: no objects passed to apply"


def test_a_hanging_kubectl_times_out_as_unreachable(fake: FakeKubectl) -> None:
    fake.on("get", reply={"sleep": 5})
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    with pytest.raises(
        ClusterUnreachable, match=r"got no answer within 0.3s: the cluster of context 'minikube'"
    ):
        Kubectl(printer()[0], timeout=0.3).run("get", "pods")


def test_wrong_context_from_a_fake_is_classified_too(fake: FakeKubectl) -> None:
    fake.on("get", reply={"stderr": 'error: context "staging" does not exist\n', "exit": 1})
    fake.on("config", "get-contexts", reply={"stdout": "minikube\n"})
    with pytest.raises(
        WrongContext, match=r"'staging' does not exist \(contexts in your kubeconfig: minikube\)"
    ):
        Kubectl(printer()[0], Target(context="staging")).run("get", "pods")
