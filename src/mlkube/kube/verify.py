"""Smoke-test the Service in the cluster: find its URL, find the key, run the checks."""

from __future__ import annotations

from mlkube.kube.endpoint import service_endpoint
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.secret import cluster_key
from mlkube.kube.smoke import SmokeReport, print_report, run_smoke, smoke, wait_until_answers


def smoke_service(
    kubectl: Kubectl, *, url: str | None, api_key: str | None, expect_version: str | None
) -> SmokeReport | None:
    """The smoke test through `url` or the Service; SmokeFailed when a check fails. None in a dry run."""
    if kubectl.dry_run:
        kubectl.out.info("(dry run) then: smoke test /ready, /predict and a batch through the Service")
        return None
    key = api_key or (cluster_key(kubectl) if url is None else None)
    with service_endpoint(kubectl, url) as found:
        return smoke(kubectl.out, found, api_key=key, expect_version=expect_version)


def probe_version(kubectl: Kubectl, *, url: str | None, api_key: str | None) -> str | None:
    """The version the Service reports now (before a release), or None when it does not answer."""
    key = api_key or (cluster_key(kubectl) if url is None else None)
    with service_endpoint(kubectl, url) as found:
        report = run_smoke(found, api_key=key)
    if not report.ok or len(report.versions) != 1:
        kubectl.out.warn(
            f"the running version does not answer well ({report.failures()}): a rollback is not checked"
        )
        return None
    version = next(iter(report.versions))
    kubectl.out.info(f"the Service answers with model {version}")
    return version


def wait_for_version(
    kubectl: Kubectl, *, url: str | None, api_key: str | None, expect_version: str | None, deadline: float
) -> SmokeReport:
    """Repeat the smoke test through the Service until it passes (the old version answers again)."""
    key = api_key or (cluster_key(kubectl) if url is None else None)
    with service_endpoint(kubectl, url) as found:
        report = wait_until_answers(found, api_key=key, expect_version=expect_version, deadline=deadline)
    print_report(kubectl.out, report)
    return report
