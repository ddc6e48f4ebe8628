"""`mlkube status`: the notes' `kubectl get all` for this app, plus what each pod says about itself."""

from __future__ import annotations

import msgspec

from mlkube.api.simple import Readiness
from mlkube.kube import names
from mlkube.kube.endpoint import is_minikube_profile, minikube, minikube_service_url, port_forward
from mlkube.kube.errors import KubeError
from mlkube.kube.history import current_revision
from mlkube.kube.httpclient import HttpClient, TransportError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, HorizontalPodAutoscaler, ObjectList, Pod, Service


def status(kubectl: Kubectl, *, versions: bool = True) -> None:
    out = kubectl.out
    deployment = kubectl.get(Deployment, f"deployment/{names.DEPLOYMENT}")
    pods = kubectl.get(ObjectList[Pod], "pods", "-l", deployment.spec.selector.as_arg()).items
    hpa = kubectl.find(HorizontalPodAutoscaler, f"hpa/{names.HPA}")
    service = kubectl.find(Service, f"service/{names.SERVICE}")
    out.info("")
    out.info(deployment_line(deployment))
    reported = {pod.metadata.name: pod_version(kubectl, pod) for pod in pods} if versions else {}
    out.table(
        ["POD", "READY", "RESTARTS", "NODE", "STATUS", "VERSION"],
        [pod_row(pod, reported.get(pod.metadata.name, "-")) for pod in pods],
        indent="  ",
    )
    out.info(hpa_line(hpa))
    out.info(service_line(kubectl, service))


def deployment_line(deployment: Deployment) -> str:
    s = deployment.status
    container = deployment.spec.template.spec.container(names.CONTAINER)
    image = container.image if container else "?"
    return (
        f"Deployment {deployment.metadata.name}: {s.ready_replicas}/{deployment.desired} ready, "
        f"{s.updated_replicas} up to date, {s.available_replicas} available; image {image}, "
        f"revision {current_revision(deployment)}" + (" (paused)" if deployment.spec.paused else "")
    )


def pod_row(pod: Pod, version: str) -> list[str]:
    statuses = pod.status.container_statuses
    ready = sum(1 for c in statuses if c.ready)
    restarts = sum(c.restart_count for c in statuses)
    return [
        pod.metadata.name,
        f"{ready}/{len(statuses) or len(pod.spec.containers)}",
        str(restarts),
        pod.spec.node_name or "-",
        pod_phase(pod),
        version,
    ]


def pod_phase(pod: Pod) -> str:
    """kubectl's STATUS column: Terminating, a waiting reason (CrashLoopBackOff...), else the phase."""
    if pod.terminating:
        return "Terminating"
    for container in pod.status.container_statuses:
        if container.state.waiting is not None and container.state.waiting.reason:
            return container.state.waiting.reason
    return pod.status.phase or "Unknown"


def pod_version(kubectl: Kubectl, pod: Pod) -> str:
    """The version the pod reports on /ready, through a port-forward to that one pod."""
    if not pod.ready or pod.terminating:
        return "-"
    try:
        with (
            port_forward(kubectl, f"pod/{pod.metadata.name}", names.PORT) as url,
            HttpClient(url, timeout=3) as client,
        ):
            reply = client.get("/ready")
        return msgspec.json.decode(reply.body, type=Readiness).version or "?"
    except (KubeError, msgspec.DecodeError, *TransportError) as error:
        return f"? ({error})"


def hpa_line(hpa: HorizontalPodAutoscaler | None) -> str:
    if hpa is None:
        return f"HPA {names.HPA}: none"
    target = hpa.cpu_target()
    current = hpa.cpu_current()
    shown = (
        f"{current}%"
        if current is not None
        else "<unknown> (metrics-server? `minikube addons enable metrics-server`)"
    )
    return (
        f"HPA {hpa.metadata.name}: CPU {shown} of target {target}%, replicas {hpa.status.current_replicas} "
        f"(desired {hpa.status.desired_replicas}, min {hpa.spec.min_replicas}, max {hpa.spec.max_replicas})"
    )


def service_line(kubectl: Kubectl, service: Service | None) -> str:
    if service is None:
        return f"Service {names.SERVICE}: none"
    port = service.spec.ports[0] if service.spec.ports else None
    ports = f"{port.port}" + (f":{port.node_port}" if port and port.node_port else "") if port else "-"
    head = f"Service {service.metadata.name}: {service.spec.type} {service.spec.cluster_ip} port {ports}"
    if service.spec.type in ("NodePort", "LoadBalancer"):
        url = _minikube_url(kubectl)
        if url:
            return f"{head}; URL {url}"
    return f"{head}; from here: `kubectl port-forward service/{names.SERVICE} {names.PORT}:{names.PORT}`"


def _minikube_url(kubectl: Kubectl) -> str | None:
    runner = minikube(kubectl.out)
    context = kubectl.current_context()
    if not is_minikube_profile(runner, context):
        return None
    try:
        with minikube_service_url(runner, context, kubectl.target.namespace, timeout=20) as url:
            return url
    except KubeError:
        return None
