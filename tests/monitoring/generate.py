"""Write deploy/monitoring/prometheusrule.yaml from the one rules file (run after editing the rules).

    .venv/bin/python -m tests.monitoring.generate

The Prometheus Operator reads rules from a PrometheusRule object, whose `spec` is a rule file's content,
and kustomize cannot embed a file into an object's field. So the object is generated here, by indenting
the rules file (its comments travel along), and `test_rules.py` fails while the committed copy differs.
"""

from __future__ import annotations

from tests.monitoring.sources import PROMETHEUS_RULE, RULES

HEADER = """\
# GENERATED from rules/mlkube.rules.yaml by `.venv/bin/python -m tests.monitoring.generate`: edit that
# file, then regenerate this one (tests/monitoring/test_rules.py fails while they differ).
# The Prometheus Operator's form of the same rules; kube-prometheus-stack only loads PrometheusRules
# whose labels match its ruleSelector (by default `release: <its Helm release name>`).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ml-model-rules
  labels:
    app: ml-model
    release: kube-prometheus-stack
spec:
"""


def prometheus_rule(rules_text: str) -> str:
    """The PrometheusRule whose `spec` is `rules_text`: its leading comment goes, the rest is indented
    (the rules' own comments kept; blank lines stay blank, so block scalars keep their content)."""
    lines = rules_text.splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return HEADER + "".join(f"  {line}\n" if line.strip() else "\n" for line in lines)


def main() -> None:
    PROMETHEUS_RULE.write_text(prometheus_rule(RULES.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {PROMETHEUS_RULE}")


if __name__ == "__main__":
    main()
