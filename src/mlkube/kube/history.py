"""`mlkube history`: `kubectl rollout history` plus what it leaves out: each revision's image and model
version, read from the Deployment's ReplicaSets (one per revision, `deployment.kubernetes.io/revision`)."""

from __future__ import annotations

from dataclasses import dataclass

from mlkube.kube import names
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, ObjectList, PodTemplate, ReplicaSet
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


def recorded_version(template: PodTemplate, annotations: dict[str, str]) -> str | None:
    """The version a revision's pods report: the pod template's MODEL_VERSION (what `mlkube release`
    sets), else mlkube's annotation, else unknown (a ConfigMap value is not part of the revision)."""
    container = template.spec.container(names.CONTAINER)
    from_env = container.env_value(names.MODEL_VERSION_ENV) if container else None
    return from_env or annotations.get(names.MODEL_VERSION_ANNOTATION)


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
        model_version=recorded_version(rs.spec.template, rs.metadata.annotations),
        change_cause=rs.metadata.annotations.get(names.CHANGE_CAUSE, ""),
        pods=rs.status.replicas,
        ready=rs.status.ready_replicas,
        current=number == current,
    )
