"""Wait for a Deployment's rollout the way `kubectl rollout status` judges it, with a deadline on progress
(like the controller's progressDeadlineSeconds, not on the total time), and say why it is stuck (image
missing, crash loop, missing Secret, unschedulable) when it does not finish."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlkube.kube import names
from mlkube.kube.errors import KubeError, RolloutFailed
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, ObjectList, Pod

_HINTS = {
    "ErrImageNeverPull": "the image is not on the node: `mlkube image build --minikube --tag {image}`",
    "InvalidImageName": "the image reference is malformed: check `--image` (name[:tag][@sha256:digest])",
    "ErrImagePull": "the image cannot be pulled: check its name and tag, and the registry's credentials",
    "ImagePullBackOff": "the image cannot be pulled: check its name and tag, and the registry's credentials",
    "CrashLoopBackOff": "the container keeps exiting: `kubectl logs {pod} --previous`",
    "CreateContainerConfigError": "a ConfigMap or Secret the pod needs is missing",
    "ContainerCreating": "if it stays, a volume is missing (the key's Secret?): `kubectl describe pod {pod}`",
}


_HOPELESS = ("ErrImageNeverPull", "InvalidImageName")
"""Waiting reasons the kubelet never retries its way out of: fail at once instead of at the deadline."""


@dataclass(frozen=True)
class RolloutState:
    done: bool
    message: str
    failed: bool = False


def evaluate(deployment: Deployment) -> RolloutState:
    """The rules of `kubectl rollout status`, as a pure function of the Deployment's status."""
    name = deployment.metadata.name
    status = deployment.status
    if deployment.metadata.generation > status.observed_generation:
        return RolloutState(False, "waiting for the controller to see the new spec")
    progressing = status.condition("Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return RolloutState(False, f"deployment {name!r} exceeded its progress deadline", failed=True)
    if deployment.spec.paused:
        return RolloutState(False, "the rollout is paused (`kubectl rollout resume deployment/" + name + "`)")
    desired = deployment.desired
    if status.updated_replicas < desired:
        return RolloutState(False, f"{status.updated_replicas} of {desired} new replicas updated")
    if status.replicas > status.updated_replicas:
        return RolloutState(
            False, f"{status.replicas - status.updated_replicas} old replicas pending termination"
        )
    if status.available_replicas < status.updated_replicas:
        return RolloutState(
            False, f"{status.available_replicas} of {status.updated_replicas} updated replicas available"
        )
    return RolloutState(True, f"deployment {name!r} successfully rolled out")


def wait_for_rollout(
    kubectl: Kubectl, *, deadline: float, poll: float = 1.0, name: str = names.DEPLOYMENT
) -> Deployment | None:
    """Poll the Deployment until it is rolled out. RolloutFailed (with the pods' reasons) when it makes no
    progress for `deadline` seconds (updated or available replicas growing, old ones going away resets
    the clock), when Kubernetes reports ProgressDeadlineExceeded, or at once when a pod's image can never
    start (ErrImageNeverPull, InvalidImageName). None in a dry run."""
    out = kubectl.out
    note = (
        f"every {poll:g}s until rolled out, as `kubectl rollout status deployment/{name}` judges it; "
        f"fails after {deadline:g}s without progress"
    )
    if kubectl.dry_run:
        kubectl.run("get", f"deployment/{name}", "-o", "json", note=note)
        return None
    out.command(kubectl.argv("get", f"deployment/{name}", "-o", "json"), note=note)
    started = time.monotonic()
    progress = _Progress()
    last = ""
    with out.spinner("waiting for the rollout") as show:
        while True:
            deployment = kubectl.get(Deployment, f"deployment/{name}", quiet=True)
            state = evaluate(deployment)
            now = time.monotonic()
            progress.observe(deployment, now)
            if state.message != last:
                out.info(f"  {now - started:5.1f}s  {state.message}")
            show(f"rollout: {state.message} ({now - progress.since:.0f}s without progress of {deadline:g}s)")
            if state.done:
                return deployment
            if state.failed:
                raise RolloutFailed(state.message + diagnose(kubectl, deployment))
            if state.message == last and (hopeless := hopeless_pod(kubectl, deployment)):
                raise RolloutFailed(f"the rollout cannot succeed ({state.message}): {hopeless}")
            last = state.message
            stalled = now - progress.since
            if stalled >= deadline:
                raise RolloutFailed(
                    f"not rolled out: no progress for {deadline:g}s ({state.message})"
                    + diagnose(kubectl, deployment)
                )
            time.sleep(min(poll, max(0.0, deadline - stalled)))


class _Progress:
    """When the rollout last moved: more updated or available replicas, or fewer in all (old ones gone)."""

    def __init__(self) -> None:
        self.since = 0.0
        self._best: tuple[int, int, int] | None = None

    def observe(self, deployment: Deployment, now: float) -> None:
        status = deployment.status
        updated, available, gone = status.updated_replicas, status.available_replicas, -status.replicas
        best = self._best
        if best is None or updated > best[0] or available > best[1] or gone > best[2]:
            self.since = now
        if best is None:
            self._best = (updated, available, gone)
        else:
            self._best = (max(updated, best[0]), max(available, best[1]), max(gone, best[2]))


def hopeless_pod(kubectl: Kubectl, deployment: Deployment) -> str | None:
    """The problem of the first pod whose image can never start, or None."""
    selector = deployment.spec.selector.as_arg()
    if not selector:
        return None
    try:
        pods = kubectl.get(ObjectList[Pod], "pods", "-l", selector, quiet=True).items
    except KubeError:
        return None
    for pod in pods:
        waiting = [s.state.waiting.reason for s in pod.status.container_statuses if s.state.waiting]
        if not pod.terminating and any(reason in _HOPELESS for reason in waiting):
            return pod_problem(pod)
    return None


def diagnose(kubectl: Kubectl, deployment: Deployment) -> str:
    """`; pod X: ErrImageNeverPull (...) - hint` for the first pods that are not ready, or ``."""
    selector = deployment.spec.selector.as_arg()
    if not selector:
        return ""
    try:
        pods = kubectl.get(ObjectList[Pod], "pods", "-l", selector, quiet=True).items
    except KubeError:
        return ""
    reasons = [reason for pod in pods if (reason := pod_problem(pod))]
    return "".join(f"; {reason}" for reason in reasons[:3])


def pod_problem(pod: Pod) -> str | None:
    """Why a pod is not ready, in one phrase with a hint; None when it is ready or terminating."""
    if pod.ready or pod.terminating:
        return None
    name = pod.metadata.name
    for condition in pod.status.conditions:
        if condition.type == "PodScheduled" and condition.status == "False":
            return f"pod {name} cannot be scheduled: {condition.message or condition.reason}"
    for status in pod.status.container_statuses:
        waiting = status.state.waiting
        if waiting is not None and waiting.reason:
            container = pod.spec.container(status.name)
            image = container.image if container and container.image else "IMAGE"
            hint = _HINTS.get(waiting.reason, "`kubectl describe pod {pod}`").format(pod=name, image=image)
            detail = f" ({waiting.message})" if waiting.message else ""
            last = status.last_state.terminated
            if last is not None and last.reason:
                detail += f" (last exit: {last.reason}, code {last.exit_code})"
            if last is not None and last.reason == "OOMKilled":
                hint = "it ran out of memory: raise resources.limits.memory"
            return f"pod {name}: {waiting.reason}{detail} - {hint}"
        if status.state.running is not None and not status.ready:
            return (
                f"pod {name} runs but is not ready: its readiness probe fails (`kubectl describe pod {name}`)"
            )
    return f"pod {name} is {pod.status.phase or 'starting'}"
