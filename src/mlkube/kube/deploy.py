"""`mlkube deploy`: the notes' steps 2-4 (apply, verify, test) as one command that waits and checks.

The overlay's image is the one it deploys. When the cluster runs another one (`mlkube release` rolled it
out), applying the overlay would silently undo that release: `deploy` refuses, unless `--force`, and says
how to record the release in the overlay (`kustomize edit set image`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment
from mlkube.kube.pin import CONFIG, PIN_KEY, checked_digest, pinned_overlay
from mlkube.kube.rollout import wait_for_rollout
from mlkube.kube.runner import Completed
from mlkube.kube.secret import KEY_ENV, ensure_secret, local_key, mounted_secret, refuse_short_keys
from mlkube.kube.verify import smoke_rollout

_NAMESPACE = re.compile(r"^namespace:\s*(\S+)", re.MULTILINE)
_IMAGE_ENTRY = re.compile(r"^\s*-\s*name:\s*(\S+)\s*$")
_IMAGE_FIELD = re.compile(r"^\s+(newName|newTag|digest):\s*(\S+)\s*$")


@dataclass(frozen=True)
class DeployRequest:
    overlay: str = "minikube"
    manifests: Path = Path(names.MANIFESTS)
    api_key_file: Path | None = None
    deadline: float = 180.0
    poll: float = 1.0
    smoke: bool = True
    url: str | None = None
    force: bool = False
    model_sha256: str | None = None


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


def overlay_namespace(folder: Path) -> str | None:
    """The `namespace:` an overlay's kustomization.yaml sets for everything it renders, if any."""
    text = (folder / "kustomization.yaml").read_text(encoding="utf-8")
    match = _NAMESPACE.search(text)
    return match.group(1).strip("'\"") if match else None


def overlay_image(folder: Path, name: str = names.CONTAINER) -> str | None:
    """The image an overlay's `images:` entry for `name` sets (`newName:newTag@digest`), None without one."""
    fields: dict[str, str] | None = None
    for line in (folder / "kustomization.yaml").read_text(encoding="utf-8").splitlines():
        entry, field = _IMAGE_ENTRY.match(line), _IMAGE_FIELD.match(line)
        if entry and fields is not None:
            break  # the entry after ours
        if entry:
            fields = {} if entry.group(1).strip("'\"") == name else None
        elif fields is not None and field:
            fields[field.group(1)] = field.group(2).strip("'\"")
        elif fields is not None and line[:1] not in ("", " ", "\t", "#"):
            break  # the next top-level key
    if not fields:
        return None
    image = fields.get("newName", name) + (f":{fields['newTag']}" if "newTag" in fields else "")
    return image + (f"@{fields['digest']}" if "digest" in fields else "")


def refuse_undoing_a_release(kubectl: Kubectl, folder: Path) -> None:
    """KubeError when the Deployment runs another image than the overlay's: applying would replace it."""
    planned = overlay_image(folder)
    if planned is None:
        return
    running = kubectl.find(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=True)
    container = running.spec.template.spec.container(names.CONTAINER) if running else None
    if container is None or container.image == planned:
        return
    version = running.metadata.annotations.get(names.MODEL_VERSION_ANNOTATION) if running else None
    shown = f"{container.image}" + (f" (model {version})" if version else "")
    raise KubeError(
        f"the cluster runs {shown} and the overlay would put {planned} back, undoing that release. "
        f"Record the release in the overlay (`cd {folder} && kustomize edit set image "
        f"{names.CONTAINER}={container.image}`) and deploy again, or pass --force to deploy {planned}"
    )


def _apply(kubectl: Kubectl, folder: Path, digest: str | None) -> Completed:
    """`kubectl apply -k` the overlay; with a digest, through a kustomization that merges MODEL_SHA256
    into its ml-model-config (a new hashed name, so the pods roll and an undo keeps the old pin)."""
    if digest is None:
        return kubectl.run("apply", "-k", str(folder))
    with pinned_overlay(folder, digest) as pinned:
        note = f"{folder} with {PIN_KEY}={digest[:12]}… merged into {CONFIG}"
        return kubectl.run("apply", "-k", str(pinned), note=note)


def deploy(kubectl: Kubectl, request: DeployRequest) -> None:
    """Apply the overlay, create the Secret if missing, wait for the rollout, smoke-test each new pod."""
    folder = overlay_dir(request.manifests, request.overlay)
    key = local_key(request.api_key_file)
    refuse_short_keys(key, "--api-key-file" if request.api_key_file else f"${KEY_ENV}")
    digest = checked_digest(request.model_sha256) if request.model_sha256 else None
    namespace = overlay_namespace(folder)
    if namespace and not kubectl.target.namespace:
        kubectl = kubectl.in_namespace(namespace)
        kubectl.out.info(f"namespace {namespace!r} (set by the overlay)")
    kubectl = kubectl.pinned()
    out = kubectl.out
    if not kubectl.dry_run:
        out.info(
            f"deploying overlay {request.overlay!r} to kubectl context {kubectl.target.context!r}, "
            f"namespace {kubectl.target.namespace!r}"
        )
        if not request.force:
            refuse_undoing_a_release(kubectl, folder)
    applied = _apply(kubectl, folder, digest)
    for line in applied.stdout.splitlines():
        out.info(f"  {line}")
    # After the apply: the overlay may create the namespace, or generate the Secret under a hashed name.
    # Pods waiting for a missing Secret start as soon as it exists.
    created = (
        None if kubectl.dry_run else kubectl.find(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=True)
    )
    ensure_secret(kubectl, key, mounted_secret(created.spec.template.spec) if created else names.SECRET)
    deployment = wait_for_rollout(kubectl, deadline=request.deadline, poll=request.poll)
    if request.smoke:
        smoke_rollout(
            kubectl,
            url=request.url,
            api_key=key,
            expect_version=None,
            deadline=request.deadline,
            poll=request.poll,
        )
    if deployment is not None:
        out.ok(f"deployed: {deployment.status.ready_replicas} of {deployment.desired} pods ready")
