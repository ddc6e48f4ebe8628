"""`mlkube history`: `kubectl rollout history` plus what it leaves out: each revision's image and model
version, read from the Deployment's ReplicaSets (one per revision, `deployment.kubernetes.io/revision`)."""

from __future__ import annotations

from dataclasses import dataclass

from mlkube.kube import names
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, ObjectList, ReplicaSet
from mlkube.kube.output import Output


@dataclass(frozen=True)
class Revision:
    number: int
    image: str
    model_version: str | None
    change_cause: str
    pods: int
    ready: int
    current: bool


def recorded_version(annotations: dict[str, str]) -> str | None:
    """The version a revision's pods report, as `mlkube release` recorded it: the annotation
    mlkube.io/model-version it sets on the Deployment, which the controller copies onto the revision's
    ReplicaSet. None for a revision not made by `mlkube release` (the image itself carries the version;
    the ConfigMap's MODEL_VERSION is empty and not part of a revision)."""
    return annotations.get(names.MODEL_VERSION_ANNOTATION)


def current_revision(deployment: Deployment) -> int | None:
    value = deployment.metadata.annotations.get(names.REVISION, "")
    return int(value) if value.isdigit() else None


def revisions(kubectl: Kubectl, deployment: Deployment | None = None) -> list[Revision]:
    """Every revision Kubernetes still keeps (revisionHistoryLimit), oldest first."""
    deployment = deployment or kubectl.get(Deployment, f"deployment/{names.DEPLOYMENT}")
    selector = deployment.spec.selector.as_arg()
    sets = kubectl.get(ObjectList[ReplicaSet], "replicasets", "-l", selector).items
    current = current_revision(deployment)
    found = [
        _revision(rs, current)
        for rs in sets
        if any(owner.uid == deployment.metadata.uid for owner in rs.metadata.owner_references)
        and rs.metadata.annotations.get(names.REVISION, "").isdigit()
    ]
    return sorted(found, key=lambda revision: revision.number)


def print_history(out: Output, found: list[Revision]) -> None:
    rows = [
        [
            str(r.number) + (" *" if r.current else ""),
            r.image,
            r.model_version or "-",
            f"{r.ready}/{r.pods}",
            r.change_cause or "-",
        ]
        for r in found
    ]
    out.table(["REVISION", "IMAGE", "MODEL", "PODS", "CHANGE-CAUSE"], rows)
    out.info("* = current revision; go back with `mlkube rollback [--to N]`")


def _revision(rs: ReplicaSet, current: int | None) -> Revision:
    number = int(rs.metadata.annotations[names.REVISION])
    container = rs.spec.template.spec.container(names.CONTAINER)
    return Revision(
        number=number,
        image=container.image if container else "?",
        model_version=recorded_version(rs.metadata.annotations),
        change_cause=rs.metadata.annotations.get(names.CHANGE_CAUSE, ""),
        pods=rs.status.replicas,
        ready=rs.status.ready_replicas,
        current=number == current,
    )
