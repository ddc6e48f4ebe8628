"""`mlkube load --in-cluster`: the load generator as a Job in the Deployment's own image, against the
Service by its cluster DNS name, with the key the pods mount; its output and exit code come back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlkube.kube import loadjob
from tests.deploy.tools import run, tool
from tests.kube import cluster
from tests.kube.conftest import PINNED, current_context, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json

MOUNTED_SECRET = "ml-model-secret-5f2k8m"  # pragma: allowlist secret - a name, not a key

LOG = (
    "sending 800 req/s of the notes' /predict payload to http://ml-model-service:5000 for 120s\n"
    "achieved 799.1 req/s of 800 asked over 120.0s: 95892 ok, 0 errors\n"
)


def a_cluster(fake: FakeKubectl, job_replies: list[dict[str, Any]]) -> None:
    current_context(fake)
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        reply=reply_json(cluster.deployment(image="ml-model:v3", pull_policy="Never", mounts=MOUNTED_SECRET)),
    )
    fake.on("get", "hpa/ml-model-hpa", reply=reply_json(cluster.hpa(current=140, replicas=2, desired=5)))
    fake.on("delete", "job", "ml-model-load", reply={"stdout": 'job.batch "ml-model-load" deleted\n'})
    fake.on("create", "-f", "-", reply={"stdout": "job.batch/ml-model-load created\n"})
    fake.on("get", "job/ml-model-load", replies=job_replies)
    fake.on("logs", "job/ml-model-load", reply={"stdout": LOG})


def created_job(fake: FakeKubectl) -> dict[str, Any]:
    [created] = [call for call in fake.calls() if call.command[:1] == ["create"]]
    job: dict[str, Any] = json.loads(created.stdin)
    return job


def test_in_cluster_load_runs_the_image_against_the_service(fake: FakeKubectl) -> None:
    a_cluster(fake, [reply_json(cluster.job(active=1)), reply_json(cluster.job(succeeded=1))])
    result = run_cli("load", "--in-cluster", "--rps", "800", "--duration", "2m", "--every", "0.01s")
    assert result.exit_code == 0, result.output
    job = created_job(fake)
    assert job["metadata"]["labels"]["app"] == "ml-model-load", "not app: ml-model (the Service's selector)"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "ml-model:v3"
    assert container["imagePullPolicy"] == "Never", "the Deployment's own: minikube's local image"
    assert container["command"][:6] == [
        "python",
        "-m",
        "mlkube",
        "load",
        "--url",
        "http://ml-model-service:5000",
    ]
    assert "--api-key-file" in container["command"]
    [volume] = pod["volumes"]
    assert volume["secret"]["secretName"] == MOUNTED_SECRET, "the Secret the pods mount"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 120 + loadjob.START_ALLOWANCE
    lines = fake.lines()
    assert lines.index(f"{PINNED} delete job ml-model-load --ignore-not-found --wait=true") < lines.index(
        f"{PINNED} create -f -"
    )
    assert "  | achieved 799.1 req/s of 800 asked over 120.0s: 95892 ok, 0 errors" in result.stdout
    assert "replicas 2 (2 ready); HPA CPU 140% of 50%, desired 5" in result.stdout
    assert "the load Job finished" in result.stdout


def test_a_failed_load_job_fails_the_command(fake: FakeKubectl) -> None:
    failed = cluster.job(failed=1, message="Job has reached the specified backoff limit")
    a_cluster(fake, [reply_json(cluster.job(active=1)), reply_json(failed)])
    result = run_cli("load", "--in-cluster", "--duration", "10s", "--no-watch")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: the load Job failed: BackoffLimitExceeded: Job has reached the specified backoff limit "
        "(`kubectl logs job/ml-model-load`)"
    )
    assert "  | sending 800 req/s" in result.stdout  # its output, to see why


def test_in_cluster_excludes_url(fake: FakeKubectl) -> None:
    result = run_cli("load", "--in-cluster", "--url", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert fake.calls() == []


@pytest.mark.parametrize("version", ["1.30.0", "1.35.0"])
def test_the_job_is_a_valid_restricted_kubernetes_object(tmp_path: Path, version: str) -> None:
    command = loadjob.load_command(50, 60, 5, 64, 0.01)
    manifest = loadjob.job_manifest("ml-model:v3", "Never", "ml-model-secret", command, 60)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    result = run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_in_cluster_dry_run_prints_the_job_and_runs_nothing(fake: FakeKubectl) -> None:
    result = run_cli("load", "--in-cluster", "--rps", "100", "--duration", "30s", "--dry-run", "-n", "ml")
    assert result.exit_code == 0, result.output
    assert "$ kubectl --namespace ml delete job ml-model-load --ignore-not-found --wait=true" in result.stdout
    assert "load --url http://ml-model-service:5000 --rps 100 --duration 30s" in result.stdout
    assert "$ kubectl --namespace ml logs job/ml-model-load" in result.stdout
    assert fake.calls() == []
