"""Every rendered variant against the Kubernetes 1.30 to 1.35 schemas (strict), then checkov, offline.

checkov runs its kubernetes and dockerfile frameworks on the rendered overlays and the Dockerfile, and its
secrets framework on the files that ship (the image's sources, deploy/) and on these tests. Zero failed
checks; every skip is an annotation (or a Dockerfile comment) with its reason, and the test lists them.
"""

from __future__ import annotations

import secrets
import string
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.rendered import Rendered
from tests.deploy.tools import (
    DOCKERFILE,
    KUBERNETES_VERSIONS,
    REPO,
    Report,
    checkov,
    explain,
    failures,
    kubernetes_validate,
)

SHIPPED = ("Dockerfile", ".dockerignore", "deploy", "src/mlkube", "pyproject.toml", "tests/deploy")


@pytest.fixture(scope="module")
def rendered_files(renders: dict[str, Rendered]) -> list[Path]:
    return [rendered.path for rendered in renders.values()]


@pytest.fixture(scope="module")
def checkov_reports(rendered_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Report]:
    folder = tmp_path_factory.mktemp("checkov")
    files = []
    for path in [*rendered_files, DOCKERFILE]:
        copy = folder / path.name
        copy.write_bytes(path.read_bytes())
        files += ["--file", copy.name]
    return checkov(["--framework", "kubernetes", "dockerfile", *files], cwd=folder)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_variant_passes_strict_schema_validation(rendered_files: list[Path], version: str) -> None:
    result = kubernetes_validate(rendered_files, version)
    assert result.returncode == 0, explain(result)


def test_strict_validation_rejects_an_unknown_field(renders: dict[str, Rendered], tmp_path: Path) -> None:
    """Negative control: the validator really is strict, so a misspelt field cannot pass unnoticed."""
    deployment = renders["minikube"].deployment
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = kubernetes_validate([path], KUBERNETES_VERSIONS[0])
    assert result.returncode != 0
    assert "replica" in result.stdout + result.stderr


def test_checkov_finds_no_failed_kubernetes_or_dockerfile_check(checkov_reports: list[Report]) -> None:
    kinds = {report["check_type"] for report in checkov_reports}
    assert kinds == {"kubernetes", "dockerfile"}
    assert all(report["summary"]["passed"] > 0 for report in checkov_reports), "checkov checked nothing"
    assert all(report["summary"]["parsing_errors"] == 0 for report in checkov_reports)
    assert failures(checkov_reports) == []


def test_every_checkov_skip_states_its_reason(checkov_reports: list[Report]) -> None:
    skipped = [check for report in checkov_reports for check in report["results"]["skipped_checks"]]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.strip()) > 20, f"{check['check_id']} on {check['resource']}: no reason given"
    shown = sorted({f"{check['check_id']}: {check['check_result']['suppress_comment']}" for check in skipped})
    print("checkov skips:\n  " + "\n  ".join(shown))


def test_checkov_finds_no_secret_in_the_image_or_manifests() -> None:
    """The deliverable's own files: what enters the image's context and every manifest, template and README.

    The whole repository is the reliability suite's to scan; this one covers what ships to a cluster.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", *SHIPPED],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = [name for name in listed.split("\0") if name and (REPO / name).is_file()]
    assert "deploy/kubernetes/components/api-key-secret/secret.env.example" in names
    reports = checkov(
        ["--framework", "secrets", *(arg for name in names for arg in ("--file", name))], cwd=REPO
    )
    assert failures(reports) == []


def test_checkov_secret_scan_catches_a_planted_key(tmp_path: Path) -> None:
    """Positive control: the same scan flags a key-shaped string (built here, so no file holds one)."""
    planted = tmp_path / "settings.py"
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    planted.write_text(f'token = "ghp_{token}"\n', encoding="utf-8")
    reports = checkov(["--framework", "secrets", "--file", planted.name], cwd=tmp_path)
    assert failures(reports) != []
