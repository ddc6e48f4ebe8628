"""`--model-sha256`: the bundle's digest pinned as MODEL_SHA256 in the ConfigMap, per revision.

`deploy` merges it into the overlay's generated ConfigMap (rendered here by the real `kubectl kustomize`);
`release` applies a pinned copy of the Deployment's ConfigMap and sets the image and the reference in one
patch (the cluster is a FakeKubectl scenario, the new pods real local servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.kube.pin import pinned_overlay
from tests.deploy.tools import REPO, run, tool
from tests.kube import cluster
from tests.kube.conftest import PINNED, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.kube.scenarios import new_pods, release_steps
from tests.support import RunningServer

DIGEST = "3f2a" + "0" * 60
CONFIG = "ml-model-config-5hk2m8f9t4"


def rendered(folder: Path) -> list[dict[str, Any]]:
    """The real `kubectl kustomize` output, as objects."""
    result = run([tool("kubectl"), "kustomize", str(folder)], timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def config_of(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ml-model-config")
    )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    referenced = next(s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s)
    return config, referenced


@pytest.mark.parametrize("overlay", ["minikube", "production"])
def test_deploy_merges_the_pin_into_the_overlays_config_map_under_a_new_name(overlay: str) -> None:
    folder = REPO / "deploy" / "kubernetes" / "overlays" / overlay
    plain, plain_ref = config_of(rendered(folder))
    with pinned_overlay(folder, DIGEST) as wrapper:
        pinned, pinned_ref = config_of(rendered(wrapper))
    assert pinned["data"] == {**plain["data"], "MODEL_SHA256": DIGEST}
    assert pinned_ref == pinned["metadata"]["name"] != plain_ref, (
        "a new name: the pods roll, undo keeps the old"
    )
    assert pinned["metadata"].get("namespace") == plain["metadata"].get("namespace")


def test_deploy_applies_through_the_pinning_kustomization(fake: FakeKubectl, tmp_path: Path) -> None:
    fake.on("config", "current-context", reply={"stdout": "minikube\n"})
    fake.on("config", "view", reply={"stdout": ""})
    fake.on("get", "deployment/ml-model-deployment", "--ignore-not-found", reply={"stdout": ""})
    fake.on("apply", "-k", reply={"stderr": "error: stop here\n", "exit": 1})
    manifests = REPO / "deploy" / "kubernetes"
    result = run_cli("deploy", "--manifests", str(manifests), "--model-sha256", DIGEST.upper())
    applied = next(call for call in fake.calls() if call.command[:2] == ["apply", "-k"])
    assert "mlkube-pinned-" in applied.command[2]
    assert f"with MODEL_SHA256={DIGEST[:12]}… merged into ml-model-config" in result.stdout
    assert result.exit_code == 1


def test_a_malformed_digest_is_refused_before_anything_runs(fake: FakeKubectl) -> None:
    for command in (["deploy"], ["release", "--image", "ml-model:v3"]):
        result = run_cli(*command, "--model-sha256", "3f2a")
        assert result.exit_code == 1
        assert "--model-sha256 '3f2a': expected 64 hexadecimal digits" in result.stderr
    assert fake.calls() == []


def test_release_pins_a_copy_of_the_config_map_in_the_same_revision(
    fake: FakeKubectl, server_v3: RunningServer
) -> None:
    before = cluster.deployment(image="ml-model:v1", version="v1", revision=1)
    before["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": CONFIG}}]
    fake.on(
        "get",
        "configmap",
        CONFIG,
        reply=reply_json(
            {
                "metadata": {"name": CONFIG, "labels": {"app": "ml-model"}},
                "data": {"CLASS_NAMES": "setosa,versicolor,virginica", "MODEL_VERSION": ""},
            }
        ),
    )
    fake.on("apply", "-f", "-", reply={"stdout": "configmap/ml-model-config-x created\n"})
    fake.on("patch", "deployment/ml-model-deployment", reply={"stdout": "patched\n"}, then="rolling")
    release_steps(fake, before=before)
    new_pods(fake, server_v3, old=server_v3)
    result = run_cli("release", "--image", "ml-model:v3", "--model-sha256", DIGEST, "--poll", "0.01")
    assert result.exit_code == 0, result.output
    applied = next(call for call in fake.calls() if call.command[:1] == ["apply"])
    config = json.loads(applied.stdin)
    assert config["data"] == {
        "CLASS_NAMES": "setosa,versicolor,virginica",
        "MODEL_VERSION": "",
        "MODEL_SHA256": DIGEST,
    }
    assert config["metadata"]["name"].startswith("ml-model-config-")
    assert config["metadata"]["name"] != CONFIG
    patch = next(call for call in fake.calls() if call.command[:1] == ["patch"])
    assert patch.line.startswith(f"{PINNED} patch deployment/ml-model-deployment --type=json -p ")
    assert json.loads(patch.command[-1]) == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "ml-model:v3"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/envFrom/0/configMapRef/name",
            "value": config["metadata"]["name"],
        },
    ]
    assert not any(call.command[:2] == ["set", "image"] for call in fake.calls()), "one revision, not two"
