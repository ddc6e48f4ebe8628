"""The API-key Secret (`ml-model-secret`, key `API_KEY`): the key travels on stdin, never in argv/output."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from mlkube.errors import ConfigError
from mlkube.kube import names
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, PodSpec
from mlkube.settings import MIN_KEY_LENGTH

KEY_ENV = "MLKUBE_API_KEY"


def local_key(api_key_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The key from --api-key-file, else from $MLKUBE_API_KEY, else None. Surrounding blanks dropped."""
    if api_key_file is not None:
        try:
            text = api_key_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"cannot read --api-key-file {str(api_key_file)!r}: {error.strerror}") from None
        if not text:
            raise ConfigError(f"--api-key-file {str(api_key_file)!r} is empty")
        return text
    value = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    return value or None


def refuse_short_keys(keys: str | None, source: str) -> None:
    """ConfigError when a key (of a comma/newline list) is shorter than the server accepts, before anything
    is applied: pods given it would refuse to start. The message gives lengths, never the key."""
    if keys is None:
        return
    listed = [key.strip() for key in keys.replace("\n", ",").split(",") if key.strip()]
    for position, key in enumerate(listed, start=1):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"the API key from {source}: key {position} of {len(listed)} has {len(key)} characters, "
                f"fewer than the {MIN_KEY_LENGTH} the server requires; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )


def first_key(keys: str) -> str:
    """The server accepts a comma/newline list (for rotation); a client sends the first."""
    return keys.replace("\n", ",").split(",")[0].strip()


def secret_manifest(key: str, name: str = names.SECRET) -> str:
    """The Secret as JSON for `kubectl create -f -` (`create`, not `apply`: no copy in an annotation)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "labels": {"app": "ml-model", "app.kubernetes.io/managed-by": "mlkube"}},
        "data": {names.SECRET_KEY: base64.b64encode(key.encode()).decode()},
    }
    return msgspec.json.encode(manifest).decode()


def secret_exists(kubectl: Kubectl, name: str = names.SECRET) -> bool:
    completed = kubectl.run("get", "secret", name, "-o", "name", "--ignore-not-found")
    return bool(completed.stdout.strip())


def ensure_secret(kubectl: Kubectl, key: str | None, name: str = names.SECRET) -> None:
    """Create the Secret when it is missing and a key was given; never replace an existing one."""
    out = kubectl.out
    if kubectl.dry_run:
        kubectl.run("get", "secret", name, "-o", "name", "--ignore-not-found")
        shown = "<from --api-key-file or $MLKUBE_API_KEY>" if key else "<no key given: would not create>"
        kubectl.run(
            "create",
            "-f",
            "-",
            stdin="",
            stdin_note=f"Secret {name} {{{names.SECRET_KEY}: {shown}}}",
            note="only if the Secret is missing",
        )
        return
    if secret_exists(kubectl, name):
        out.ok(f"Secret {name} exists (kept as it is)")
        return
    if key is None:
        out.warn(
            f"Secret {name} is missing and no key was given (--api-key-file FILE or ${KEY_ENV}): "
            "unless the overlay generates it (components/api-key-secret), the pods will not start"
        )
        return
    kubectl.run(
        "create",
        "-f",
        "-",
        stdin=secret_manifest(key, name),
        stdin_note=f"Secret {name} {{{names.SECRET_KEY}: <hidden>}}",
    )
    out.ok(f"Secret {name} created; the key was piped on stdin and is not shown")


def mounted_secret(spec: PodSpec) -> str:
    """The Secret the pods take their key from: a secret volume or envFrom (a generator may have added
    a hash suffix to its name), else the notes' name."""
    for volume in spec.volumes:
        mounted = volume.secret
        keys = [item.key for item in mounted.items] if mounted and mounted.items else [names.SECRET_KEY]
        if mounted and mounted.secret_name and names.SECRET_KEY in keys:
            return mounted.secret_name
    for container in spec.containers:
        for source in container.env_from:
            if source.secret_ref is not None and source.secret_ref.name:
                return source.secret_ref.name
    return names.SECRET


def cluster_key(kubectl: Kubectl) -> str | None:
    """The first key in the Secret the Deployment uses (to call the service), or None without one."""
    if kubectl.dry_run:
        return None
    deployment = kubectl.find(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=True)
    name = mounted_secret(deployment.spec.template.spec) if deployment else names.SECRET
    completed = kubectl.run(
        "get",
        "secret",
        name,
        "-o",
        f"jsonpath={{.data.{names.SECRET_KEY}}}",
        "--ignore-not-found",
        note="the value is used, not shown",
    )
    encoded = completed.stdout.strip()
    if not encoded:
        return None
    return first_key(base64.b64decode(encoded).decode("utf-8", errors="replace"))
