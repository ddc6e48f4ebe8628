"""`mlkube release` and `mlkube rollback`: the notes' rolling update and rollback, with a deadline on
progress, a smoke test of each new pod, and an automatic `kubectl rollout undo` when either fails. The
context and namespace are resolved once, first, and passed on every kubectl call, the undo included."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlkube.errors import ConfigError
from mlkube.kube import names
from mlkube.kube.errors import KubeError, ReleaseFailed, RolloutFailed, SmokeFailed
from mlkube.kube.history import current_revision, recorded_version, revisions
from mlkube.kube.image import tag_of
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment
from mlkube.kube.pin import PIN_KEY, PinnedConfig, checked_digest, image_and_config_patch, pin_config
from mlkube.kube.rollout import wait_for_rollout
from mlkube.kube.secret import local_key
from mlkube.kube.verify import probe_version, smoke_rollout

_DEPLOYMENT = f"deployment/{names.DEPLOYMENT}"


@dataclass(frozen=True)
class Checks:
    """How a rollout is judged: its deadline (seconds without progress, and for the smoke test to pass),
    the URL to test (default: each new pod), the API key."""

    deadline: float = 180.0
    poll: float = 1.0
    url: str | None = None
    api_key_file: Path | None = None
    smoke: bool = True
    model_sha256: str | None = None
    """Pin the bundle: MODEL_SHA256 in a copy of the Deployment's ConfigMap, part of the new revision."""


def version_from_image(image: str) -> str | None:
    """The model version an image carries in its tag (`mlkube image build` builds it in)."""
    return tag_of(image)


def release(kubectl: Kubectl, image: str, model_version: str | None, checks: Checks) -> None:
    """Roll out `image`; on a stalled rollout or a failed smoke test, undo it and raise ReleaseFailed."""
    version = model_version or version_from_image(image)
    if not version:
        raise ConfigError(f"cannot tell the model version from {image!r} (no tag): pass --model-version")
    digest = checked_digest(checks.model_sha256) if checks.model_sha256 else None
    key = local_key(checks.api_key_file)
    kubectl = kubectl.pinned()
    out = kubectl.out
    if kubectl.dry_run:
        if digest:
            out.info(f"(dry run) then: a copy of the Deployment's ConfigMap with {PIN_KEY}={digest} applied")
        _change(kubectl, image, version)
        wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll)
        _smoke(kubectl, key, version, checks)
        out.info(f"(dry run) on failure: kubectl rollout undo {_DEPLOYMENT} --to-revision=<the current one>")
        return
    before = kubectl.get(Deployment, _DEPLOYMENT)
    old_revision = current_revision(before)
    old_version = recorded_version(before.metadata.annotations)
    out.info(
        f"releasing {image} (model {version}) to context {kubectl.target.context!r}, "
        f"namespace {kubectl.target.namespace!r}; "
        f"now revision {old_revision}: {_image(before)} (model {old_version or 'not recorded'})"
    )
    if old_version is None and checks.smoke:
        old_version = probe_version(kubectl, url=checks.url, api_key=key)
    _change(kubectl, image, version, pin_config(kubectl, before, digest) if digest else None)
    try:
        wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll)
        if checks.smoke:
            _smoke(kubectl, key, version, checks)
    except (RolloutFailed, SmokeFailed) as failure:
        _undo(kubectl, str(failure), old_revision, old_version, key, checks)
    after = kubectl.get(Deployment, _DEPLOYMENT, quiet=True)
    out.ok(f"released {image} (model {version}) as revision {current_revision(after)}")


def rollback(kubectl: Kubectl, to: int | None, checks: Checks) -> None:
    """`kubectl rollout undo [--to-revision=N]`, wait, then check the version that revision recorded."""
    key = local_key(checks.api_key_file)
    kubectl = kubectl.pinned()
    if kubectl.dry_run:
        kubectl.run("rollout", "undo", _DEPLOYMENT, *([f"--to-revision={to}"] if to else []))
        wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll)
        _smoke(kubectl, key, None, checks)
        return
    known = revisions(kubectl)
    current = next((r for r in known if r.current), None)
    if to is not None:
        target = next((r for r in known if r.number == to), None)
        if target is None:
            listed = ", ".join(str(r.number) for r in known) or "none"
            raise KubeError(f"no revision {to} of {names.DEPLOYMENT} (revisions kept: {listed})")
    else:
        older = [r for r in known if current is not None and r.number < current.number]
        if not older:
            raise KubeError(
                f"nothing to roll back to: {names.DEPLOYMENT} has no revision before the current one"
            )
        target = older[-1]
    shown = f"{target.image} (model {target.model_version or 'unknown'})"
    kubectl.out.info(f"rolling back to revision {target.number}: {shown}")
    kubectl.run("rollout", "undo", _DEPLOYMENT, *([f"--to-revision={to}"] if to else []))
    wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll)
    if checks.smoke:
        _smoke(kubectl, key, target.model_version, checks)
    kubectl.out.ok(
        f"rolled back: {names.DEPLOYMENT} runs {target.image} (model {target.model_version or 'unknown'})"
    )


def _change(kubectl: Kubectl, image: str, version: str, pinned: PinnedConfig | None = None) -> None:
    """The notes' `kubectl set image` (with a pin: the image and the pinned ConfigMap in one patch), then
    the change-cause on the new revision (after, not before: the controller copies the Deployment's
    annotations onto the ReplicaSet of the current template)."""
    if pinned is None:
        kubectl.run("set", "image", _DEPLOYMENT, f"{names.CONTAINER}={image}")
    else:
        patch = image_and_config_patch(pinned, image)
        kubectl.run("patch", _DEPLOYMENT, "--type=json", "-p", patch, note="image and pin: one revision")
    kubectl.run(
        "annotate",
        _DEPLOYMENT,
        "--overwrite",
        f"{names.CHANGE_CAUSE}=mlkube release {image} (model {version})",
        f"{names.MODEL_VERSION_ANNOTATION}={version}",
        note="shown by `kubectl rollout history`",
    )


def _undo(
    kubectl: Kubectl, reason: str, revision: int | None, version: str | None, key: str | None, checks: Checks
) -> None:
    out = kubectl.out
    out.fail(f"release failed: {reason}")
    out.info(f"rolling back to revision {revision}")
    try:
        kubectl.run("rollout", "undo", _DEPLOYMENT, *([f"--to-revision={revision}"] if revision else []))
        wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll)
    except KubeError as again:
        raise ReleaseFailed(f"{reason}; the rollback did not recover either: {again}") from None
    if checks.smoke:
        try:
            _smoke(kubectl, key, version, checks)
        except KubeError as again:
            raise ReleaseFailed(
                f"{reason}; rolled back to revision {revision}, but it fails: {again}"
            ) from None
    answering = version or "the old version"
    raise ReleaseFailed(f"{reason}; rolled back to revision {revision}: {answering} answers again")


def _smoke(kubectl: Kubectl, key: str | None, version: str | None, checks: Checks) -> None:
    smoke_rollout(
        kubectl,
        url=checks.url,
        api_key=key,
        expect_version=version,
        deadline=checks.deadline,
        poll=checks.poll,
    )


def _image(deployment: Deployment) -> str:
    container = deployment.spec.template.spec.container(names.CONTAINER)
    return container.image if container else "?"
