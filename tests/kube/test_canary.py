"""`mlkube release --canary`: a canary Deployment beside the stable one, judged by every pod's own metrics,
promoted through the normal release or aborted, and always removed.

The cluster is a FakeKubectl scenario (a test double: no cluster here). Its pod proxy answers
(`kubectl get --raw .../pods/NAME:5000/proxy/metrics`) come from real local mlkube servers, one per "pod",
serving two different bundles under a small bounded load the test drives, so the analysis parses and
compares real exposition text."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mlkube.kube.canary import (
    CanaryOptions,
    Thresholds,
    canary_manifest,
    canary_replicas,
    judge,
    plan_steps,
)
from mlkube.kube.podmetrics import (
    Counts,
    histogram_quantile,
    increase,
    parse_counts,
    population_stability,
)
from mlkube.model.datasets import Dataset, load_iris_dataset
from mlkube.model.train import TrainParams, train_bundle
from tests.deploy.tools import REPO, run, tool
from tests.kube import cluster
from tests.kube.conftest import APP, PINNED, current_context, host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.kube.scenarios import new_pods
from tests.support import RunningServer, start_server

STABLE_PODS = ("ml-model-deployment-5c4b9d0001-aaaaa", "ml-model-deployment-5c4b9d0001-bbbbb")
CANARY_PODS = ("ml-model-canary-7f8e6d-ccccc", "ml-model-canary-7f8e6d-ddddd")
FAST = ("--poll", "0.01", "--interval", "1s", "--min-requests", "10")
NOISE_FLOOR = ("--latency-floor", "250ms")
"""For the tests that judge something else than latency: on a busy shared machine a p99 of a few ms can
jump tenfold for a second, which the default 50 ms floor would (rightly) call slower."""


# --- bundles and "pods" -----------------------------------------------------------------------------


def _shifted_iris() -> Dataset:
    """Iris with most versicolor rows relabelled setosa: a model that predicts setosa far more often."""
    iris = load_iris_dataset()
    targets = iris.targets.copy()
    versicolor = np.flatnonzero(targets == 1)
    targets[versicolor[:-5]] = 0
    return Dataset(iris.features, targets, iris.feature_names, iris.class_names, "Iris, relabelled")


@pytest.fixture(scope="module")
def canary_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good new model (another seed, more trees) and one trained on relabelled data."""
    good = tmp_path_factory.mktemp("canary-good")
    train_bundle(load_iris_dataset(), TrainParams(n_estimators=30, seed=7), good, version="v3")
    shifted = tmp_path_factory.mktemp("canary-shifted")
    train_bundle(_shifted_iris(), TrainParams(seed=7), shifted, version="v3")
    return {"good": good, "shifted": shifted}


@pytest.fixture(scope="module")
def pods(model_dir: Path, canary_models: dict[str, Path]) -> Iterator[dict[str, RunningServer]]:
    """Real servers standing in for pods: two stable (the v1 bundle), two good canaries, one whose bundle
    is refused (it answers 503), one serving the shifted model."""
    settings = {
        "stable-a": {"MODEL_DIR": str(model_dir)},
        "stable-b": {"MODEL_DIR": str(model_dir)},
        "good-a": {"MODEL_DIR": str(canary_models["good"])},
        "good-b": {"MODEL_DIR": str(canary_models["good"])},
        "refused": {"MODEL_DIR": str(canary_models["good"]), "MODEL_SHA256": "0" * 64},
        "shifted": {"MODEL_DIR": str(canary_models["shifted"])},
    }
    started: dict[str, RunningServer] = {}
    contexts = []
    try:
        for name, env in settings.items():
            context = start_server({**env, "WORKERS": "1"})
            started[name] = context.__enter__()
            contexts.append(context)
        yield started
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


# --- a bounded load, sent the way the Service would: the same to every pod ---------------------------

_IRIS = load_iris_dataset()
BATCH = [
    row.tolist()
    for label in range(3)
    for row in _IRIS.features[_IRIS.targets == label][::5]  # 10 rows of each class
]
"""30 rows, ten of each class: every request asks for the same class shares."""


@dataclass(frozen=True)
class Target:
    server: RunningServer
    body_delay: float = 0.0
    senders: int = 1


