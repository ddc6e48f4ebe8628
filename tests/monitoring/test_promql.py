"""The PromQL reader on the constructs the rules and the dashboard use: it must see every metric."""

from __future__ import annotations

import pytest

from tests.monitoring.promql import Matcher, Selector, usage


def test_reads_selectors_inside_functions_and_aggregations() -> None:
    found = usage(
        "histogram_quantile(0.99, sum by (namespace, le) ("
        'rate(mlkube_request_duration_seconds_bucket{route!~"/health|/ready", le="0.5"}[5m])))'
    )
    assert found.selectors == [
        Selector(
            "mlkube_request_duration_seconds_bucket",
            (Matcher("route", "!~", "/health|/ready"), Matcher("le", "=", "0.5")),
        )
    ]
    assert found.labels == {"namespace", "le", "route"}


def test_reads_both_sides_of_binary_operators_and_vector_matching() -> None:
    found = usage(
        "sum by (a, class_name) (rate(x_total[1h])) / ignoring (class_name) group_left sum by (a) (y)"
        " or 0 * z unless on (pod) w{ready='true'} offset 5m > bool 1e3"
    )
    assert [selector.metric for selector in found.selectors] == ["x_total", "y", "z", "w"]
    assert found.grouping_labels == {"a", "class_name", "pod"}
    assert found.selectors[-1].promql() == 'w{ready="true"}'


def test_recording_rule_names_with_colons_are_metrics() -> None:
    assert usage('mlkube:requests:rate5m{namespace=~"$ns"} > 0.01').metrics == {"mlkube:requests:rate5m"}


def test_text_it_cannot_read_is_an_error_not_an_empty_answer() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        usage("sum(rate(x[5m])) § 2")
