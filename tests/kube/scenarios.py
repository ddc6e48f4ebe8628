"""FakeKubectl scenarios of a release that more than one test module plays: the cluster before it, the
change, and the new pods answering from real local servers (kubectl itself is the test double here)."""

from __future__ import annotations

from tests.kube import cluster
from tests.kube.conftest import current_context, host_port
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer

BEFORE = cluster.deployment(image="ml-model:v1", version="v1", revision=1)


def release_steps(fake: FakeKubectl, before: dict[str, object] = BEFORE) -> None:
    """Before the release (phase start) and the change itself, which moves the cluster to `rolling`."""
    current_context(fake)
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


def new_pods(fake: FakeKubectl, server: RunningServer, old: RunningServer) -> None:
    """Rolled out to revision 2: two new pods answer from `server`; the last old pod is still being
    deleted and still Ready (a ReplicaSet's status.replicas leaves it out), answering from `old`. A
    port-forward to the Service would pick that old pod, Ready the longest."""
    fake.on(
        "get", "deployment/ml-model-deployment", phase="rolling", replies=rolled_out(2, "ml-model:v3", "v3")
    )
    fake.on(
        "get",
        "replicasets",
        phase="rolling",
        reply=reply_json(
            cluster.items(
                cluster.replicaset(1, "ml-model:v1", version="v1"),
                cluster.replicaset(2, "ml-model:v3", version="v3", replicas=2, ready=2),
            )
        ),
    )
    fake.on(
        "get",
        "pods",
        phase="rolling",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-old-a", revision=1, image="ml-model:v1", terminating=True),
                cluster.pod("ml-model-deployment-new-a", revision=2),
                cluster.pod("ml-model-deployment-new-b", revision=2),
            )
        ),
    )
    for target in ("pod/ml-model-deployment-old-a", "service/ml-model-service"):
        fake.on("port-forward", target, phase="rolling", reply={"forward_to": host_port(old)})
    fake.on("port-forward", phase="rolling", reply={"forward_to": host_port(server)})
