"""`mlkube release`: one revision with image, version and change-cause; each pod of the new ReplicaSet
smoke-tested; on a stalled rollout or a failed smoke test `kubectl rollout undo`, each pod of the restored
ReplicaSet checked, exit 1 with the reason.

The cluster is a FakeKubectl scenario; the pods are real local servers behind its port-forward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.kube.release import version_from_image
from tests.kube import cluster
from tests.kube.conftest import PINNED, host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.kube.scenarios import new_pods, release_steps, rolled_out
from tests.support import RunningServer, start_server

STALLED = reply_json(cluster.deployment(updated=1, total=3))


@pytest.fixture(scope="module")
def broken_server(model_dir: Path) -> Iterator[RunningServer]:
    """Pods that answer /ready but refuse /predict (an API key the smoke test does not have)."""
    with start_server(
        {"MODEL_DIR": str(model_dir), "WORKERS": "1", "API_KEY": "nobody-has-it-3a9f"}
    ) as running:
        yield running


def undo_steps(fake: FakeKubectl, old: RunningServer) -> None:
    """`kubectl rollout undo` gives revision 1's template the number 3; its two pods answer from `old`."""
    fake.on(
        "rollout",
        "undo",
        reply={"stdout": "deployment.apps/ml-model-deployment rolled back\n"},
        then="undone",
    )
    fake.on(
        "get", "deployment/ml-model-deployment", phase="undone", replies=rolled_out(3, "ml-model:v1", "v1")
    )
    fake.on(
        "get",
        "replicasets",
        phase="undone",
        reply=reply_json(cluster.items(cluster.replicaset(3, "ml-model:v1", version="v1", template_of=1))),
    )
    fake.on(
        "get",
        "pods",
        phase="undone",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-old-a", revision=1, image="ml-model:v1"),
                cluster.pod("ml-model-deployment-old-b", revision=1, image="ml-model:v1"),
            )
        ),
    )
    fake.on("port-forward", phase="undone", reply={"forward_to": host_port(old)})


def forwarded(fake: FakeKubectl) -> list[str]:
    return [call.command[1] for call in fake.calls() if call.command[:1] == ["port-forward"]]


def test_version_comes_from_the_image_tag() -> None:
    assert version_from_image("ml-model:v3") == "v3"
    assert version_from_image("registry.example:5000/team/ml-model:2024-06@sha256:abc") == "2024-06"
    assert version_from_image("registry.example:5000/ml-model") is None


def test_a_good_release_is_checked_on_each_new_pod_not_on_a_draining_old_one(
    fake: FakeKubectl, server_v3: RunningServer, broken_server: RunningServer
) -> None:
    release_steps(fake)
    new_pods(fake, server_v3, old=broken_server)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")
    assert result.exit_code == 0, result.output
    changes = [call.line for call in fake.calls() if call.command[0] not in ("get", "config")]
    assert changes[:2] == [
        f"{PINNED} set image deployment/ml-model-deployment ml-model=ml-model:v3",
        f"{PINNED} annotate deployment/ml-model-deployment --overwrite "
        "kubernetes.io/change-cause=mlkube release ml-model:v3 (model v3) mlkube.io/model-version=v3",
    ]
    assert forwarded(fake) == ["pod/ml-model-deployment-new-a", "pod/ml-model-deployment-new-b"]
    assert not any("undo" in line for line in fake.lines())
    assert result.stdout.count("✓ reported version: v3 as expected") == 2
    assert "2 pod(s) of the new ReplicaSet answer" in result.stdout
    assert "released ml-model:v3 (model v3) as revision 2" in result.stdout


def test_a_new_pod_not_answering_yet_is_asked_again(fake: FakeKubectl, server_v3: RunningServer) -> None:
    """kubectl's own words when a pod is not running yet; the next try reaches it."""
    release_steps(fake)
    not_running = {
        "stderr": "error: unable to forward port because pod is not running. Current status=Pending\n",
        "exit": 1,
    }
    fake.on(
        "port-forward",
        "pod/ml-model-deployment-new-a",
        replies=[not_running, {"forward_to": host_port(server_v3)}],
    )
    new_pods(fake, server_v3, old=server_v3)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01", "--timeout", "60s")
    assert result.exit_code == 0, result.output
    assert forwarded(fake).count("pod/ml-model-deployment-new-a") == 2


def test_an_image_that_can_never_start_is_undone_at_once(fake: FakeKubectl, server_v1: RunningServer) -> None:
    release_steps(fake)
    fake.on("get", "deployment/ml-model-deployment", phase="rolling", reply=STALLED)
    fake.on(
        "get",
        "pods",
        phase="rolling",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-old-a", revision=1),
                cluster.pod(
                    "ml-model-deployment-new-a",
                    revision=2,
                    image="ml-model:v4",
                    ready=False,
                    waiting="ErrImageNeverPull",
                    message='Container image "ml-model:v4" is not present with pull policy of Never',
                ),
            )
        ),
    )
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v4", "--poll", "0.01")  # the 180s default deadline
    assert result.exit_code == 1
    polls = [
        c
        for c in fake.calls()
        if c.phase == "rolling" and c.command[:2] == ["get", "deployment/ml-model-deployment"]
    ]
    assert len(polls) == 2, "the second identical poll looks at the pods and gives up"
    assert f"{PINNED} rollout undo deployment/ml-model-deployment --to-revision=1" in fake.lines()
    reason = result.stderr.strip()
    assert reason.startswith(
        "error: the rollout cannot succeed (1 of 2 new replicas updated): pod ml-model-deployment-new-a: "
        "ErrImageNeverPull"
    )
    assert "`mlkube image build --minikube --tag ml-model:v4`" in reason
    assert reason.endswith("rolled back to revision 1: v1 answers again")
    assert result.stdout.count("✓ reported version: v1 as expected") == 2  # each restored pod


