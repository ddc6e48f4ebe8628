"""Kubernetes objects as `kubectl get -o json` prints them, trimmed to what mlkube reads; for scenarios."""

from __future__ import annotations

from typing import Any

DEPLOYMENT_UID = "uid-deployment-1"
SELECTOR = {"app": "ml-model"}


def _container(image: str, version: str | None) -> dict[str, Any]:
    env = [{"name": "MODEL_VERSION", "value": version}] if version else []
    return {"name": "ml-model", "image": image, "env": env}


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
) -> dict[str, Any]:
    """A Deployment; by default rolled out with `replicas` pods, the key mounted from Secret `mounts`."""
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "ml-model-deployment",
            "uid": DEPLOYMENT_UID,
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": str(revision), **(annotations or {})},
        },
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": SELECTOR},
                "spec": {
                    "containers": [_container(image, version)],
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
    version_annotation: str | None = None,
) -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    if version_annotation:
        annotations["mlkube.io/model-version"] = version_annotation
    return {
        "metadata": {
            "name": f"ml-model-deployment-rs{revision}",
            "annotations": annotations,
            "ownerReferences": [{"kind": "Deployment", "name": "ml-model-deployment", "uid": owner}],
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [_container(image, version)]}}},
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
) -> dict[str, Any]:
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    )
    return {
        "metadata": {"name": name, "labels": SELECTOR},
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