class Traffic:
    """Threads sending BATCH to each target until stopped (at most `limit` requests each). A target's
    `body_delay` is a test double for a slow pod: the request's headers go at once and its body after the
    delay, which the server's own request-duration histogram counts, so the canary's real exposition shows
    a latency no busy machine can produce by accident."""

    def __init__(self, targets: list[Target], limit: int = 3000) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(target, limit), daemon=True)
            for target in targets
            for _ in range(target.senders)
        ]
        self.body = json.dumps({"instances": BATCH}).encode()

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _send(self, target: Target, limit: int) -> None:
        host, port = host_port(target.server).split(":")
        for _ in range(limit):
            if self._stop.is_set():
                return
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                connection.putrequest("POST", "/predict")
                connection.putheader("Content-Type", "application/json")
                connection.putheader("Content-Length", str(len(self.body)))
                connection.endheaders()
                if target.body_delay:
                    self._stop.wait(target.body_delay)
                connection.send(self.body)
                connection.getresponse().read()
            except OSError:
                pass
            finally:
                connection.close()
            self._stop.wait(0.02)


# --- the cluster ------------------------------------------------------------------------------------

STABLE = cluster.deployment(image="ml-model:v1", version="v1", revision=1, replicas=2)


def canary_deployment(replicas: int) -> dict[str, Any]:
    made = cluster.deployment(image="ml-model:v3", version="v3", replicas=replicas)
    made["metadata"]["name"] = "ml-model-canary"
    made["metadata"]["uid"] = "uid-canary-1"
    made["spec"]["selector"]["matchLabels"] = {"app": "ml-model", "track": "canary"}
    return made


def canary_pod(name: str) -> dict[str, Any]:
    made = cluster.pod(name, image="ml-model:v3")
    made["metadata"]["labels"].update({"pod-template-hash": "7f8e6d", "track": "canary"})
    return made


def scenario(fake: FakeKubectl, stable: list[RunningServer], canary: list[RunningServer]) -> None:
    """Two stable pods; the canary Deployment made by `apply` (phase canary-1, one pod), scaled to two
    (phase canary-2); each pod's metrics from its server. `get pods -l app=ml-model` lists the canary pods
    too, as the real API does: the stable ones are told apart by their pod-template-hash."""
    current_context(fake)
    fake.on("get", "secret", "ml-model-secret", reply={"stdout": ""})
    fake.on("get", "deployment/ml-model-canary", "--ignore-not-found", reply={"stdout": ""})
    fake.on(
        "apply", "-f", "-", reply={"stdout": "deployment.apps/ml-model-canary created\n"}, then="canary-1"
    )
    fake.on("scale", "deployment/ml-model-canary", reply={"stdout": "scaled\n"}, then="canary-2")
    fake.on("delete", "deployment/ml-model-canary", reply={"stdout": "deleted\n"})
    for pod, server in zip(STABLE_PODS + CANARY_PODS, stable + canary, strict=False):
        path = f"/api/v1/namespaces/default/pods/{pod}:5000/proxy/metrics"
        fake.on("get", "--raw", path, reply={"proxy_to": host_port(server)})
    fake.on(
        "get",
        "replicasets",
        phase=None,
        reply=reply_json(cluster.items(cluster.replicaset(1, "ml-model:v1", version="v1", replicas=2))),
    )
    for phase, count in (("canary-1", 1), ("canary-2", 2)):
        canaries = [canary_pod(name) for name in CANARY_PODS[:count]]
        fake.on("get", "deployment/ml-model-canary", phase=phase, reply=reply_json(canary_deployment(count)))
        fake.on(
            "get",
            "pods",
            "app=ml-model,track=canary",
            phase=phase,
            reply=reply_json(cluster.items(*canaries)),
        )
        everyone = [cluster.pod(name, revision=1, image="ml-model:v1") for name in STABLE_PODS] + canaries
        fake.on("get", "pods", "app=ml-model", phase=phase, reply=reply_json(cluster.items(*everyone)))


def promotion(fake: FakeKubectl, new: RunningServer, old: RunningServer) -> None:
    """The normal release path after the canary: set image moves the cluster to `rolling` (test_release's
    scenario: two new pods answering from `new`)."""
    new_pods(fake, new, old=old)
    fake.on("set", "image", reply={"stdout": "image updated\n"}, then="rolling")
    fake.on("annotate", reply={"stdout": "annotated\n"})
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(STABLE))


def changes(fake: FakeKubectl) -> list[str]:
    return [
        " ".join(call.command[:2])
        for call in fake.calls()
        if call.command[0] not in ("get", "config", "port-forward")
    ]


# --- sizes, manifest, metrics -----------------------------------------------------------------------


