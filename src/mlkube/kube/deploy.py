"""`mlkube deploy`: the notes' steps 2-4 (apply, verify, test) as one command that waits and checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.rollout import wait_for_rollout
from mlkube.kube.secret import ensure_secret, local_key
from mlkube.kube.verify import smoke_service


@dataclass(frozen=True)
class DeployRequest:
    overlay: str = "minikube"
    manifests: Path = Path(names.MANIFESTS)
    api_key_file: Path | None = None
    deadline: float = 180.0
    poll: float = 1.0
    smoke: bool = True
    url: str | None = None


def overlay_dir(manifests: Path, overlay: str) -> Path:
    folder = manifests / "overlays" / overlay
    if not (folder / "kustomization.yaml").is_file():
        known = sorted(p.name for p in (manifests / "overlays").glob("*") if p.is_dir())
        where = (
            f"overlays here: {', '.join(known)}"
            if known
            else "run from the repository root or pass --manifests"
        )
        raise KubeError(f"no kustomize overlay at {folder} ({where})")
    return folder


def deploy(kubectl: Kubectl, request: DeployRequest) -> None:
    """Create the Secret if missing, apply the overlay, wait for the rollout, smoke-test the Service."""
    folder = overlay_dir(request.manifests, request.overlay)
    key = local_key(request.api_key_file)
    out = kubectl.out
    if not kubectl.dry_run:
        out.info(f"deploying overlay {request.overlay!r} to kubectl context {kubectl.current_context()!r}")
    ensure_secret(kubectl, key)
    applied = kubectl.run("apply", "-k", str(folder))
    for line in applied.stdout.splitlines():
        out.info(f"  {line}")
    deployment = wait_for_rollout(kubectl, deadline=request.deadline, poll=request.poll)
    if request.smoke:
        smoke_service(kubectl, url=request.url, api_key=key, expect_version=None)
    if deployment is not None:
        out.ok(f"deployed: {deployment.status.ready_replicas} of {deployment.desired} pods ready")
