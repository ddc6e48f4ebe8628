"""What can go wrong talking to a cluster, each as one line a learner can act on."""

from __future__ import annotations

from mlkube.errors import MlkubeError


class KubeError(MlkubeError):
    """A kubectl/docker/minikube step failed; the message says which and what to do."""


class ToolMissing(KubeError):
    """A command-line tool (kubectl, docker, podman, minikube, kind) is not on PATH."""


class ClusterUnreachable(KubeError):
    """kubectl has no cluster to talk to, or the cluster does not answer."""


class WrongContext(KubeError):
    """The kubectl context asked for does not exist in the kubeconfig."""


class ObjectNotFound(KubeError):
    """A Kubernetes object mlkube expects (Deployment, Service...) is not in the namespace."""


class RolloutFailed(KubeError):
    """A rollout did not finish before its deadline, or Kubernetes gave up on it."""


class SmokeFailed(KubeError):
    """The service answered, but not as it should (or not at all)."""


class ReleaseFailed(KubeError):
    """A release was rolled back; the message says why and whether the old version answers again."""