def test_the_canary_is_sized_from_the_percentage_and_the_stable_replicas() -> None:
    assert canary_replicas(10, 9) == 1
    assert canary_replicas(50, 4) == 4
    assert canary_replicas(10, 2) == 1, "never fewer than one pod"
    steps = plan_steps(CanaryOptions(50), stable=2)
    assert [(s.replicas, round(100 * s.share)) for s in steps] == [(1, 33), (2, 50)]
    steps = plan_steps(CanaryOptions(50), stable=18)
    assert [(s.percent, s.replicas) for s in steps] == [(10, 2), (25, 6), (50, 18)]


def test_the_canary_manifest_copies_the_stable_spec_with_its_own_selector() -> None:
    manifest = canary_manifest(STABLE, "ml-model:v3", "v3", 1)
    assert manifest["metadata"]["name"] == "ml-model-canary"
    assert manifest["spec"]["selector"] == {"matchLabels": {"app": "ml-model", "track": "canary"}}
    assert manifest["spec"]["template"]["metadata"]["labels"] == {"app": "ml-model", "track": "canary"}
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "ml-model:v3"
    assert manifest["spec"]["template"]["spec"]["volumes"] == STABLE["spec"]["template"]["spec"]["volumes"]
    assert "status" not in manifest
    assert STABLE["spec"]["selector"] == {"matchLabels": {"app": "ml-model"}}, "the stable one untouched"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("overlay", ["minikube", "production"])
