"""`mlkube load --in-cluster`: the load generator as a Kubernetes Job beside the Service, in the image the
Deployment runs (`python -m mlkube load --url http://ml-model-service:5000`). Its requests go through the
Service's own load balancing to every pod, those the HPA adds included, instead of through one
port-forward that sticks to one pod. The key comes from the Secret the pods mount, as a file."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, Job
from mlkube.kube.replicas import ReplicaWatch
from mlkube.kube.secret import mounted_secret

JOB = "ml-model-load"
LABELS = {"app": JOB, "app.kubernetes.io/part-of": "mlkube", "app.kubernetes.io/managed-by": "mlkube"}
"""`app: ml-model-load`, never `app: ml-model`: the Service and the PDB must not select the load pods.
The production NetworkPolicy admits this label."""
KEY_DIR = "/etc/mlkube/secret"
START_ALLOWANCE = 120.0
"""Seconds beyond the load's duration for the Job's pod to be scheduled, pull its image and start."""


def load_command(rps: float, duration: float, every: float, concurrency: int, max_errors: float) -> list[str]:
    """What the Job's container runs: the same `mlkube load`, aimed at the Service by its cluster DNS name."""
    return [
        "python",
        "-m",
        "mlkube",
        "load",
        "--url",
        f"http://{names.SERVICE}:{names.PORT}",
        "--rps",
        f"{rps:g}",
        "--duration",
        f"{duration:g}s",
        "--every",
        f"{every:g}s",
        "--concurrency",
        str(concurrency),
        "--max-errors",
        f"{max_errors:g}",
        "--api-key-file",
        f"{KEY_DIR}/{names.SECRET_KEY}",
        "--no-watch",
    ]


def job_manifest(
    image: str, pull_policy: str, secret: str, command: list[str], duration: float
) -> dict[str, Any]:
    """The Job: one pod, no retry, restricted Pod Security, the key mounted read-only, gone 10 min after."""
    container: dict[str, Any] = {
        "name": "load",
        "image": image,
        "command": command,
        "resources": {
            "requests": {"cpu": "500m", "memory": "128Mi", "ephemeral-storage": "16Mi"},
            "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "64Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "api-key", "mountPath": KEY_DIR, "readOnly": True}],
    }
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": JOB, "labels": LABELS},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(duration + START_ALLOWANCE),
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "api-key",
                            "secret": {
                                "secretName": secret,
                                "defaultMode": 0o440,
                                "items": [{"key": names.SECRET_KEY, "path": names.SECRET_KEY}],
                            },
                        }
                    ],
                },
            },
        },
    }


def run_in_cluster(
    kubectl: Kubectl,
    command: list[str],
    duration: float,
    *,
    watch: bool = True,
    watch_every: float = 5.0,
    poll: float = 2.0,
) -> None:
    """Replace any earlier load Job, start this one, follow the replicas while it runs, print its output;
    KubeError when it fails (its own exit code: too many failed requests, or no answer)."""
    kubectl = kubectl.pinned()
    out = kubectl.out
    if kubectl.dry_run:
        kubectl.run("delete", "job", JOB, "--ignore-not-found", "--wait=true")
        kubectl.run("create", "-f", "-", stdin="", stdin_note=f"Job {JOB}: {' '.join(command)}")
        kubectl.run("logs", f"job/{JOB}", note="when it has finished")
        return
    deployment = kubectl.get(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=True)
    container = deployment.spec.template.spec.container(names.CONTAINER)
    if container is None or not container.image:
        raise KubeError(
            f"{names.DEPLOYMENT} has no container {names.CONTAINER!r}: nothing to take the image from"
        )
    secret = mounted_secret(deployment.spec.template.spec)
    manifest = job_manifest(container.image, container.image_pull_policy, secret, command, duration)
    kubectl.run("delete", "job", JOB, "--ignore-not-found", "--wait=true", note="an earlier run, if any")
    kubectl.run(
        "create",
        "-f",
        "-",
        stdin=msgspec.json.encode(manifest).decode(),
        stdin_note=f"Job {JOB} in image {container.image}: {' '.join(command[2:])}",
    )
    replicas = ReplicaWatch(kubectl, every=watch_every)
    watching = watch and replicas.start()
    try:
        job = wait_for_job(kubectl, deadline=duration + START_ALLOWANCE, poll=poll)
    finally:
        if watching:
            replicas.stop()
    logs = kubectl.run("logs", f"job/{JOB}", check=False)
    for line in logs.stdout.splitlines():
        out.info(f"  | {line}")
    if watching:
        out.info(replicas.summary())
    if not job.succeeded:
        raise KubeError(f"the load Job failed: {job.reason()} (`kubectl logs job/{JOB}`)")
    out.ok(f"the load Job finished: {JOB}")


def wait_for_job(kubectl: Kubectl, *, deadline: float, poll: float) -> Job:
    """Poll the Job until its Complete or Failed condition, or `deadline` seconds."""
    started = time.monotonic()
    while True:
        job = kubectl.get(Job, f"job/{JOB}", quiet=True)
        if job.succeeded or job.failed:
            return job
        if time.monotonic() - started >= deadline:
            raise KubeError(
                f"the load Job has not finished after {deadline:g}s (`kubectl describe job/{JOB}`)"
            )
        time.sleep(poll)
