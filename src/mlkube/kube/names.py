"""The notes' object names (Part 4), which the manifests in deploy/kubernetes/ keep."""

from __future__ import annotations

DEPLOYMENT = "ml-model-deployment"
CONTAINER = "ml-model"
SERVICE = "ml-model-service"
HPA = "ml-model-hpa"
SECRET = "ml-model-secret"  # noqa: S105 - the Secret's name, not a value  # pragma: allowlist secret
SECRET_KEY = "API_KEY"  # noqa: S105 - the key's name in the Secret  # pragma: allowlist secret
PORT = 5000

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"
MODEL_VERSION_ANNOTATION = "mlkube.io/model-version"

MANIFESTS = "deploy/kubernetes"
