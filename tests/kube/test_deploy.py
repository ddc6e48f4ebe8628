"""`mlkube deploy`: apply, the Secret when missing (its key never in argv or output), wait, smoke test."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mlkube.kube.deploy import overlay_image
from tests.kube import cluster
from tests.kube.conftest import PINNED, current_context, host_port, run_cli
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
    current_context(fake)
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
    fake.on("get", "replicasets", reply=reply_json(cluster.items(cluster.replicaset(1, "ml-model:v2"))))
    fake.on(
        "get",
        "pods",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-a", revision=1, image="ml-model:v2"),
                cluster.pod("ml-model-deployment-b", revision=1, image="ml-model:v2"),
            )
        ),
    )
    fake.on("port-forward", reply={"forward_to": host_port(server)})


def test_deploy_creates_the_secret_from_the_environment_without_showing_it(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_answers(fake, keyed_server)
    monkeypatch.setenv("MLKUBE_API_KEY", KEY)
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    lines = fake.lines()
    assert lines[:6] == [
        "kubectl config current-context",
        "kubectl config view --minify --context minikube -o jsonpath={..namespace}",
        f"{PINNED} apply -k {manifests}/overlays/minikube",
        f"{PINNED} get deployment/ml-model-deployment -o json --ignore-not-found",
        f"{PINNED} get secret ml-model-secret -o name --ignore-not-found",
        f"{PINNED} create -f -",
    ]
    assert all(line.startswith(PINNED) for line in lines[2:]), "every call after the first two is pinned"
    created = next(call for call in fake.calls() if call.command[:1] == ["create"])
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
    assert not any(call.command[:1] == ["create"] for call in fake.calls())
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
    assert not any(call.command[:1] == ["create"] for call in fake.calls())


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
    created = next(call for call in fake.calls() if call.command[:1] == ["create"])
    assert base64.b64decode(json.loads(created.stdin)["data"]["API_KEY"]).decode() == KEY


@pytest.mark.parametrize("where", ["env", "file"])
def test_a_key_shorter_than_the_server_accepts_is_refused_before_anything_is_applied(
    fake: FakeKubectl, manifests: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    short = "change-me"  # pragma: allowlist secret
    args = ["deploy", "--manifests", str(manifests)]
    if where == "env":
        monkeypatch.setenv("MLKUBE_API_KEY", f"{KEY},{short}")
    else:
        key_file = tmp_path / "api-key"
        key_file.write_text(short + "\n", encoding="utf-8")
        args += ["--api-key-file", str(key_file)]
    result = run_cli(*args)
    assert result.exit_code == 1
    source, position = (
        ("$MLKUBE_API_KEY", "key 2 of 2") if where == "env" else ("--api-key-file", "key 1 of 1")
    )
    assert (
        f"error: the API key from {source}: {position} has 9 characters, fewer than the 16" in result.stderr
    )
    assert short not in result.output
    assert fake.calls() == []


def test_a_failed_smoke_test_fails_the_deploy(
    fake: FakeKubectl, keyed_server: RunningServer, manifests: Path
) -> None:
    cluster_answers(fake, keyed_server, existing="secret/ml-model-secret\n")
    fake.on(
        "get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": base64.b64encode(b"wrong-key").decode()}
    )
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: smoke test failed on pod ml-model-deployment-a: ")
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
    assert f"{PINNED} get secret ml-model-secret-5f2k8m -o name --ignore-not-found" in fake.lines()
    assert "Secret ml-model-secret-5f2k8m exists (kept as it is)" in result.stdout
    assert not any(call.command[:1] == ["create"] for call in fake.calls())


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


def test_the_context_is_resolved_once_and_pinned_with_its_namespace(
    fake: FakeKubectl, server_v1: RunningServer, manifests: Path
) -> None:
    """A `kubectl config use-context` in another terminal mid-deploy cannot redirect the later calls."""
    current_context(fake, namespace="team-a")  # first: the fake answers with the first matching rule
    cluster_answers(fake, server_v1, existing="secret/ml-model-secret\n")
    fake.on("get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": ""})
    result = run_cli("deploy", "--manifests", str(manifests), "--poll", "0.01")
    assert result.exit_code == 0, result.output
    calls = fake.calls()
    assert [call.command[:2] for call in calls].count(["config", "current-context"]) == 1
    later = [call.argv for call in calls[2:]]
    assert later
    assert all(argv[:4] == ["--context", "minikube", "--namespace", "team-a"] for argv in later)
    assert "to kubectl context 'minikube', namespace 'team-a'" in result.stdout


def released_cluster(fake: FakeKubectl, server: RunningServer) -> None:
    """The cluster runs ml-model:v3 (an `mlkube release`), the overlay still says ml-model:v2. These rules
    come first: the fake answers with the first rule that matches."""
    v3 = cluster.deployment(image="ml-model:v3", revision=3, annotations={"mlkube.io/model-version": "v3"})
    fake.on(
        "get", "deployment/ml-model-deployment", "--ignore-not-found", phase="start", reply=reply_json(v3)
    )
    fake.on(
        "apply", "-k", reply={"stdout": "deployment.apps/ml-model-deployment configured\n"}, then="applied"
    )
    fake.on("get", "secret", "jsonpath={.data.API_KEY}", reply={"stdout": ""})
    cluster_answers(fake, server, existing="secret/ml-model-secret\n")


@pytest.fixture
def overlay_at_v2(manifests: Path) -> Path:
    (manifests / "overlays" / "minikube" / "kustomization.yaml").write_text(
        "resources: [../../base]\nimages:\n  - name: ml-model\n    newName: ml-model\n    newTag: v2\n",
        encoding="utf-8",
    )
    return manifests


def test_deploy_refuses_to_undo_a_release(
    fake: FakeKubectl, server_v1: RunningServer, overlay_at_v2: Path
) -> None:
    released_cluster(fake, server_v1)
    result = run_cli("deploy", "--manifests", str(overlay_at_v2))
    assert result.exit_code == 1
    assert not any(call.command[:1] == ["apply"] for call in fake.calls())
    message = result.stderr.strip()
    assert message.startswith(
        "error: the cluster runs ml-model:v3 (model v3) and the overlay would put ml-model:v2 back"
    )
    assert "kustomize edit set image ml-model=ml-model:v3" in message
    assert message.endswith("or pass --force to deploy ml-model:v2")


def test_deploy_force_applies_the_overlays_image(
    fake: FakeKubectl, server_v1: RunningServer, overlay_at_v2: Path
) -> None:
    released_cluster(fake, server_v1)
    result = run_cli("deploy", "--manifests", str(overlay_at_v2), "--force", "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert f"{PINNED} apply -k {overlay_at_v2}/overlays/minikube" in fake.lines()


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        ("images:\n  - name: ml-model\n    newName: ml-model\n    newTag: v2\n", "ml-model:v2"),
        (
            "images:\n  - name: other\n    newTag: v9\n"
            "  - name: 'ml-model'\n    newName: reg.example/ml-model\n"
            '    newTag: "v3"\n    # digest: sha256:commented-out\n    digest: sha256:abc\nlabels: []\n',
            "reg.example/ml-model:v3@sha256:abc",
        ),
        ("resources: [../../base]\n", None),
    ],
)
def test_the_overlays_image_is_read_from_its_images_entry(
    tmp_path: Path, images: str, expected: str | None
) -> None:
    (tmp_path / "kustomization.yaml").write_text(images, encoding="utf-8")
    assert overlay_image(tmp_path) == expected


def test_the_committed_overlays_name_their_image() -> None:
    overlays = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "overlays"
    assert overlay_image(overlays / "minikube") == "ml-model:v2"
    assert overlay_image(overlays / "production") == "registry.example.com/mlkube/ml-model:v2"
