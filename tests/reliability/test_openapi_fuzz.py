"""Property-based fuzzing of every route of the OpenAPI document a real server publishes (schemathesis).

Valid and invalid cases are generated from `GET /openapi.json` for every operation, at least 1,000 in all,
and every schemathesis check runs on each answer (no 5xx, statuses, content types, headers and bodies as
documented, invalid data refused, valid data accepted, auth not ignored). The server has an API key: each
case of a protected route is also sent without it and must then answer 401.

Which routes are protected comes from README.md's promise, written out below as a table of its own (not
from the app's route flags, which would only mirror the implementation): every route but the probes,
/metrics, /openapi.json, /docs and the page's own files needs the key.
"""

from __future__ import annotations

import math
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.reliability.report import record
from tests.support import KEY, NOTES_ROW, RunningServer

MIN_CASES = 1000
AUTH_HEADERS = ("x-api-key", "authorization")
Operation = APIOperation[Any, Any, Any, Any]

V2_BODY = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": NOTES_ROW}]}
# README.md: "With API_KEY set, every route but the probes (/health, /ready, /v2/health/*, MLflow's /ping),
# /metrics, /openapi.json, /docs and the page's own files needs the key".
# (method, route, a valid body or None).
PROTECTED: list[tuple[str, str, Any]] = [
    ("POST", "/predict", {"features": NOTES_ROW}),
    ("POST", "/predict/proba", {"features": NOTES_ROW}),
    ("GET", "/model", None),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/{name}", None),
    ("POST", "/v1/models/{name}:predict", {"instances": [NOTES_ROW]}),
    ("GET", "/v2", None),
    ("GET", "/v2/models/{name}", None),
    ("GET", "/v2/models/{name}/ready", None),
    ("POST", "/v2/models/{name}/infer", V2_BODY),
    ("GET", "/v2/models/{name}/versions/{version}", None),
    ("GET", "/v2/models/{name}/versions/{version}/ready", None),
    ("POST", "/v2/models/{name}/versions/{version}/infer", V2_BODY),
    ("POST", "/invocations", {"instances": [NOTES_ROW]}),
]
# (method, route, a path of it)
OPEN = [
    ("GET", "/health", "/health"),
    ("GET", "/ready", "/ready"),
    ("GET", "/ping", "/ping"),
    ("GET", "/v2/health/live", "/v2/health/live"),
    ("GET", "/v2/health/ready", "/v2/health/ready"),
    ("GET", "/metrics", "/metrics"),
    ("GET", "/openapi.json", "/openapi.json"),
    ("GET", "/docs", "/docs"),
    ("GET", "/docs/{asset}", "/docs/docs.js"),
    ("GET", "/", "/"),
    ("GET", "/static/{name}", "/static/page.js"),
]
PROTECTED_TEMPLATES = {template for _method, template, _body in PROTECTED}


def concrete(template: str) -> str:
    return template.replace("{name}", "iris").replace("{version}", "v1")


