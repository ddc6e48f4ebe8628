"""A real Prometheus (Debian's package, on loopback, a temporary config and data folder) scrapes two real
mlkube servers every second and evaluates deploy/monitoring's rules file every second, under a small
bounded load: the recording rules give the expected series, the alerts go pending for the broken server
only, and every metric and label that the rules, the dashboard, the Flagger templates and the
prometheus-adapter rule query exists. Renaming a metric or a label therefore fails here, not on a
dashboard.

One server serves the notes' model (pod `SERVING_POD`); the other was given a tampered bundle, so it is
never ready and answers /predict with 503 (pod `REFUSING_POD`, in a namespace of its own). The scrape
adds the namespace and pod labels a PodMonitor adds in a cluster.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.monitoring import sources
from tests.monitoring.promql import Usage, usage
from tests.monitoring.tools import prometheus_tool
from tests.support import RunningServer, free_port, start_server

NAMESPACE, BROKEN_NAMESPACE = "mlkube-test", "mlkube-broken"
DEPLOYMENT = "ml-model-deployment"
POD_TEMPLATE_HASH = "7d9f8c6b5"  # pragma: allowlist secret
SERVING_POD = f"{DEPLOYMENT}-{POD_TEMPLATE_HASH}-x2k4q"  # a Deployment's pod name, as Flagger and Argo expect
REFUSING_POD = f"{DEPLOYMENT}-{POD_TEMPLATE_HASH}-r9z8w"
SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
EVALUATED_WITHIN = 40.0  # seconds of load at most (it takes a few scrapes)
SERVING = {"namespace": NAMESPACE, "model_name": "iris", "model_version": "v1"}
REFUSING = {"namespace": BROKEN_NAMESPACE, "model_name": "iris", "model_version": "unknown"}

Sample = dict[str, Any]


@dataclass
class Prometheus:
    """Prometheus' HTTP API."""

    client: httpx.Client

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        answer = self.client.get(path, params=params)
        assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[Sample]:
        data = self._get("/api/v1/query", {"query": promql})
        assert data["resultType"] == "vector", data
        result: list[Sample] = data["result"]
        return result

    def series(self, selector: str) -> list[dict[str, str]]:
        """Label sets of the series `selector` matches over the last 10 minutes."""
        start = str(time.time() - 600)
        result: list[dict[str, str]] = self._get("/api/v1/series", {"match[]": selector, "start": start})
        return result

    def alerts(self) -> list[Sample]:
        result: list[Sample] = self._get("/api/v1/alerts")["alerts"]
        return result


def value_of(samples: list[Sample], **labels: str) -> float:
    """The value of the one sample whose labels include `labels`."""
    found = [s for s in samples if labels.items() <= s["metric"].items()]
    assert len(found) == 1, f"expected one sample with {labels}, got {samples}"
    return float(found[0]["value"][1])


def missing(prometheus: Prometheus, origin: str, used: Usage) -> list[str]:
    """What `used` queries that Prometheus does not have: selectors matching no series, labels no
    matched series carries. Other exporters' metrics (kube-state-metrics) are checked by test_rules."""
    problems, present = [], {"__name__"}
    for selector in used.selectors:
        if selector.metric in sources.EXTERNAL_METRICS:
            present |= sources.EXTERNAL_METRICS[selector.metric]
            continue
        found = prometheus.series(selector.promql())
        if not found:
            problems.append(f"{origin}: no series {selector.promql()}")
        present |= {label for series in found for label in series}
    problems += [f"{origin}: no label {label}" for label in sorted(used.labels - present)]
    return problems


