"""Which metrics and labels a PromQL expression uses: a small reader, not a full parser.

It finds every series selector (`name{label op "value", ...}`) and every label named in a grouping
(`by`, `without`, `on`, `ignoring`, `group_left`, `group_right`), skipping functions, aggregations,
keywords, strings, numbers and ranges. Enough to check that what the rules and the dashboard query
exists; `test_promql.py` pins it on the constructs they use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])
    |(?P<number>(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])*)
    |(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<punct>=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>])
    |(?P<space>\s+)
    """,
    re.VERBOSE,
)
AGGREGATIONS = frozenset(
    (
        *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"),
        *("bottomk", "topk", "quantile", "limitk", "limit_ratio"),
    )
)
GROUPINGS = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))
KEYWORDS = frozenset(("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"))
MATCH_OPERATORS = frozenset(("=", "!=", "=~", "!~"))


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def promql(self) -> str:
        inner = ",".join(f'{m.label}{m.op}"{_escape(m.value)}"' for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric


@dataclass
class Usage:
    """The selectors of one expression and every label it names (in matchers and groupings)."""

    selectors: list[Selector] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> set[str]:
        return {selector.metric for selector in self.selectors}

    @property
    def labels(self) -> set[str]:
        matched = {m.label for selector in self.selectors for m in selector.matchers}
        return matched | self.grouping_labels


def usage(expr: str) -> Usage:
    """The selectors and labels of a PromQL expression."""
    tokens = _tokens(expr)
    found = Usage()
    position = 0
    while position < len(tokens):
        kind, text = tokens[position]
        following = tokens[position + 1][1] if position + 1 < len(tokens) else ""
        position += 1
        if kind != "name":
            if text == "{":  # a selector without a metric name is not used in mlkube's queries
                raise ValueError(f"selector without a metric name in {expr!r}")
            continue
        if text in GROUPINGS:
            if following == "(":
                labels, position = _label_list(tokens, position + 1)
                found.grouping_labels |= labels
            continue
        if text in AGGREGATIONS or text in KEYWORDS or following == "(":
            continue
        matchers: tuple[Matcher, ...] = ()
        if following == "{":
            matchers, position = _matchers(tokens, position + 1)
        found.selectors.append(Selector(text, matchers))
    return found


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position : position + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def _label_list(tokens: list[tuple[str, str]], position: int) -> tuple[set[str], int]:
    labels = set()
    while tokens[position][1] != ")":
        kind, text = tokens[position]
        if kind == "name":
            labels.add(text)
        position += 1
    return labels, position + 1


def _matchers(tokens: list[tuple[str, str]], position: int) -> tuple[tuple[Matcher, ...], int]:
    matchers = []
    while tokens[position][1] != "}":
        if tokens[position][1] == ",":
            position += 1
            continue
        (label_kind, label), (_, op), (value_kind, value) = tokens[position : position + 3]
        if label_kind != "name" or op not in MATCH_OPERATORS or value_kind != "string":
            raise ValueError(f"unexpected matcher {label} {op} {value}")
        matchers.append(Matcher(label, op, _unquote(value)))
        position += 3
    return tuple(matchers), position + 1


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
