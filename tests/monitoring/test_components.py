"""The monitoring component (deploy/monitoring) and the in-flight HPA component, each overlay rendered
with both by the real `kubectl kustomize` (in a temporary copy of deploy/, as a user adds them), then
strict schema validation for Kubernetes 1.30-1.35, checkov, and their wiring: the PodMonitor finds the
pods' metrics port, the PrometheusRule and the dashboard ConfigMap hold the files, the HPA asks for the
metric the prometheus-adapter rule publishes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.rendered import OVERLAYS, Doc, Rendered, kustomize, labels_match, pod_labels
from tests.deploy.tools import KUBERNETES_VERSIONS, REPO, checkov, explain, failures, kubernetes_validate
from tests.monitoring import sources

COMPONENTS = ("../../../monitoring", "../../components/hpa-requests-in-flight")
CUSTOM_RESOURCES = {"PodMonitor", "PrometheusRule"}  # the Prometheus Operator's: no schema offline


def render_with_components(overlay: str, tree: Path) -> Rendered:
    shutil.copytree(REPO / "deploy", tree / "deploy", ignore=shutil.ignore_patterns("secret.env"))
    kustomization = tree / "deploy" / "kubernetes" / "overlays" / overlay / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
    spec["components"] = [*spec.get("components", []), *COMPONENTS]
    kustomization.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    text = kustomize(kustomization.parent)
    path = tree / f"{overlay}+monitoring.yaml"
    path.write_text(text, encoding="utf-8")
    return Rendered(f"{overlay}+monitoring", path, [doc for doc in yaml.safe_load_all(text) if doc])


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return {
        overlay: render_with_components(overlay, tmp_path_factory.mktemp(f"tree-{overlay}"))
        for overlay in OVERLAYS
    }


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, monitored: dict[str, Rendered]) -> Rendered:
    overlay: str = request.param
    return monitored[overlay]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlays_with_the_components_pass_strict_schema_validation(
    monitored: dict[str, Rendered], version: str
) -> None:
    result = kubernetes_validate([rendered.path for rendered in monitored.values()], version)
    assert result.returncode == 0, explain(result)
    kinds = {doc["kind"] for rendered in monitored.values() for doc in rendered.docs}
    assert kinds >= CUSTOM_RESOURCES
    not_validated = set(re.findall(r"find schema for kind (\w+)", result.stdout + result.stderr))
    assert not_validated == CUSTOM_RESOURCES, "every built-in kind is validated, only these are not"


CLUSTER_SCOPED_KINDS = {"Namespace", "PriorityClass"}


def test_new_objects_carry_the_notes_label_and_the_overlays_namespace(rendered: Rendered) -> None:
    namespaces = {
        doc["metadata"].get("namespace") for doc in rendered.docs if doc["kind"] not in CLUSTER_SCOPED_KINDS
    }
    assert len(namespaces) == 1, "all in the overlay's namespace (none: minikube's default)"
    for doc in [*rendered.all("PodMonitor"), *rendered.all("PrometheusRule"), *rendered.all("ConfigMap")]:
        assert doc["metadata"]["labels"]["app"] == "ml-model"


def test_pod_monitor_scrapes_the_pods_metrics_port_and_path(rendered: Rendered) -> None:
    monitor = rendered.one("PodMonitor")["spec"]
    assert labels_match(monitor["selector"]["matchLabels"], pod_labels(rendered))
    [endpoint] = monitor["podMetricsEndpoints"]
    ports = {port["name"]: port["containerPort"] for port in rendered.container["ports"]}
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"])
    assert endpoint["path"] == annotations["prometheus.io/path"]


def test_prometheus_rule_holds_the_rules_file(rendered: Rendered) -> None:
    assert rendered.one("PrometheusRule")["spec"] == sources.load_yaml(sources.RULES)


def test_dashboard_config_map_holds_the_dashboard_for_grafanas_sidecar(rendered: Rendered) -> None:
    [config_map] = [d for d in rendered.all("ConfigMap") if d["metadata"]["name"] == "ml-model-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["mlkube.json"]) == sources.dashboard()


def pods_metric(hpa: Doc) -> Doc:
    [metric] = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    pods: Doc = metric["pods"]
    return pods


def test_hpa_scales_on_the_adapters_metric_and_keeps_cpu(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler")
    [rule] = sources.adapter_rules()
    assert pods_metric(hpa)["metric"]["name"] == rule["name"]["as"]
    assert pods_metric(hpa)["target"] == {"type": "AverageValue", "averageValue": "4"}
    resources = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert resources == [{"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}]
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.deployment["metadata"]["name"]


def test_adapter_rule_maps_the_scrape_labels_to_namespace_and_pod() -> None:
    [rule] = sources.adapter_rules()
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]


def test_checkov_finds_no_failed_check_in_the_overlays_with_the_components(
    monitored: dict[str, Rendered], tmp_path: Path
) -> None:
    files = []
    for rendered in monitored.values():
        (tmp_path / rendered.path.name).write_bytes(rendered.path.read_bytes())
        files += ["--file", rendered.path.name]
    reports = checkov(["--framework", "kubernetes", *files], cwd=tmp_path)
    assert [report["check_type"] for report in reports] == ["kubernetes"]
    assert reports[0]["summary"]["passed"] > 0, "checkov checked nothing"
    assert failures(reports) == []
