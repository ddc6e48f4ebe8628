"""`mlkube release`: one revision with image, version and change-cause; on a stalled rollout or a failed
smoke test `kubectl rollout undo`, wait for the old version to answer again, exit 1 with the reason.

The cluster is a FakeKubectl scenario; the pods are real local servers behind its port-forward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.kube.release import version_from_image
from tests.kube import cluster
from tests.kube.conftest import host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer, start_server

BEFORE = cluster.deployment(image="ml-model:v1", version="v1", revision=1)
STALLED_PODS = cluster.items(
    cluster.pod("ml-model-deployment-old-a"),
    cluster.pod("ml-model-deployment-old-b"),
    cluster.pod("ml-model-deployment-new-a", ready=False, waiting="ErrImageNeverPull"),
)


@pytest.fixture(scope="module")
def broken_server(model_dir: Path) -> Iterator[RunningServer]:
    """New pods that answer /ready but refuse /predict (an API key the smoke test does not have)."""
    with start_server(
        {"MODEL_DIR": str(model_dir), "WORKERS": "1", "API_KEY": "nobody-has-it-3a9f"}
    ) as running:
        yield running


def release_steps(fake: FakeKubectl, before: dict[str, object] = BEFORE) -> None:
    """Before the release (phase start) and the change itself, which moves the cluster to `rolling`."""
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    fake.on("get", "secret", "ml-model-secret", reply={"stdout": ""})
    fake.on("get", "deployment/ml-model-deployment", phase="start", reply=reply_json(before))
    fake.on(
        "set",
        "image",
        reply={"stdout": "deployment.apps/ml-model-deployment image updated\n"},
        then="rolling",
    )
    fake.on("annotate", reply={"stdout": "deployment.apps/ml-model-deployment annotated\n"})
    fake.on("get", "service/ml-model-service", reply=reply_json(cluster.service("ClusterIP", None)))


def rolled_out(revision: int, image: str, version: str) -> list[dict[str, object]]:
    return [
        reply_json(cluster.deployment(generation=2, observed=1)),
        reply_json(cluster.deployment(generation=2, updated=1, total=3)),
        reply_json(cluster.deployment(generation=2, revision=revision, image=image, version=version)),
    ]


def undo_steps(fake: FakeKubectl, old: RunningServer) -> None:
    fake.on(
        "rollout",
        "undo",
        reply={"stdout": "deployment.apps/ml-model-deployment rolled back\n"},
        then="undone",
    )
    fake.on(
        "get", "deployment/ml-model-deployment", phase="undone", replies=rolled_out(3, "ml-model:v1", "v1")
    )
    fake.on("port-forward", phase="undone", reply={"forward_to": host_port(old)})


def test_version_comes_from_the_image_tag() -> None:
    assert version_from_image("ml-model:v3") == "v3"
    assert version_from_image("registry.example:5000/team/ml-model:2024-06@sha256:abc") == "2024-06"
    assert version_from_image("registry.example:5000/ml-model") is None


def test_a_good_release_is_one_revision_checked_on_the_new_pods(
    fake: FakeKubectl, server_v3: RunningServer
) -> None:
    release_steps(fake)
    fake.on(
        "get", "deployment/ml-model-deployment", phase="rolling", replies=rolled_out(2, "ml-model:v3", "v3")
    )
    fake.on(
        "port-forward",
        "service/ml-model-service",
        phase="rolling",
        reply={"forward_to": host_port(server_v3)},
    )
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")
    assert result.exit_code == 0, result.output
    changes = [line for line in fake.lines() if " get " not in line and "config" not in line]
    assert changes[:2] == [
        "kubectl set image deployment/ml-model-deployment ml-model=ml-model:v3",
        "kubectl annotate deployment/ml-model-deployment --overwrite "
        "kubernetes.io/change-cause=mlkube release ml-model:v3 (model v3) mlkube.io/model-version=v3",
    ]
    assert changes[2].startswith("kubectl port-forward service/ml-model-service ")
    assert not any("undo" in line for line in fake.lines())
    assert "✓ reported version: v3 as expected" in result.stdout
    assert "released ml-model:v3 (model v3) as revision 2" in result.stdout


def test_a_stalled_rollout_is_undone_and_the_old_version_answers_again(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    release_steps(fake)
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        phase="rolling",
        reply=reply_json(cluster.deployment(updated=1, total=3)),
    )
    fake.on("get", "pods", phase="rolling", reply=reply_json(STALLED_PODS))
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "1.5", "--poll", "0.05")
    assert result.exit_code == 1
    assert "kubectl rollout undo deployment/ml-model-deployment --to-revision=1" in fake.lines()
    reason = result.stderr.strip()
    assert reason.startswith("error: not rolled out after 1.5s (1 of 2 new replicas updated); ")
    assert "pod ml-model-deployment-new-a: ErrImageNeverPull" in reason
    assert reason.endswith("rolled back to revision 1: v1 answers again")
    assert "✓ reported version: v1 as expected" in result.stdout  # the old pods, checked after the undo


def test_a_failed_smoke_test_is_undone(
    fake: FakeKubectl, broken_server: RunningServer, server_v1: RunningServer
) -> None:
    release_steps(fake)
    fake.on(
        "get", "deployment/ml-model-deployment", phase="rolling", replies=rolled_out(2, "ml-model:v3", "v3")
    )
    fake.on("port-forward", phase="rolling", reply={"forward_to": host_port(broken_server)})
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")
    assert result.exit_code == 1
    reason = result.stderr.strip()
    assert reason.startswith("error: smoke test failed against http://127.0.0.1:")
    assert "POST /predict (the notes' row): 401" in reason
    assert reason.endswith("rolled back to revision 1: v1 answers again")
    assert [c.phase for c in fake.calls() if c.argv[:2] == ["rollout", "undo"]] == ["rolling"]


def test_a_wrong_version_on_the_new_pods_is_undone(fake: FakeKubectl, server_v1: RunningServer) -> None:
    release_steps(fake)
    fake.on(
        "get", "deployment/ml-model-deployment", phase="rolling", replies=rolled_out(2, "ml-model:v3", "v3")
    )
    fake.on("port-forward", phase="rolling", reply={"forward_to": host_port(server_v1)})
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")
    assert result.exit_code == 1
    assert "reported version: 'v1', expected 'v3'" in result.stderr


def test_a_rollback_that_stalls_too_says_so(fake: FakeKubectl, server_v1: RunningServer) -> None:
    release_steps(fake)
    stuck = reply_json(cluster.deployment(updated=1, total=3))
    fake.on("get", "deployment/ml-model-deployment", phase="rolling", reply=stuck)
    fake.on("get", "pods", reply=reply_json(STALLED_PODS))
    fake.on("rollout", "undo", reply={"stdout": "rolled back\n"}, then="undone")
    fake.on("get", "deployment/ml-model-deployment", phase="undone", reply=stuck)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "0.3", "--poll", "0.05")
    assert result.exit_code == 1
    assert "; the rollback did not recover either: not rolled out after 0.3s" in result.stderr


def test_an_image_without_tag_needs_a_model_version(fake: FakeKubectl) -> None:
    result = run_cli("release", "--image", "registry.example/ml-model")
    assert result.exit_code == 1
    assert "pass --model-version" in result.stderr
    assert fake.calls() == []


def test_without_a_recorded_version_the_running_one_is_asked_first(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    release_steps(fake, before=cluster.deployment(image="ml-model:v2", revision=1))
    fake.on("port-forward", phase="start", reply={"forward_to": host_port(server_v1)})
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        phase="rolling",
        reply=reply_json(cluster.deployment(updated=1, total=3)),
    )
    fake.on("get", "pods", phase="rolling", reply=reply_json(STALLED_PODS))
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "1.5", "--poll", "0.05")
    assert "the Service answers with model v1" in result.stdout
    assert [c.phase for c in fake.calls() if c.argv[:1] == ["port-forward"]] == ["start", "undone"]
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("rolled back to revision 1: v1 answers again")