def published_document(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200, f"GET /openapi.json: {response.status_code} {response.text}"
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize(("method", "template", "body"), PROTECTED, ids=[f"{m} {t}" for m, t, _ in PROTECTED])
def test_every_protected_route_answers_401_without_the_key(
    keyed_server: RunningServer, method: str, template: str, body: Any
) -> None:
    path = concrete(template)
    for headers in ({}, {"x-api-key": "not-the-key"}, {"authorization": "Bearer not-the-key"}):
        refused = keyed_server.client.request(method, path, json=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.status_code, refused.text)
        assert "API key" in refused.json()["error"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
    allowed = keyed_server.client.request(method, path, json=body, headers={"x-api-key": KEY})
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize(("method", "template", "path"), OPEN, ids=[f"{m} {t}" for m, t, _ in OPEN])
def test_probes_metrics_docs_and_the_page_stay_open(
    keyed_server: RunningServer, method: str, template: str, path: str
) -> None:
    assert keyed_server.client.request(method, path).status_code == 200, template


def test_every_documented_operation_is_in_the_protected_or_the_open_table(
    keyed_server: RunningServer,
) -> None:
    """A new route must be classified here; and the document's own `security` must agree with the table."""
    document = published_document(keyed_server)
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    protected = {(method, template) for method, template, _body in PROTECTED}
    assert documented == protected | {(method, template) for method, template, _path in OPEN}
    declared = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    }
    assert declared == protected


def documented_operation(result: Ok[Operation] | Any) -> Operation:
    if not isinstance(result, Ok):
        pytest.fail(f"the document describes an operation schemathesis cannot read: {result.err()}")
    operation: Operation = result.ok()
    return operation


def has_inputs(operation: Operation) -> bool:
    parameters = (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    return any(len(group) for group in parameters) or len(operation.body) > 0


# What JSON Schema cannot state, so a schema-valid request may still break it: a V2 input's data must hold
# as many values as its shape says, and a binary_data_size must match the bytes after the JSON header.
CROSS_FIELD_RULES = re.compile(
    rb"'data' is not \d+ rows of \d+ values, as shape says"
    rb"|'data' has \d+ values, shape \[\d+, \d+\] needs"
    rb"|binary_data_size \d+ (is more than the \d+ bytes sent|does not hold)"
    # MLflow's bodies: a dataframe_split row's length and values follow its `columns`; columns by name
    rb"|dataframe_split: |the features have different numbers of values"
    # MLflow's text/csv: a table in a string, its header and cells beyond what a JSON Schema string can say
    rb"|text/csv: "
)


def accepted_unless_a_cross_field_rule(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance, except a 400 that names one of CROSS_FIELD_RULES."""
    if response.status_code == 400 and CROSS_FIELD_RULES.search(response.content or b""):
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


# HTTP framing is the server's (granian's) to police, answered with its own plain-text 400 before the app
# runs (a GET with `transfer-encoding: w`); the document describes the API, so cases leave these alone.
FRAMING_HEADERS = frozenset({"transfer-encoding", "content-length", "connection", "te", "upgrade", "host"})


def drop_framing_headers(case: schemathesis.Case[Operation]) -> None:
    for name in list(case.headers or {}):
        if name.lower() in FRAMING_HEADERS:
            del case.headers[name]


class Fuzzer:
    def __init__(self, server: RunningServer, protected: set[str]) -> None:
        self.server = server
        self.protected = protected
        self.cases = 0
        self.refused_without_key = 0
        self.not_negatable: list[str] = []

    def run(self, operation: Operation, mode: GenerationMode, examples: int) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases every run: CI fails on a new commit, not on a new draw
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case[Operation]) -> None:
            self.cases += 1
            drop_framing_headers(case)
            case.call_and_validate(
                base_url=self.server.url,
                headers={"X-API-Key": KEY},
                timeout=10,
                excluded_checks=[positive_data_acceptance],
                additional_checks=[accepted_unless_a_cross_field_rule],
            )
            if operation.path in self.protected:
                self.refused_without_key += self.check_refused_without_key(case)

        fuzz()

    def run_negative(self, operation: Operation, examples: int) -> None:
        """Invalid cases; some inputs (an enum of file names in a path) cannot be made invalid on the wire."""
        try:
            self.run(operation, GenerationMode("negative"), examples)
        except Unsatisfiable:
            self.not_negatable.append(f"{operation.method.upper()} {operation.path}")

    def check_refused_without_key(self, case: schemathesis.Case[Operation]) -> int:
        for name in AUTH_HEADERS:
            case.headers.pop(name, None)
        response = case.call(base_url=self.server.url, timeout=10)
        if response.status_code == 404 and "no route" in response.text:
            return 0  # the generated path parameters name no route at all (e.g. a ':' in {name})
        assert response.status_code == 401, (case.method, case.path, response.status_code, response.text)
        return 1


def test_every_documented_route_survives_fuzzing_with_all_checks(keyed_server: RunningServer) -> None:
    schema = schemathesis.openapi.from_dict(published_document(keyed_server))
    operations = [documented_operation(result) for result in schema.get_all_operations()]
    fuzzer = Fuzzer(keyed_server, PROTECTED_TEMPLATES)
    per_operation = math.ceil(MIN_CASES / len(operations))
    for operation in operations:
        fuzzer.run(operation, GenerationMode("positive"), per_operation)
        if has_inputs(operation):  # an operation that takes nothing has nothing to make invalid
            fuzzer.run_negative(operation, per_operation)
    record(
        "openapi_fuzz",
        operations=len(operations),
        cases=fuzzer.cases,
        protected_cases_refused_without_key=fuzzer.refused_without_key,
        no_invalid_input_possible=fuzzer.not_negatable,
    )
    documented = {operation.path for operation in operations}
    assert fuzzer.protected <= documented, "a protected route is missing from the document"
    assert fuzzer.cases >= MIN_CASES
    assert fuzzer.refused_without_key > 0