def test_the_canary_of_the_real_manifests_validates_and_is_selected_right(
    overlay: str, tmp_path: Path
) -> None:
    """Built from the rendered overlay's Deployment: valid for Kubernetes 1.30 and 1.35 (strict); the
    Service, the PodDisruptionBudget and the NetworkPolicy select its pods as they select the stable
    ones; its own selector does not select the stable pods; the HPA scales the stable Deployment only."""
    folder = REPO / "deploy" / "kubernetes" / "overlays" / overlay
    rendered = run([tool("kubectl"), "kustomize", str(folder)], timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    objects = {doc["kind"]: doc for doc in yaml.safe_load_all(rendered.stdout) if doc}
    stable = objects["Deployment"]
    manifest = canary_manifest(stable, "ml-model:v3", "v3", 1)
    manifest["metadata"]["namespace"] = stable["metadata"].get("namespace", "default")
    written = tmp_path / "canary.yaml"
    written.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    for version in ("1.30.0", "1.35.0"):
        checked = run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(written)])
        assert checked.returncode == 0, checked.stdout + checked.stderr
    stable_labels = stable["spec"]["template"]["metadata"]["labels"]
    canary_labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert canary_labels == {**stable_labels, "track": "canary"}
    selectors = [
        objects["Service"]["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ]
    if "NetworkPolicy" in objects:
        selectors.append(objects["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"])
    for selector in selectors:
        assert _selects(selector, stable_labels)
        assert _selects(selector, canary_labels)
    assert not _selects(manifest["spec"]["selector"]["matchLabels"], stable_labels)
    assert objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "ml-model-deployment"


def test_counts_come_from_real_exposition_text_and_survive_a_restart(pods: dict[str, RunningServer]) -> None:
    server = pods["stable-a"]
    before = parse_counts(server.client.get("/metrics").text)
    for _ in range(3):
        assert server.client.post("/predict", json={"instances": BATCH}).status_code == 200
    server.client.get("/ready")  # probes are not prediction traffic
    after = parse_counts(server.client.get("/metrics").text)
    counted = increase(before, after)
    assert counted.statuses == {"200": 3.0}
    assert counted.classes == {"setosa": 30.0, "versicolor": 30.0, "virginica": 30.0}
    assert counted.buckets[float("inf")] == 3.0
    restarted = Counts({"200": 1.0}, {0.01: 1.0, float("inf"): 1.0}, {"setosa": 3.0})
    assert increase(after, restarted) == restarted, "a counter going down means the pod started again"
    assert increase(None, after) == Counts(), "a pod read the first time counted nothing yet"


def test_quantiles_and_psi() -> None:
    buckets = {0.1: 50.0, 0.5: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.4 * 49 / 50)
    assert histogram_quantile(0.99, {0.1: 0.0, float("inf"): 10.0}) == pytest.approx(0.1)
    assert histogram_quantile(0.99, {}) is None
    same = {"a": 10.0, "b": 10.0}
    assert population_stability(same, {"a": 100.0, "b": 100.0}) == pytest.approx(0.0)
    shifted = population_stability(same, {"a": 190.0, "b": 10.0})
    assert shifted is not None
    assert shifted > 0.2
    assert population_stability(same, {}) is None


def test_too_few_requests_hold_instead_of_passing() -> None:
    few = Counts({"200": 3.0}, {0.01: 3.0, float("inf"): 3.0}, {"a": 3.0})
    many = Counts({"200": 50.0}, {0.01: 50.0, float("inf"): 50.0}, {"a": 50.0})
    assert judge(many, few, Thresholds()).outcome == "hold"
    assert judge(many, many, Thresholds()).outcome == "pass"


def test_without_class_counts_the_distribution_is_not_judged() -> None:
    """A regressor's metrics count no classes (and carry no value quantiles): PSI shows `-`."""
    values = Counts({"200": 50.0}, {0.01: 50.0, float("inf"): 50.0}, {})
    verdict = judge(values, values, Thresholds())
    assert verdict.outcome == "pass"
    assert verdict.row[-1] == "-"


# --- whole runs -------------------------------------------------------------------------------------


def test_a_good_canary_is_promoted_step_by_step(fake: FakeKubectl, pods: dict[str, RunningServer]) -> None:
    stable, canary = [pods["stable-a"], pods["stable-b"]], [pods["good-a"], pods["good-b"]]
    promotion(fake, new=pods["good-a"], old=pods["stable-a"])
    scenario(fake, stable, canary)
    with Traffic([Target(server) for server in stable + canary]):
        args = ("release", "--image", "ml-model:v3", "--canary", "50", "--analysis", "2s", *FAST)
        result = run_cli(*args, *NOISE_FLOOR)
    print(result.output)
    assert result.exit_code == 0, result.output
    assert changes(fake) == [
        "apply -f",
        "scale deployment/ml-model-canary",
        "set image",
        "annotate deployment/ml-model-deployment",
        "delete deployment/ml-model-canary",
    ]
    assert "step 1/2: 1 canary pod(s) beside 2 stable: 33% of the pods" in result.stdout
    assert "step 2/2: 2 canary pod(s) beside 2 stable: 50% of the pods" in result.stdout
    assert result.stdout.count(" pass") >= 4
    assert "released ml-model:v3 (model v3) as revision 2" in result.stdout
    applied = next(call for call in fake.calls() if call.command[:1] == ["apply"])
    manifest = json.loads(applied.stdin)
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "ml-model:v3"
    assert manifest["spec"]["replicas"] == 1
    read = {
        c.command[2].split("/")[6].removesuffix(":5000")
        for c in fake.calls()
        if c.command[:2] == ["get", "--raw"]
    }
    assert read == set(STABLE_PODS + CANARY_PODS), "every stable and canary pod's metrics"


def aborted(
    fake: FakeKubectl, stable: list[RunningServer], canary: RunningServer, traffic: list[Target], *extra: str
) -> str:
    """Run a one-step canary (25% of two stable pods: one pod) that must abort; its error line."""
    scenario(fake, stable, [canary])
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(STABLE))
    with Traffic(traffic):
        result = run_cli("release", "--image", "ml-model:v3", "--canary", "25", *FAST, *extra)
    print(result.output)
    assert result.exit_code == 1
    assert changes(fake) == ["apply -f", "delete deployment/ml-model-canary"], "the stable never touched"
    return result.stderr.strip()


@pytest.fixture
def stable_pods(pods: dict[str, RunningServer]) -> list[RunningServer]:
    return [pods["stable-a"], pods["stable-b"]]


def test_a_canary_answering_errors_is_aborted(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer]
) -> None:
    refused = pods["refused"]
    traffic = [Target(s) for s in [*stable_pods, refused]]
    reason = aborted(fake, stable_pods, refused, traffic, *NOISE_FLOOR)
    assert reason.startswith("error: canary aborted after 2 failed checks: success ratio 0.0% < 99.0%")
    assert "PSI" not in reason
    assert "latency" not in reason
    assert reason.endswith("; ml-model-deployment was not changed")


def test_a_slower_canary_is_aborted(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer]
) -> None:
    slow = Target(pods["good-a"], body_delay=0.6, senders=4)
    reason = aborted(
        fake, stable_pods, pods["good-a"], [*(Target(s) for s in stable_pods), slow], "--min-requests", "4"
    )
    assert reason.startswith("error: canary aborted after 2 failed checks: p99 latency ")
    assert "> 500.0ms" in reason
    assert "success ratio" not in reason
    assert "PSI" not in reason


def test_a_canary_whose_predictions_shift_is_aborted(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer]
) -> None:
    shifted = pods["shifted"]
    reason = aborted(fake, stable_pods, shifted, [Target(s) for s in [*stable_pods, shifted]], *NOISE_FLOOR)
    assert reason.startswith(
        "error: canary aborted after 2 failed checks: prediction distribution shift: PSI "
    )
    assert "success ratio" not in reason
    assert "latency" not in reason


