"""Kubernetes objects as `kubectl get -o json` prints them, trimmed to what mlkube reads; for scenarios.

As the controllers make them: a ReplicaSet and its pods carry the `pod-template-hash` label; a pod being
deleted keeps `Ready` True (it drains) and gains `metadata.deletionTimestamp`; the model version
`mlkube release` records is the Deployment's annotation mlkube.io/model-version, which the deployment
controller copies onto the ReplicaSet of that revision (never an env var of the pod template)."""

from __future__ import annotations

from typing import Any

DEPLOYMENT_UID = "uid-deployment-1"
SELECTOR = {"app": "ml-model"}


VERSION_ANNOTATION = "mlkube.io/model-version"


def _container(image: str, pull_policy: str = "IfNotPresent") -> dict[str, Any]:
    return {"name": "ml-model", "image": image, "imagePullPolicy": pull_policy}


def template_hash(revision: int) -> str:
    """A pod-template-hash as the controller writes it (ten characters), one per revision here."""
    return f"5c4b9d{revision:04d}"


def deployment(
    *,
    generation: int = 1,
    observed: int | None = None,
    replicas: int = 2,
    updated: int | None = None,
    ready: int | None = None,
    available: int | None = None,
    total: int | None = None,
    image: str = "ml-model:v2",
    version: str | None = None,
    revision: int = 1,
    paused: bool = False,
    conditions: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
    mounts: str = "ml-model-secret",
    pull_policy: str = "IfNotPresent",
) -> dict[str, Any]:
    """A Deployment; by default rolled out with `replicas` pods, the key mounted from the object `mounts`;
    `version` is what `mlkube release` recorded in its annotation."""
    recorded = {VERSION_ANNOTATION: version} if version else {}
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "ml-model-deployment",
            "uid": DEPLOYMENT_UID,
            "generation": generation,
            "annotations": {
                "deployment.kubernetes.io/revision": str(revision),
                **recorded,
                **(annotations or {}),
            },
        },
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": SELECTOR},
                "spec": {
                    "containers": [_container(image, pull_policy)],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {
                            "name": "api-key",
                            "secret": {
                                "secretName": mounts,
                                "items": [{"key": "API_KEY", "path": "API_KEY"}],
                            },
                        },
                    ],
                },
            },
        },
        "status": {
            "observedGeneration": generation if observed is None else observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": replicas if updated is None else updated,
            "readyReplicas": replicas if ready is None else ready,
            "availableReplicas": replicas if available is None else available,
            "conditions": conditions or [],
        },
    }


def replicaset(
    revision: int,
    image: str,
    *,
    version: str | None = None,
    cause: str | None = None,
    replicas: int = 0,
    ready: int = 0,
    owner: str = DEPLOYMENT_UID,
    template_of: int | None = None,
) -> dict[str, Any]:
    """The ReplicaSet of one revision; `version` as copied from the Deployment's annotation. After
    `kubectl rollout undo`, the old ReplicaSet keeps its pod template (and hash) under a new revision
    number: `template_of` is the revision it was first made for."""
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    if version:
        annotations[VERSION_ANNOTATION] = version
    labels = {**SELECTOR, "pod-template-hash": template_hash(template_of or revision)}
    return {
        "metadata": {
            "name": f"ml-model-deployment-{labels['pod-template-hash']}",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"kind": "Deployment", "name": "ml-model-deployment", "uid": owner}],
        },
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [_container(image)]}},
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def pod(
    name: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    node: str = "minikube",
    waiting: str | None = None,
    message: str = "",
    phase: str = "Running",
    image: str = "ml-model:v3",
    revision: int | None = None,
    terminating: bool = False,
) -> dict[str, Any]:
    """A pod; of the ReplicaSet of `revision` (its pod-template-hash) when given; `terminating`: deleted
    and draining, still Ready as the kubelet leaves it until the container stops."""
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    )
    labels = dict(SELECTOR)
    if revision is not None:
        labels["pod-template-hash"] = template_hash(revision)
    deleting = (
        {"deletionTimestamp": "2026-12-01T05:14:07Z", "deletionGracePeriodSeconds": 30} if terminating else {}
    )
    return {
        "metadata": {"name": name, "labels": labels, **deleting},
        "spec": {"nodeName": node, "containers": [{"name": "ml-model", "image": image}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "ml-model", "ready": ready, "restartCount": restarts, "state": state}
            ],
        },
    }


def items(*objects: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "List", "items": list(objects)}


def service(kind: str = "NodePort", node_port: int | None = 31234) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 5000, "targetPort": 5000}
    if node_port:
        port["nodePort"] = node_port
    return {
        "metadata": {"name": "ml-model-service"},
        "spec": {"type": kind, "clusterIP": "10.0.0.7", "ports": [port]},
    }


def hpa(
    current: int | None = 12, replicas: int = 2, desired: int = 2, lo: int = 2, hi: int = 5
) -> dict[str, Any]:
    metrics = (
        [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}]
        if current is not None
        else []
    )
    return {
        "metadata": {"name": "ml-model-hpa"},
        "spec": {
            "minReplicas": lo,
            "maxReplicas": hi,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }
            ],
        },
        "status": {"currentReplicas": replicas, "desiredReplicas": desired, "currentMetrics": metrics},
    }


def job(*, active: int = 0, succeeded: int = 0, failed: int = 0, message: str = "") -> dict[str, Any]:
    """A Job as the job controller reports it: Complete (after SuccessCriteriaMet, Kubernetes 1.31+) or
    Failed with its reason."""
    conditions: list[dict[str, str]] = []
    if succeeded:
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
        ]
    if failed:
        conditions = [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": message},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message},
        ]
    status: dict[str, Any] = {"conditions": conditions} if conditions else {}
    for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
    return {"kind": "Job", "metadata": {"name": "ml-model-load"}, "status": status}
