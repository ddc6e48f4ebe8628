"""Every PromQL expression the monitoring files hold, read from the files themselves.

Rules (deploy/monitoring/rules), the Grafana dashboard's panels and variables, the Flagger metric
templates and the prometheus-adapter rule, each with its templating filled in for a given namespace and
Deployment, so a test can list their metrics and labels or run them against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlkube.server import metrics
from tests.monitoring.promql import Usage, usage

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "rules" / "mlkube.rules.yaml"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
PLAIN_CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "dashboards" / "mlkube.json"
FLAGGER = MONITORING / "flagger" / "metric-templates.yaml"
ARGO = MONITORING / "argo-rollouts" / "analysis-template.yaml"
HPA_COMPONENT = REPO / "deploy" / "kubernetes" / "components" / "hpa-requests-in-flight"
ADAPTER = HPA_COMPONENT / "prometheus-adapter-values.yaml"

# Metrics the files use that mlkube does not export, with the labels their exporter documents
# (kube-state-metrics: https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/pod-metrics.md).
EXTERNAL_METRICS = {"kube_pod_container_status_restarts_total": {"namespace", "pod", "container", "uid"}}

# Grafana's variables as a live test fills them in: every namespace and model, a short rate window.
GRAFANA_VARIABLES = {"$datasource": "", "$namespace": ".+", "$model": ".+", "$__rate_interval": "1m"}


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it comes from (for messages)."""

    origin: str
    promql: str

    @property
    def usage(self) -> Usage:
        return usage(self.promql)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def recorded_metrics() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules() if "alert" in rule]


def rule_expressions() -> list[Expression]:
    return [Expression(rule.get("record") or rule["alert"], rule["expr"]) for rule in rules()]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


def dashboard_expressions() -> list[Expression]:
    found = []
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            found.append(Expression(f"panel {panel['title']!r}", fill_grafana(target["expr"])))
    return found


def dashboard_variable_queries() -> list[tuple[str, str]]:
    """`(metric selector, label)` of every `label_values(...)` variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
        assert match, f"variable {variable['name']}: not a label_values(...) query: {text}"
        found.append((fill_grafana(match.group(1)), match.group(2)))
    return found


def fill_grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def flagger_templates() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(FLAGGER.read_text(encoding="utf-8")) if doc]


def flagger_expressions(namespace: str, target: str, interval: str = "1m") -> list[Expression]:
    """Each MetricTemplate's query as Flagger runs it for Deployment `target` in `namespace`."""
    found = []
    for template in flagger_templates():
        query = template["spec"]["query"]
        for name, value in {"namespace": namespace, "target": target, "interval": interval}.items():
            query = re.sub(r"\{\{\s*" + name + r"\s*\}\}", value, query)
        assert "{{" not in query, f"{template['metadata']['name']}: unfilled template in {query}"
        found.append(Expression(f"MetricTemplate {template['metadata']['name']}", query))
    return found


def argo_expressions(namespace: str, canary_hash: str) -> list[Expression]:
    """Each AnalysisTemplate metric's query as Argo Rollouts runs it for the canary's ReplicaSet."""
    template = load_yaml(ARGO)
    found = []
    for metric in template["spec"]["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        query = query.replace("{{args.namespace}}", namespace).replace("{{args.canary-hash}}", canary_hash)
        assert "{{" not in query, f"{metric['name']}: unfilled template in {query}"
        found.append(Expression(f"AnalysisTemplate {metric['name']}", query))
    return found


def adapter_rules() -> list[dict[str, Any]]:
    rules_: list[dict[str, Any]] = load_yaml(ADAPTER)["rules"]["custom"]
    return rules_


def adapter_expressions(namespace: str, pod: str) -> list[Expression]:
    """Each prometheus-adapter rule's discovery query, and its metrics query as the adapter fills it in
    when the HPA asks for one pod's value (its documented `<<.Series>>`, `<<.LabelMatchers>>`,
    `<<.GroupBy>>`)."""
    found = []
    for rule in adapter_rules():
        series = re.fullmatch(r"\^?(\w+)\$?", rule["name"]["matches"])
        assert series, f"adapter rule: name.matches must name one series: {rule['name']['matches']}"
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series.group(1))
            .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod="{pod}"')
            .replace("<<.GroupBy>>", "pod")
        )
        assert "<<" not in query, f"adapter rule: unfilled template in {query}"
        found.append(Expression("prometheus-adapter seriesQuery", rule["seriesQuery"]))
        found.append(Expression(f"prometheus-adapter metricsQuery {rule['name']['as']}", query))
    return found


SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exported_metrics() -> set[str]:
    """The sample names mlkube's /metrics carries, from the metric objects themselves."""
    names = set()
    for collector in (metrics.REQUESTS, metrics.LATENCY, metrics.PREDICTIONS, metrics.CONFIDENCE,
                      metrics.CALL_ROWS, metrics.MODEL_INFO, metrics.OUT_OF_RANGE,
                      metrics.RECENT_PREDICTIONS, metrics.TRAINING_CLASS_SHARE,
                      metrics.IN_FLIGHT):  # fmt: skip
        for family in collector.describe():
            names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
    return names