@pytest.fixture(scope="module")
def serving(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def refusing(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose bundle fails its sha256 check: alive, never ready."""
    models = tmp_path_factory.mktemp("tampered")
    bundle = models / "iris" / "v1"
    shutil.copytree(model_dir / "iris" / "v1", bundle)
    with (bundle / "model.onnx").open("ab") as onnx:
        onnx.write(b"\0")
    with start_server({"MODEL_DIR": str(models), "WORKERS": "1"}) as running:
        yield running


def prometheus_config(serving: RunningServer, refusing: RunningServer) -> dict[str, Any]:
    def target(server: RunningServer, namespace: str, pod: str) -> dict[str, Any]:
        address = server.url.removeprefix("http://")
        return {"targets": [address], "labels": {"namespace": namespace, "pod": pod, "container": "ml-model"}}

    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(sources.RULES)],
        "scrape_configs": [
            {
                "job_name": "ml-model",
                "static_configs": [
                    target(serving, NAMESPACE, SERVING_POD),
                    target(refusing, BROKEN_NAMESPACE, REFUSING_POD),
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    return prometheus_tool("prometheus")


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str,  # first: a missing binary skips before the servers start
    serving: RunningServer,
    refusing: RunningServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Prometheus]:
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(serving, refusing)), encoding="utf-8")
    port, log_path = free_port(), folder / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False)
    try:
        wait_until_ready(process, client, log_path)
        yield Prometheus(client)
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(process: subprocess.Popen[bytes], client: httpx.Client, log_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if client.get("/-/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready within 20 s:\n{log_path.read_text()}")


def not_yet_evaluated(prometheus: Prometheus) -> list[str]:
    """Recording rules without a series for the serving model yet, and alerts not yet pending."""
    waiting = [
        name
        for name in sorted(sources.recorded_metrics())
        if not prometheus.query(f'{name}{{namespace="{NAMESPACE}",model_version="v1"}}')
    ]
    pending = {alert["labels"]["alertname"] for alert in prometheus.alerts()}
    return waiting + sorted(
        {"MLKubeModelNotReady", "MLKubeHighErrorRatio", "MLKubeClassShareShift"} - pending
    )


@pytest.fixture(scope="module")
def loaded(prometheus: Prometheus, serving: RunningServer, refusing: RunningServer) -> Prometheus:
    """A batch of two setosa rows and one virginica row to the serving server and one row to the refusing
    one, every 0.1 s, until every rule has been evaluated on them (a bounded loop). A batch is counted at
    once, so every scrape sees the classes at exactly 2:1."""
    deadline = time.monotonic() + EVALUATED_WITHIN
    while True:
        batch = {"instances": [SETOSA, SETOSA, VIRGINICA]}
        assert serving.client.post("/predict", json=batch).status_code == 200
        assert refusing.client.post("/predict", json={"features": SETOSA}).status_code == 503
        waiting = not_yet_evaluated(prometheus)
        if not waiting:
            return prometheus
        if time.monotonic() > deadline:
            raise AssertionError(f"not evaluated after {EVALUATED_WITHIN:.0f} s of load: {waiting}")
        time.sleep(0.1)


def test_request_rules_give_rate_error_ratio_and_latency_per_model_version(loaded: Prometheus) -> None:
    rates = loaded.query("mlkube:requests:rate5m")
    name = {"__name__": "mlkube:requests:rate5m"}
    assert [sample["metric"] for sample in rates] in (
        [{**name, **SERVING}, {**name, **REFUSING}],
        [{**name, **REFUSING}, {**name, **SERVING}],
    ), "one series per namespace, model and version; probes and scrapes left out"
    assert all(float(sample["value"][1]) > 0 for sample in rates)
    errors = loaded.query("mlkube:request_error_ratio:rate5m")
    assert value_of(errors, **SERVING) == 0
    assert value_of(errors, **REFUSING) == 1
    slow = loaded.query("mlkube:request_slow_ratio:rate5m")
    assert value_of(slow, **SERVING) == 0
    p99 = value_of(loaded.query("mlkube:request_duration_seconds:p99_rate5m"), **SERVING)
    assert 0 < p99 <= 0.5


def test_prediction_rules_give_class_shares_and_their_shift(loaded: Prometheus) -> None:
    for window in ("1h", "1d"):
        shares = loaded.query(f"mlkube:prediction_class_share:ratio_rate{window}")
        assert {sample["metric"]["class_name"] for sample in shares} == {"setosa", "virginica"}
        assert value_of(shares, class_name="setosa", **SERVING) == pytest.approx(2 / 3)
        assert value_of(shares, class_name="virginica", **SERVING) == pytest.approx(1 / 3)
        assert sum(float(sample["value"][1]) for sample in shares) == pytest.approx(1)
    psi = loaded.query("mlkube:prediction_class_psi:1h_vs_1d")
    assert value_of(psi, **SERVING) == pytest.approx(0, abs=1e-9), "both windows hold the same traffic"


def test_input_drift_rules_compare_recent_classes_with_training_and_count_out_of_range(
    loaded: Prometheus,
) -> None:
    out_of_range = loaded.query("mlkube:feature_out_of_range_share:ratio_rate5m")
    assert out_of_range, "one series per feature of the serving model"
    assert all(float(sample["value"][1]) == 0 for sample in out_of_range), "the load sends training rows"
    recent = loaded.query("mlkube:recent_class_share:ratio")
    assert value_of(recent, class_name="setosa", **SERVING) == pytest.approx(2 / 3)
    assert value_of(recent, class_name="versicolor", **SERVING) == 0
    training = loaded.query("mlkube:training_class_share:max")
    assert value_of(training, class_name="setosa", **SERVING) == pytest.approx(1 / 3, abs=0.01)
    psi = value_of(loaded.query("mlkube:class_share_psi:recent_vs_training"), **SERVING)
    assert psi > 0.2, "2:0:1 against Iris' even training classes is a shift"


def test_alerts_go_pending_for_the_refusing_server_and_the_shifted_classes(loaded: Prometheus) -> None:
    active = {
        (alert["labels"]["alertname"], alert["state"], alert["labels"]["namespace"])
        for alert in loaded.alerts()
    }
    assert active == {
        ("MLKubeModelNotReady", "pending", BROKEN_NAMESPACE),
        ("MLKubeHighErrorRatio", "pending", BROKEN_NAMESPACE),
        # the load's classes are 2:0:1 where training's were even: the input-drift alert is pending
        ("MLKubeClassShareShift", "pending", NAMESPACE),
    }
    [not_ready] = [a for a in loaded.alerts() if a["labels"]["alertname"] == "MLKubeModelNotReady"]
    assert not_ready["labels"]["pod"] == REFUSING_POD


def test_every_metric_and_label_queried_exists(loaded: Prometheus) -> None:
    expressions = [
        *sources.rule_expressions(),
        *sources.dashboard_expressions(),
        # the broken namespace's pods answered 5xx, so the success rate's error selector matches there
        *sources.flagger_expressions(BROKEN_NAMESPACE, DEPLOYMENT),
        *sources.argo_expressions(BROKEN_NAMESPACE, POD_TEMPLATE_HASH),
        *sources.adapter_expressions(NAMESPACE, SERVING_POD),
    ]
    problems = [
        problem
        for expression in expressions
        for problem in missing(loaded, expression.origin, expression.usage)
    ]
    for selector, label in sources.dashboard_variable_queries():
        problems += missing(loaded, f"dashboard variable {label}", usage(f"sum by ({label}) ({selector})"))
    assert problems == []


def test_every_sample_name_mlkube_exports_reaches_prometheus(loaded: Prometheus) -> None:
    """The static list test_rules checks names against is what a real server's /metrics carries."""
    assert [name for name in sorted(sources.exported_metrics()) if not loaded.series(name)] == []


def test_a_renamed_metric_or_label_is_reported(loaded: Prometheus) -> None:
    """Control: the existence check above is not vacuous."""
    renamed = usage('sum by (model) (rate(mlkube_request_total{route="/predict"}[5m]))')
    assert missing(loaded, "renamed", renamed) == [
        'renamed: no series mlkube_request_total{route="/predict"}',
        "renamed: no label model",
        "renamed: no label route",
    ]


def test_flagger_checks_answer_like_flaggers_built_in_ones(loaded: Prometheus) -> None:
    """Success rate in percent and p99 in milliseconds, one value each, for the Deployment's pods."""
    serving = {e.origin: loaded.query(e.promql) for e in sources.flagger_expressions(NAMESPACE, DEPLOYMENT)}
    broken = {
        e.origin: loaded.query(e.promql) for e in sources.flagger_expressions(BROKEN_NAMESPACE, DEPLOYMENT)
    }
    assert [float(s["value"][1]) for s in serving["MetricTemplate mlkube-request-success-rate"]] == [100]
    assert [float(s["value"][1]) for s in broken["MetricTemplate mlkube-request-success-rate"]] == [0]
    [duration] = serving["MetricTemplate mlkube-request-duration"]
    assert 0 < float(duration["value"][1]) <= 500


def test_argo_rollouts_checks_answer_for_the_canarys_pods(loaded: Prometheus) -> None:
    serving = {
        e.origin: loaded.query(e.promql) for e in sources.argo_expressions(NAMESPACE, POD_TEMPLATE_HASH)
    }
    broken = {
        e.origin: loaded.query(e.promql)
        for e in sources.argo_expressions(BROKEN_NAMESPACE, POD_TEMPLATE_HASH)
    }
    assert [float(s["value"][1]) for s in serving["AnalysisTemplate success-rate"]] == [100]
    assert [float(s["value"][1]) for s in broken["AnalysisTemplate success-rate"]] == [0]
    [p99] = serving["AnalysisTemplate p99-milliseconds"]
    assert 0 < float(p99["value"][1]) <= 500
    other_hash = sources.argo_expressions(NAMESPACE, "5c4b7d8f6")
    assert [loaded.query(e.promql) for e in other_hash] == [[], []], "the stable pods are not the canary"


def test_adapter_query_gives_the_pods_requests_in_flight(loaded: Prometheus) -> None:
    """One value for the pod the HPA asks about: a count, so never negative (under this small load the
    scrapes mostly land between requests, so it may well be 0; the real-server test in
    tests/server/test_metrics.py shows the gauge counting held requests)."""
    [_, metrics_query] = sources.adapter_expressions(NAMESPACE, SERVING_POD)
    [sample] = loaded.query(metrics_query.promql)
    assert sample["metric"] == {"pod": SERVING_POD}
    assert float(sample["value"][1]) >= 0
