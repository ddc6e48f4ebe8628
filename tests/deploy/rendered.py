"""Render the kustomize overlays with the real `kubectl kustomize` and read the result.

Variants: each overlay as committed, and each overlay with every component added (rendered in a temporary
copy of deploy/kubernetes, with a throw-away key in the git-ignored secret.env the Secret component needs).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import KUBE_DIR, explain, run, tool

OVERLAYS = ("minikube", "production")
COMPONENTS = ("api-key-secret", "ingress")
VARIANTS = (*OVERLAYS, *(f"{overlay}+components" for overlay in OVERLAYS))

Doc = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One rendered variant: the YAML file kubectl produced and its documents."""

    variant: str
    path: Path
    docs: list[Doc]
    api_key: str | None = None

    @property
    def overlay(self) -> str:
        return self.variant.split("+")[0]

    def all(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> Doc:
        found = self.all(kind)
        assert len(found) == 1, f"{self.variant}: expected one {kind}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> Doc:
        return self.one("Deployment")

    @property
    def pod_spec(self) -> Doc:
        spec: Doc = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Doc:
        containers = self.pod_spec["containers"]
        assert len(containers) == 1, f"{self.variant}: expected one container"
        container: Doc = containers[0]
        return container


def pod_env(rendered: Rendered) -> dict[str, str]:
    """What the server sees: the ConfigMap's keys (envFrom), then the container's own env."""
    env: dict[str, str] = {}
    for source in rendered.container.get("envFrom", []):
        config_map = next(
            d for d in rendered.all("ConfigMap") if d["metadata"]["name"] == source["configMapRef"]["name"]
        )
        env.update(config_map["data"])
    env.update({item["name"]: item["value"] for item in rendered.container.get("env", [])})
    return env


def kustomize(folder: Path) -> str:
    """`kubectl kustomize <folder>`, failing with kustomize's own message."""
    result = run([tool("kubectl"), "kustomize", str(folder)], timeout=120)
    assert result.returncode == 0, explain(result)
    return result.stdout


def render(variant: str, out_dir: Path) -> Rendered:
    """Render one variant into `out_dir/<variant>.yaml`."""
    overlay, _, with_components = variant.partition("+")
    api_key = None
    if with_components:
        api_key = secrets.token_urlsafe(24)
        tree = _tree_with_components(overlay, out_dir / f"tree-{overlay}", api_key)
        text = kustomize(tree / "overlays" / overlay)
    else:
        text = kustomize(KUBE_DIR / "overlays" / overlay)
    path = out_dir / f"{variant}.yaml"
    path.write_text(text, encoding="utf-8")
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(variant, path, docs, api_key)


def _tree_with_components(overlay: str, tree: Path, api_key: str) -> Path:
    shutil.copytree(KUBE_DIR, tree, ignore=shutil.ignore_patterns("secret.env"))
    (tree / "components" / "api-key-secret" / "secret.env").write_text(
        f"API_KEY={api_key}\n", encoding="utf-8"
    )
    kustomization = tree / "overlays" / overlay / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
    spec["components"] = [f"../../components/{name}" for name in COMPONENTS]
    kustomization.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return tree


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def pod_labels(rendered: Rendered) -> dict[str, str]:
    labels: dict[str, str] = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    return labels
