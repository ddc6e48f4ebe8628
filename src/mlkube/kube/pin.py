"""Pinning the bundle: `MODEL_SHA256` in the ConfigMap the pods read (README, "Pinning the bundle").

The pin belongs to a revision, with its image: a pod of the previous revision, restarted or brought back by
`kubectl rollout undo`, must keep the pin of its own bundle. So the pin is never written into the ConfigMap
in use; as kustomize's generator does, a new ConfigMap named after its content is made and the revision
points at it. `deploy` merges the key into the overlay's generated `ml-model-config` (kustomize hashes
the result and rewrites the reference); `release` copies the Deployment's ConfigMap with the key set and
changes the image and the reference in one patch, so one revision."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkube.errors import ConfigError
from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, decode

CONFIG = "ml-model-config"
PIN_KEY = "MODEL_SHA256"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_HASH_SUFFIX = re.compile(r"-[0-9a-z]{10}$")


def checked_digest(digest: str) -> str:
    """The digest in lower case; ConfigError unless it is 64 hexadecimal digits."""
    value = digest.strip().lower()
    if not _DIGEST.match(value):
        raise ConfigError(
            f"--model-sha256 {digest!r}: expected 64 hexadecimal digits "
            "(the bundle digest `mlkube models show` prints)"
        )
    return value


@contextmanager
def pinned_overlay(folder: Path, digest: str) -> Iterator[Path]:
    """A temporary kustomization: the overlay, with MODEL_SHA256 merged into its ml-model-config."""
    with tempfile.TemporaryDirectory(prefix="mlkube-pinned-") as scratch:
        relative = os.path.relpath(folder.resolve(), Path(scratch).resolve())
        (Path(scratch) / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"resources:\n  - {relative}\n"
            f"configMapGenerator:\n  - name: {CONFIG}\n    behavior: merge\n"
            f"    literals:\n      - {PIN_KEY}={digest}\n",
            encoding="utf-8",
        )
        yield Path(scratch)


@dataclass(frozen=True)
class PinnedConfig:
    """Where the Deployment's ConfigMap reference is (container and envFrom positions) and the name of the
    pinned copy to point it at."""

    container: int
    env_from: int
    name: str


def pin_config(kubectl: Kubectl, deployment: Deployment, digest: str) -> PinnedConfig:
    """Apply a copy of the Deployment's ConfigMap with MODEL_SHA256 set, named after its content."""
    container, env_from, current = _config_ref(deployment)
    found = decode(kubectl.run("get", "configmap", current, "-o", "json", quiet=True).stdout, dict[str, Any])
    data = {**found.get("data", {}), PIN_KEY: digest}
    content = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{_HASH_SUFFIX.sub('', current)}-{content}"
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": found.get("metadata", {}).get("labels", {})},
        "data": data,
    }
    kubectl.run(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(manifest),
        stdin_note=f"ConfigMap {name}: {current} with {PIN_KEY}={digest[:12]}…",
    )
    return PinnedConfig(container, env_from, name)


def image_and_config_patch(pinned: PinnedConfig, image: str) -> str:
    """A JSON patch setting the image and the ConfigMap reference together: one new revision."""
    container = f"/spec/template/spec/containers/{pinned.container}"
    return json.dumps(
        [
            {"op": "replace", "path": f"{container}/image", "value": image},
            {
                "op": "replace",
                "path": f"{container}/envFrom/{pinned.env_from}/configMapRef/name",
                "value": pinned.name,
            },
        ]
    )


def _config_ref(deployment: Deployment) -> tuple[int, int, str]:
    for index, container in enumerate(deployment.spec.template.spec.containers):
        if container.name != names.CONTAINER:
            continue
        for position, source in enumerate(container.env_from):
            if source.config_map_ref is not None and source.config_map_ref.name:
                return index, position, source.config_map_ref.name
    raise KubeError(
        f"container {names.CONTAINER} of {names.DEPLOYMENT} reads no ConfigMap (envFrom): "
        f"nowhere to pin {PIN_KEY}; deploy the overlay first"
    )
