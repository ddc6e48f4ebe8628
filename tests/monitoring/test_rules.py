"""The rules file: valid (`promtool check rules`), unit-tested alert by alert (`promtool test rules`), the
same rules in the PrometheusRule, and every metric each query names exported by mlkube, recorded by a
rule or listed as another exporter's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.server import metrics
from tests.deploy.tools import explain, run
from tests.monitoring import sources
from tests.monitoring.generate import prometheus_rule
from tests.monitoring.tools import prometheus_tool


def all_expressions() -> list[sources.Expression]:
    return [
        *sources.rule_expressions(),
        *sources.dashboard_expressions(),
        *(
            sources.Expression("dashboard variable", selector)
            for selector, _ in sources.dashboard_variable_queries()
        ),
        *sources.flagger_expressions("ml-model", "ml-model-deployment"),
        *sources.argo_expressions("ml-model", "7d9f8c6b5"),  # pragma: allowlist secret
        *sources.adapter_expressions("ml-model", "ml-model-deployment-7d9f8c6b5-x2k4q"),
    ]


def alert_tests(test_file: Path) -> list[tuple[str, dict[str, Any]]]:
    """`(test group name, alert_rule_test)` pairs of one promtool test file."""
    groups = sources.load_yaml(test_file)["tests"]
    return [(group["name"], case) for group in groups for case in group.get("alert_rule_test", [])]


def test_promtool_accepts_the_rules() -> None:
    result = run([prometheus_tool("promtool"), "check", "rules", str(sources.RULES)])
    assert result.returncode == 0, explain(result)
    assert f"SUCCESS: {len(sources.rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert sources.RULE_TESTS, "no promtool test files"
    result = run([prometheus_tool("promtool"), "test", "rules", *map(str, sources.RULE_TESTS)])
    assert result.returncode == 0, explain(result)
    assert result.stdout.count("SUCCESS") == len(sources.RULE_TESTS), explain(result)


def test_unit_tests_load_the_one_rules_file() -> None:
    for test_file in sources.RULE_TESTS:
        rule_files = sources.load_yaml(test_file)["rule_files"]
        assert [(test_file.parent / path).resolve() for path in rule_files] == [sources.RULES]


@pytest.mark.parametrize("alert", sources.alert_names())
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    """One scenario where the alert fires, and one where it must stay silent throughout."""
    cases = [pair for test_file in sources.RULE_TESTS for pair in alert_tests(test_file)]
    mine = [(group, case) for group, case in cases if case["alertname"] == alert]
    firing_groups = {group for group, case in mine if case["exp_alerts"]}
    silent_groups = {group for group, _ in mine} - firing_groups
    assert firing_groups, f"{alert}: no test where it fires"
    assert silent_groups, f"{alert}: no test where it stays silent"
    for _, case in mine:
        for expected in case["exp_alerts"]:
            assert expected.get("exp_annotations"), f"{alert}: the test should pin the message too"


def test_prometheus_rule_is_the_rules_file() -> None:
    committed = sources.PROMETHEUS_RULE.read_text(encoding="utf-8")
    expected = prometheus_rule(sources.RULES.read_text(encoding="utf-8"))
    assert committed == expected, "run `.venv/bin/python -m tests.monitoring.generate` and commit the result"
    assert yaml.safe_load(committed)["spec"] == sources.load_yaml(sources.RULES)


def test_every_metric_queried_is_exported_recorded_or_external() -> None:
    known = sources.exported_metrics() | sources.recorded_metrics() | set(sources.EXTERNAL_METRICS)
    unknown = {
        f"{expression.origin}: {metric}"
        for expression in all_expressions()
        for metric in expression.usage.metrics
        if metric not in known
    }
    assert unknown == set()


def test_the_known_metrics_are_the_real_ones() -> None:
    """Control: the list above holds what /metrics shows (the live test reads a real server's)."""
    assert {"mlkube_requests_total", "mlkube_request_duration_seconds_bucket", "mlkube_model_info"} <= (
        sources.exported_metrics()
    )
    assert "mlkube_requests" not in sources.exported_metrics()


def test_other_exporters_metrics_use_only_their_documented_labels() -> None:
    for expression in all_expressions():
        used = expression.usage
        for selector in used.selectors:
            documented = sources.EXTERNAL_METRICS.get(selector.metric)
            if documented is not None:
                assert {m.label for m in selector.matchers} <= documented, expression.origin
                if used.metrics <= set(sources.EXTERNAL_METRICS):
                    assert used.grouping_labels <= documented, expression.origin


def test_restart_alert_watches_the_deployments_container() -> None:
    deployment = sources.load_yaml(sources.REPO / "deploy/kubernetes/base/deployment.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [restarts] = [e for e in sources.rule_expressions() if e.origin == "MLKubePodRestarting"]
    [selector] = restarts.usage.selectors
    assert [(m.label, m.op, m.value) for m in selector.matchers] == [("container", "=", container["name"])]


def test_latency_objective_is_a_bucket_bound() -> None:
    """The SLO counts the 0.5 s bucket exactly: that bound must stay among the histogram's buckets."""
    [slow] = [e for e in sources.rule_expressions() if e.origin == "mlkube:request_slow_ratio:rate5m"]
    bounds = {m.value for s in slow.usage.selectors for m in s.matchers if m.label == "le"}
    assert bounds == {"0.5"}
    assert 0.5 in metrics.LATENCY_BUCKETS


def test_dashboard_panels_query_through_the_datasource_variable() -> None:
    panels = list(sources.dashboard_panels())
    assert len({panel["id"] for panel in panels}) == len(panels)
    queried = [panel for panel in panels if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"


def test_plain_prometheus_config_loads_the_rules_and_keeps_the_rules_labels(tmp_path: Path) -> None:
    """`promtool check config` on it, with the pod discovery swapped for a static target: Debian builds
    Prometheus without Kubernetes service discovery (upstream's binaries and images have it)."""
    config = sources.load_yaml(sources.PLAIN_CONFIG)
    assert [(sources.PLAIN_CONFIG.parent / path).resolve() for path in config["rule_files"]] == [
        sources.RULES
    ]
    [job] = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:5000"]}]
    config["rule_files"] = [str(sources.RULES)]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run([prometheus_tool("promtool"), "check", "config", str(checked)])
    assert result.returncode == 0, explain(result)
    targets = {relabel.get("target_label") for relabel in job["relabel_configs"]}
    grouped = {label for e in sources.rule_expressions() for label in e.usage.grouping_labels}
    from_the_pods = {"le", "class_name", "feature", "model_name", "model_version"}  # mlkube's own labels
    assert grouped - from_the_pods <= targets