def test_a_canary_without_traffic_holds_then_gives_up(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer]
) -> None:
    reason = aborted(fake, stable_pods, pods["good-b"], [], "--interval", "0.2s")
    assert reason.startswith("error: no data: 3 checks with fewer than 10 prediction requests on a side")


def test_a_pinned_canary_reads_the_pinned_copy_of_the_config_map(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer]
) -> None:
    """--model-sha256 with --canary: the canary pods get the pin the promotion will give the stable ones."""
    stable = cluster.deployment(image="ml-model:v1", version="v1", revision=1, replicas=2)
    container = stable["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "ml-model-config-5hk2m8f9t4"}}]
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(stable))
    fake.on("get", "configmap", reply=reply_json({"data": {"LOG_LEVEL": "INFO"}}))
    scenario(fake, stable_pods, [pods["good-b"]])
    digest = "ab" * 32
    result = run_cli(
        "release",
        "--image",
        "ml-model:v3",
        "--canary",
        "25",
        "--model-sha256",
        digest,
        *FAST,
        "--interval",
        "0.2s",
    )
    assert result.exit_code == 1, "no traffic: it holds, then gives up"
    config, canary = [json.loads(c.stdin) for c in fake.calls() if c.command[:1] == ["apply"]]
    assert config["data"] == {"LOG_LEVEL": "INFO", "MODEL_SHA256": digest}
    canary_container = canary["spec"]["template"]["spec"]["containers"][0]
    assert canary_container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]


def test_an_error_during_the_analysis_removes_the_canary(fake: FakeKubectl) -> None:
    current_context(fake)
    fake.on("get", "deployment/ml-model-canary", "--ignore-not-found", reply={"stdout": ""})
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(STABLE))
    fake.on("apply", "-f", "-", reply={"stdout": "created\n"})
    fake.on("get", "deployment/ml-model-canary", reply=reply_json(canary_deployment(1)))
    fake.on(
        "get",
        "replicasets",
        reply={"stderr": "error: the server has asked for the client to provide credentials\n", "exit": 1},
    )
    fake.on("delete", "deployment/ml-model-canary", reply={"stdout": "deleted\n"})
    result = run_cli("release", "--image", "ml-model:v3", "--canary", "25", *FAST)
    assert result.exit_code == 1
    assert "provide credentials" in result.stderr
    assert changes(fake) == ["apply -f", "delete deployment/ml-model-canary"]


def test_a_dry_run_prints_the_plan_and_runs_nothing(fake: FakeKubectl) -> None:
    result = run_cli("release", "--image", "ml-model:v3", "--canary", "25", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "$ kubectl apply -f - <<< ml-model-canary: the stable spec, the new image" in result.stdout
    assert "/proxy/metrics" in result.stdout
    assert fake.calls() == []


def test_analysis_options_without_canary_are_refused(fake: FakeKubectl) -> None:
    args = ["release", "--image", "ml-model:v3", "--analysis", "5m"]
    result = CliRunner().invoke(APP, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "add --canary PERCENT" in result.output
    assert fake.calls() == []


def test_a_canary_left_behind_is_not_overwritten(fake: FakeKubectl) -> None:
    current_context(fake)
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(STABLE))
    fake.on("get", "deployment/ml-model-canary", reply=reply_json(canary_deployment(1)))
    result = run_cli("release", "--image", "ml-model:v3", "--canary", "25")
    assert result.exit_code == 1
    assert "a canary Deployment ml-model-canary exists already" in result.stderr
    assert changes(fake) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_removes_the_canary(
    fake: FakeKubectl, pods: dict[str, RunningServer], stable_pods: list[RunningServer], stop: signal.Signals
) -> None:
    """The real CLI in its own process, stopped while it judges the canary."""
    scenario(fake, stable_pods, [pods["good-a"]])
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(STABLE))
    command = [sys.executable, "-m", "mlkube", "release", "--image", "ml-model:v3", "--canary", "25"]
    process = subprocess.Popen(
        [*command, "--analysis", "10m", *FAST],
        env={**os.environ, **fake.environ()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # at most 60 s for the analysis to begin
            if any(call.command[:2] == ["get", "--raw"] for call in fake.calls()):
                break
            time.sleep(0.1)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, stdout + stderr
    assert "error: interrupted: the canary ml-model-canary is removed" in stderr
    assert changes(fake) == ["apply -f", "delete deployment/ml-model-canary"]
    assert all(line.startswith(PINNED) for line in fake.lines()[2:])
