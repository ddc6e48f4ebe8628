"""`mlkube deploy`: apply, the Secret when missing (its key never in argv or output), wait, smoke test."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.kube import cluster
from tests.kube.conftest import host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import KEY, RunningServer


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    overlay = tmp_path / "deploy" / "overlays" / "minikube"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: []\n", encoding="utf-8")
    return tmp_path / "deploy"


def cluster_answers(
    fake: FakeKubectl, server: RunningServer, *, existing: str = "", mounted: str = "ml-model-secret"
) -> None:
    """`existing`: what `kubectl get secret -o name` prints (empty: missing); `mounted`: what pods use."""
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    fake.on("get", "secret", "-o", "name", reply={"stdout": existing})
    fake.on("create", "-f", "-", reply={"stdout": "secret/ml-model-secret created\n"})
    fake.on(
        "apply",
        "-k",
        reply={"stdout": "configmap/ml-model-config created\ndeployment.apps/ml-model-deployment created\n"},
    )
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        replies=[
            reply_json(cluster.deployment(updated=0, available=0, mounts=mounted)),  # right after the apply
            reply_json(cluster.deployment(updated=0, available=0, mounts=mounted)),
            reply_json(cluster.deployment(mounts=mounted)),
        ],
    )
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("ClusterIP", None)))
    fake.on("port-forward", "service/ml-model-service", reply={"forward_to": host_port(server)})


def test_deploy_creates_the_secret_from_the_environment_without_showing_it(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_answers(fake, keyed_server)
    monkeypatch.setenv("MLKUBE_API_KEY", KEY)
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    lines = fake.lines()
    assert lines[:5] == [
        "kubectl config current-context",
        f"kubectl apply -k {manifests}/overlays/minikube",
        "kubectl get deployment/ml-model-deployment -o json --ignore-not-found",
        "kubectl get secret ml-model-secret -o name --ignore-not-found",
        "kubectl create -f -",
    ]
    created = next(call for call in fake.calls() if call.argv[:1] == ["create"])
    manifest = json.loads(created.stdin)
    assert manifest["metadata"]["name"] == "ml-model-secret"
    assert base64.b64decode(manifest["data"]["API_KEY"]).decode() == KEY
    assert all(KEY not in " ".join(call.argv) for call in fake.calls())
    assert KEY not in result.output
    assert "Secret ml-model-secret {API_KEY: <hidden>}" in result.stdout
    assert "✓ POST /predict (the notes' row): setosa (0)" in result.stdout
    assert "deployed: 2 of 2 pods ready" in result.stdout


def test_an_existing_secret_is_kept_and_its_key_used_for_the_smoke_test(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path
) -> None:
    cluster_answers(fake, keyed_server, existing="secret/ml-model-secret\n")
    encoded = base64.b64encode(f"{KEY},older-key".encode()).decode()
    fake.on("get", "secret", "ml-model-secret", "jsonpath={.data.API_KEY}", reply={"stdout": encoded})
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert not any(call.argv[:1] == ["create"] for call in fake.calls())
    assert "Secret ml-model-secret exists (kept as it is)" in result.stdout
    assert "the value is used, not shown" in result.stdout
    assert KEY not in result.output
    assert "✓ reported version: v1" in result.stdout


def test_a_missing_secret_without_a_key_is_a_warning(
    fake: FakeKubectl, server_v1: RunningServer, manifests: Path
) -> None:
    cluster_answers(fake, server_v1)
    fake.on("get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": ""})
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert "Secret ml-model-secret is missing and no key was given" in result.stdout
    assert not any(call.argv[:1] == ["create"] for call in fake.calls())


def test_api_key_file_is_read_and_piped(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path, tmp_path: Path
) -> None:
    cluster_answers(fake, keyed_server)
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    result = run_cli(
        "deploy", "--manifests", str(manifests), "--api-key-file", str(key_file), "--poll", "0.01"
    )
    assert result.exit_code == 0, result.output
    created = next(call for call in fake.calls() if call.argv[:1] == ["create"])
    assert base64.b64decode(json.loads(created.stdin)["data"]["API_KEY"]).decode() == KEY


def test_a_failed_smoke_test_fails_the_deploy(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path
) -> None:
    cluster_answers(fake, keyed_server, existing="secret/ml-model-secret\n")
    fake.on(
        "get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": base64.b64encode(b"wrong-key").decode()}
    )
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: smoke test failed against http://127.0.0.1:")
    assert "401: the service wants an API key" in result.stderr


def test_unknown_overlay_lists_the_ones_there_are(fake: FakeKubectl, manifests: Path) -> None:
    result = run_cli("deploy", "--manifests", str(manifests), "--overlay", "staging")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: no kustomize overlay at {manifests}/overlays/staging (overlays here: minikube)"
    )
    assert fake.calls() == []


def test_deploy_dry_run_prints_the_plan_and_runs_nothing(fake: FakeKubectl, manifests: Path) -> None:
    result = run_cli("deploy", "--manifests", str(manifests), "--dry-run", "--namespace", "ml")
    assert result.exit_code == 0, result.output
    for expected in (
        f"kubectl --namespace ml apply -k {manifests}/overlays/minikube",
        "kubectl --namespace ml get secret ml-model-secret -o name --ignore-not-found",
        "kubectl --namespace ml create -f - <<< Secret ml-model-secret",
        "kubectl --namespace ml get deployment/ml-model-deployment -o json",
        "smoke test",
    ):
        assert expected in result.stdout
    assert fake.calls() == []


def test_a_generated_secret_is_found_by_the_name_the_deployment_mounts(
    fake: FakeKubectl, server_v1: RunningServer, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_answers(
        fake, server_v1, existing="secret/ml-model-secret-5f2k8m\n", mounted="ml-model-secret-5f2k8m"
    )
    fake.on("get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": ""})
    monkeypatch.setenv("MLKUBE_API_KEY", KEY)
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert "kubectl get secret ml-model-secret-5f2k8m -o name --ignore-not-found" in fake.lines()
    assert "Secret ml-model-secret-5f2k8m exists (kept as it is)" in result.stdout
    assert not any(call.argv[:1] == ["create"] for call in fake.calls())


def test_the_namespace_set_by_the_overlay_is_used(fake: FakeKubectl, manifests: Path) -> None:
    production = manifests / "overlays" / "production"
    production.mkdir()
    (production / "kustomization.yaml").write_text(
        "namespace: ml-model\nresources: [../../base]\n", encoding="utf-8"
    )
    result = run_cli("deploy", "--manifests", str(manifests), "--overlay", "production", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "namespace 'ml-model' (set by the overlay)" in result.stdout
    assert f"$ kubectl --namespace ml-model apply -k {production}" in result.stdout