def test_a_rollout_without_progress_is_undone_at_the_deadline(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    release_steps(fake)
    fake.on("get", "deployment/ml-model-deployment", phase="rolling", reply=STALLED)
    fake.on(
        "get",
        "pods",
        phase="rolling",
        reply=reply_json(cluster.items(cluster.pod("ml-model-deployment-new-a", revision=2, ready=False))),
    )
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "1.5", "--poll", "0.05")
    assert result.exit_code == 1
    reason = result.stderr.strip()
    assert reason.startswith("error: not rolled out: no progress for 1.5s (1 of 2 new replicas updated); ")
    assert "pod ml-model-deployment-new-a runs but is not ready: its readiness probe fails" in reason
    assert reason.endswith("rolled back to revision 1: v1 answers again")


def test_a_failed_smoke_test_is_undone(
    fake: FakeKubectl, broken_server: RunningServer, server_v1: RunningServer
) -> None:
    release_steps(fake)
    new_pods(fake, broken_server, old=broken_server)
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")
    assert result.exit_code == 1
    reason = result.stderr.strip()
    assert reason.startswith("error: smoke test failed on pod ml-model-deployment-new-a: ")
    assert "POST /predict (the notes' row): 401" in reason
    assert reason.endswith("rolled back to revision 1: v1 answers again")
    assert [c.phase for c in fake.calls() if c.command[:2] == ["rollout", "undo"]] == ["rolling"]


def test_a_wrong_version_on_a_new_pod_is_undone_without_waiting(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    release_steps(fake)
    new_pods(fake, server_v1, old=server_v1)
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.01")  # the 180s default deadline
    assert result.exit_code == 1
    assert "smoke test failed on pod ml-model-deployment-new-a: reported version: 'v1', expected 'v3'" in (
        result.stderr
    )
    assert forwarded(fake)[0] == "pod/ml-model-deployment-new-a"


def test_a_rollback_that_stalls_too_says_so(fake: FakeKubectl, server_v1: RunningServer) -> None:
    release_steps(fake)
    fake.on("get", "deployment/ml-model-deployment", phase="rolling", reply=STALLED)
    fake.on("get", "pods", reply=reply_json(cluster.items(cluster.pod("new-a", revision=2, ready=False))))
    fake.on("rollout", "undo", reply={"stdout": "rolled back\n"}, then="undone")
    fake.on("get", "deployment/ml-model-deployment", phase="undone", reply=STALLED)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "0.3", "--poll", "0.05")
    assert result.exit_code == 1
    assert "; the rollback did not recover either: not rolled out: no progress for 0.3s" in result.stderr
    assert all(line.startswith(PINNED) for line in fake.lines()[2:]), "the undo goes where the release went"


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
    fake.on("get", "deployment/ml-model-deployment", phase="rolling", reply=STALLED)
    fake.on("get", "pods", phase="rolling", reply=reply_json(cluster.items()))
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--timeout", "1.5", "--poll", "0.05")
    assert "the Service answers with model v1" in result.stdout
    assert [c.phase for c in fake.calls() if c.command[:1] == ["port-forward"]] == [
        "start",
        "undone",
        "undone",
    ]
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("rolled back to revision 1: v1 answers again")


def test_only_terminating_pods_never_pass_the_smoke_test(fake: FakeKubectl, server_v1: RunningServer) -> None:
    """Still Ready, but being deleted: never tested, so the release is not taken for good."""
    release_steps(fake)
    draining = cluster.items(cluster.pod("ml-model-deployment-new-a", revision=2, terminating=True))
    fake.on("get", "pods", phase="rolling", reply=reply_json(draining))  # before new_pods' pods: it wins
    new_pods(fake, server_v1, old=server_v1)
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--poll", "0.05", "--timeout", "0.5")
    assert result.exit_code == 1
    assert "smoke test failed after 0.5s: no pod is ready and serving" in result.stderr
    assert "pod/ml-model-deployment-new-a" not in forwarded(fake)


def test_with_a_url_the_smoke_test_goes_there_and_a_wrong_answer_is_not_retried(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    """--url (an ingress, a load balancer): checked there instead of on each pod; a wrong version there
    fails at once under the 180 s default, and after the undo the same URL answers v1 again."""
    release_steps(fake)
    fake.on(
        "get", "deployment/ml-model-deployment", phase="rolling", replies=rolled_out(2, "ml-model:v3", "v3")
    )
    undo_steps(fake, server_v1)
    result = run_cli("release", "--image", "ml-model:v3", "--url", server_v1.url, "--poll", "0.01")
    assert result.exit_code == 1
    reason = result.stderr.strip()
    assert reason.startswith(
        f"error: smoke test failed against {server_v1.url}: reported version: 'v1', expected 'v3'"
    )
    assert reason.endswith("rolled back to revision 1: v1 answers again")
    assert forwarded(fake) == []
