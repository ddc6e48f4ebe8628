"""The notes' whole flow with the mlkube commands, against a real minikube or kind cluster.

Runs only with MLKUBE_E2E=1 and a reachable cluster (the `kubectl` fixture of conftest.py); otherwise every
test skips with that reason. Everything happens in a namespace of this module's own, deleted at the end.
The tests run in file order, each building on the one before: image build (v2, v3) → deploy → status →
smoke → release v3 → history → a broken release rolled back → rollback to the v2 revision → load.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import run_mlkube

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
KEY = secrets.token_urlsafe(24)
NAMESPACE: list[str] = []  # the module's namespace, set by the fixture below


@pytest.fixture(scope="module", autouse=True)
def own_namespace(kubectl: str) -> Iterator[str]:
    """A namespace of this module's own (the `kubectl` fixture skips without MLKUBE_E2E=1 or a cluster)."""
    name = f"mlkube-cli-e2e-{secrets.token_hex(3)}"
    subprocess.run([kubectl, "create", "namespace", name], check=True, capture_output=True, timeout=60)
    NAMESPACE.append(name)
    try:
        yield name
    finally:
        NAMESPACE.clear()
        subprocess.run(
            [kubectl, "delete", "namespace", name, "--wait=false"],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def context(kubectl: str) -> str:
    return subprocess.run(
        [kubectl, "config", "current-context"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()


def mlkube(*args: str, timeout: float = 600, namespaced: bool = True) -> subprocess.CompletedProcess[str]:
    """tests.support.run_mlkube in this module's namespace, with the key, from the repository's root."""
    flags = ["--namespace", NAMESPACE[0]] if namespaced else []
    env = {**os.environ, "MLKUBE_API_KEY": KEY}
    result = run_mlkube(*args, *flags, env=env, cwd=ROOT, timeout=timeout)
    print(result.stdout, result.stderr, sep="\n")  # shown when a test fails
    return result


def image_target(context: str) -> list[str]:
    if context.startswith("kind-"):
        return ["--kind", "--kind-cluster", context.removeprefix("kind-")]
    if context == "minikube":
        return ["--minikube"]
    pytest.skip(f"context {context!r} is neither minikube nor kind: build and push the images yourself")


def test_image_build_v2_and_v3(context: str) -> None:
    for tag in ("ml-model:v2", "ml-model:v3"):
        built = mlkube("image", "build", "--tag", tag, *image_target(context), timeout=1800, namespaced=False)
        assert built.returncode == 0
        assert f"image {tag} built into" in built.stdout


def test_deploy_applies_waits_and_smoke_tests() -> None:
    deployed = mlkube("deploy", "--overlay", "minikube", "--timeout", "5m")
    assert deployed.returncode == 0
    assert "✓ reported version: v2" in deployed.stdout
    assert "deployed: " in deployed.stdout
    assert KEY not in deployed.stdout + deployed.stderr


def test_status_shows_each_pods_version() -> None:
    shown = mlkube("status")
    assert shown.returncode == 0
    assert "Deployment ml-model-deployment:" in shown.stdout
    pods = [line for line in shown.stdout.splitlines() if line.startswith("  ml-model-deployment-")]
    running = [line for line in pods if " Running " in line]
    assert running, shown.stdout
    assert [line.split()[-1] for line in running] == ["v2"] * len(running)
    assert "HPA ml-model-hpa:" in shown.stdout


def test_smoke_finds_the_service_itself() -> None:
    assert mlkube("smoke", "--expect-version", "v2").returncode == 0


def test_release_v3_rolls_out_and_answers_v3() -> None:
    released = mlkube("release", "--image", "ml-model:v3", "--timeout", "5m")
    assert released.returncode == 0
    assert "released ml-model:v3 (model v3)" in released.stdout


def test_history_records_the_release() -> None:
    shown = mlkube("history")
    assert shown.returncode == 0
    assert "ml-model:v3" in shown.stdout
    assert "mlkube release ml-model:v3 (model v3)" in shown.stdout


def test_a_release_of_a_missing_image_is_rolled_back() -> None:
    failed = mlkube("release", "--image", "ml-model:never-built", "--timeout", "90s")
    assert failed.returncode == 1
    assert (
        "ErrImageNeverPull" in failed.stderr
        or "ImagePullBackOff" in failed.stderr
        or "ErrImagePull" in failed.stderr
    )
    assert failed.stderr.strip().endswith("v3 answers again")
    assert mlkube("smoke", "--expect-version", "v3").returncode == 0


def test_rollback_to_the_v2_revision_serves_v2_again() -> None:
    shown = mlkube("history")
    rows = [line.split() for line in shown.stdout.splitlines() if line[:1].isdigit()]
    v2 = max(int(row[0]) for row in rows if "ml-model:v2" in row)
    rolled = mlkube("rollback", "--to", str(v2), "--timeout", "5m")
    assert rolled.returncode == 0
    assert "✓ reported version: v2 as expected" in rolled.stdout


def test_load_reports_rate_and_follows_replicas() -> None:
    loaded = mlkube("load", "--rps", "20", "--duration", "20s")
    assert loaded.returncode == 0
    assert "achieved " in loaded.stdout
    assert "replicas: " in loaded.stdout
