"""Smoke-test the Service in the cluster (find its URL, find the key, run the checks), or each pod of a
rollout's ReplicaSet through a port-forward to that pod."""

from __future__ import annotations

import time

from mlkube.kube import names
from mlkube.kube.endpoint import port_forward, service_endpoint
from mlkube.kube.errors import KubeError, SmokeFailed
from mlkube.kube.history import current_revision
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, ObjectList, Pod, ReplicaSet
from mlkube.kube.secret import cluster_key
from mlkube.kube.smoke import Check, SmokeReport, print_report, run_smoke, smoke, wait_until_answers

TEMPLATE_HASH = "pod-template-hash"


def smoke_service(
    kubectl: Kubectl, *, url: str | None, api_key: str | None, expect_version: str | None
) -> SmokeReport | None:
    """The smoke test through `url` or the Service; SmokeFailed when a check fails. None in a dry run."""
    if kubectl.dry_run:
        kubectl.out.info("(dry run) then: smoke test /ready, /predict and a batch through the Service")
        return None
    if url is None:
        kubectl = kubectl.pinned()
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


def smoke_rollout(
    kubectl: Kubectl,
    *,
    url: str | None,
    api_key: str | None,
    expect_version: str | None,
    deadline: float,
    poll: float = 1.0,
) -> None:
    """After a rollout: the smoke test through `url` when one is given, else on every pod of the current
    ReplicaSet. Failures for want of an answer are retried until `deadline`; SmokeFailed after that, or at
    once for a wrong answer. Nothing in a dry run."""
    if kubectl.dry_run:
        kubectl.out.info(
            "(dry run) then: smoke test /ready, /predict and a batch on each ready pod of the new ReplicaSet"
        )
        return
    if url is not None:
        report = wait_until_answers(url, api_key=api_key, expect_version=expect_version, deadline=deadline)
        print_report(kubectl.out, report)
        if not report.ok:
            raise SmokeFailed(f"smoke test failed against {url}: {report.failures()}")
        return
    smoke_pods(
        kubectl,
        api_key=api_key or cluster_key(kubectl),
        expect_version=expect_version,
        deadline=deadline,
        poll=poll,
    )


def smoke_pods(
    kubectl: Kubectl, *, api_key: str | None, expect_version: str | None, deadline: float, poll: float = 1.0
) -> None:
    """Each Ready, not terminating pod of the Deployment's current ReplicaSet, by its pod-template-hash,
    through a port-forward to that very pod. Not the Service: a port-forward to a Service picks one pod,
    the one Ready longest, which may be an old pod still draining after the rollout counted it gone."""
    out = kubectl.out
    deployment = kubectl.get(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=True)
    template_hash = current_template_hash(kubectl, deployment)
    selector = deployment.spec.selector.as_arg()
    out.info(
        f"smoke test of each ready pod of the current ReplicaSet ({TEMPLATE_HASH}={template_hash}), "
        f"retried for up to {deadline:g}s"
    )
    started = time.monotonic()
    passed: set[str] = set()
    while True:
        pods = serving_pods(kubectl, selector, template_hash)
        failure = _first_failure(kubectl, pods, passed, api_key, expect_version)
        if failure is None and pods:
            out.ok(f"{len(pods)} pod(s) of the new ReplicaSet answer: {', '.join(sorted(pods))}")
            return
        if failure is not None and not failure[1].transient:
            print_report(out, failure[1])
            raise SmokeFailed(f"smoke test failed on pod {failure[0]}: {failure[1].failures()}")
        if time.monotonic() - started >= deadline:
            if failure is not None:
                print_report(out, failure[1])
            why = f"pod {failure[0]}: {failure[1].failures()}" if failure else "no pod is ready and serving"
            raise SmokeFailed(f"smoke test failed after {deadline:g}s: {why}")
        time.sleep(poll)


def current_template_hash(kubectl: Kubectl, deployment: Deployment) -> str:
    """The pod-template-hash of the Deployment's ReplicaSet for its current revision."""
    revision = str(current_revision(deployment))
    sets = kubectl.get(
        ObjectList[ReplicaSet], "replicasets", "-l", deployment.spec.selector.as_arg(), quiet=True
    ).items
    for replica_set in sets:
        owned = any(o.uid == deployment.metadata.uid for o in replica_set.metadata.owner_references)
        if owned and replica_set.metadata.annotations.get(names.REVISION) == revision:
            found = replica_set.metadata.labels.get(TEMPLATE_HASH)
            if found:
                return found
    raise KubeError(f"no ReplicaSet of {names.DEPLOYMENT} for its revision {revision}")


def serving_pods(kubectl: Kubectl, selector: str, template_hash: str) -> list[str]:
    """Names of the pods of one ReplicaSet that are Ready and not being deleted (a terminating pod stays
    Ready while it drains)."""
    pods = kubectl.get(ObjectList[Pod], "pods", "-l", selector, quiet=True).items
    return [
        pod.metadata.name
        for pod in pods
        if pod.metadata.labels.get(TEMPLATE_HASH) == template_hash and pod.ready and not pod.terminating
    ]


def _first_failure(
    kubectl: Kubectl, pods: list[str], passed: set[str], api_key: str | None, expect_version: str | None
) -> tuple[str, SmokeReport] | None:
    """Smoke-test the pods not yet `passed` in turn, adding each that passes; the first that fails, with
    its report, or None when all pass."""
    for pod in (pod for pod in pods if pod not in passed):
        try:
            with port_forward(kubectl, f"pod/{pod}", names.PORT) as url:
                report = run_smoke(url, api_key=api_key, expect_version=expect_version)
        except KubeError as error:  # the pod went away between the listing and the port-forward
            report = SmokeReport(f"pod/{pod}", [_no_answer(error)])
        if not report.ok:
            return pod, report
        passed.add(pod)
        kubectl.out.info(f"pod {pod}:")
        print_report(kubectl.out, report)
    return None


def _no_answer(error: KubeError) -> Check:
    return Check("port-forward", False, f"no answer from the pod: {error}")
