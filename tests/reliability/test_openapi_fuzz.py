"""Property-based fuzzing of every route of the OpenAPI document a real server publishes (schemathesis).

Valid and invalid cases are generated from `GET /openapi.json` for every operation, at least 1,000 in all,
and every schemathesis check runs on each answer (no 5xx, statuses, content types, headers and bodies as
documented, invalid data refused, valid data accepted, auth not ignored). The server has an API key: each
case is also sent without it, and every route the app protects must then answer 401.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mlkube.model.bundle import Bundle
from tests.inprocess import in_process_app
from tests.reliability.report import record
from tests.support import RunningServer, start_server

KEY = "fuzz-key-4Hw9-8e2f"
MIN_CASES = 1000
AUTH_HEADERS = ("x-api-key", "authorization")
Operation = APIOperation[Any, Any, Any, Any]


@pytest.fixture(scope="module")
def keyed_server(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2", "API_KEY": KEY}) as running:
        yield running


def published_schema(server: RunningServer) -> BaseSchema:
    response = httpx.get(f"{server.url}/openapi.json", timeout=10)
    if response.status_code == 404:
        pytest.skip("GET /openapi.json not served yet")
    assert response.status_code == 200, response.text
    return schemathesis.openapi.from_dict(response.json())


def protected_templates(bundle: Bundle, tmp_path: Path) -> set[str]:
    """The routes the app itself marks as needing the key (its route table, not the document)."""
    app = in_process_app(bundle, tmp_path, API_KEY=KEY)
    return {route.template for route in app.router.routes if route.protected}


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


def test_every_documented_route_survives_fuzzing_with_all_checks(
    keyed_server: RunningServer, iris_bundle: Bundle, tmp_path: Path
) -> None:
    schema = published_schema(keyed_server)
    operations = [documented_operation(result) for result in schema.get_all_operations()]
    fuzzer = Fuzzer(keyed_server, protected_templates(iris_bundle, tmp_path))
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
