"""Hostile input: oversized headers and bodies, deep JSON nesting, enormous numbers. Each gets a 4xx (or, for
a valid if silly number, its 200) quickly, nothing crashes, and the server's memory stays bounded.

The matrix below sends every hostile body to every POST route of the app's own route table: a route added
later joins it by being in the table. Bodies that only need the route (bad JSON, deep nesting under each
key of its request type and under an unknown key, the wrong Content-Type, a body over the limit) are made
from the route alone; bodies with bad rows (NaN, ±Infinity, 1e999, 1e39, strings, booleans, wrong widths,
empty and oversized batches, V2 shapes no one could send) are made by the `ROWS_IN_BODY` builder of the
route's request type, and a route whose request type has none fails `test_every_post_route_is_in_the_matrix`
until it gets one. A route that takes MLflow's text/csv (`csv_body`) gets every bad CSV body of `BAD_CSV`;
every other route gets a good CSV body and must refuse its Content-Type.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as types
import pytest

from mlkube.api.kserve_v1 import V1NamedRequest, V1PredictRequest
from mlkube.api.mlflow import InvocationsRequest
from mlkube.api.open_inference import InferenceRequest
from mlkube.api.simple import NamedPredictRequest, PredictRequest
from mlkube.server.http import Route
from tests.inprocess import in_process_app
from tests.reliability import traffic
from tests.reliability.loadgen import Connection, Planned, Reply, build_request
from tests.reliability.procs import children, tree_rss_bytes
from tests.reliability.report import record
from tests.support import RunningServer, start_server

DEPTH = 100_000
DIGITS = 1_000_000
MAX_SECONDS = 5.0  # the slowest one (150,000 tiny rows) costs a worker ~0.1-0.4 s of CPU
MAX_RSS_GROWTH = 64 * 2**20


def body_kinds() -> list[Planned]:
    deep = b"[" * DEPTH + b"]" * DEPTH
    return [
        traffic.predict(b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, 400, b"nested too deeply", "deep-objects"),
        traffic.predict(b'{"features":' + deep + b"}", 422, b"got array", "deep-lists-in-features"),
        traffic.predict(
            b'{"x":' + deep + b', "features": [1, 2, 3, 4]}', 400, b"nested too deeply", "deep-extra"
        ),
        traffic.predict(deep, 422, b"Expected object", "deep-lists"),
        traffic.predict(
            b'{"features": [' + b"9" * DIGITS + b", 1, 1, 1]}", 422, b"out of range", "huge-integer"
        ),
        traffic.predict(
            b'{"features": [1e' + b"9" * 1000 + b", 1, 1, 1]}", 422, b"out of range", "huge-exponent"
        ),
        traffic.predict(
            b'{"features": [0.' + b"0" * DIGITS + b"1, 1, 1, 1]}", 200, b"prediction", "long-fraction"
        ),
        traffic.predict(b'{"features": [' + b"1," * 400_000 + b"1]}", 422, b"expected 4", "400k-features"),
        traffic.predict(
            b'{"instances": [' + b"[1]," * 200_000 + b"[1]]}", 422, b"MAX_BATCH_SIZE", "200k-rows"
        ),
        traffic.predict(b'{"' + b"k" * DIGITS + b'": 1}', 422, b"missing 'features'", "megabyte-key"),
        traffic.predict(b'{"x": "' + b"\\ud800" * 100_000 + b'"}', 400, b"not valid JSON", "lone-surrogates"),
    ]


V2_LENGTH = "Inference-Header-Content-Length"
V2_JSON = [("Content-Type", "application/json")]


def head_kinds() -> list[Planned]:
    one_row = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
    v2_row = b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}'
    many = [(f"X-Filler-{i}", "x") for i in range(500)]
    return [
        Planned(
            build_request("GET", "/health", headers=[("X-Big", "x" * 512 * 1024)]), 431, b"", "512k-header"
        ),
        Planned(build_request("GET", "/health", headers=many), 431, b"", "500-headers"),
        Planned(build_request("GET", "/" + "a" * 512 * 1024), (404, 414, 431), b"", "512k-path"),
        Planned(
            build_request("POST", "/predict", headers=[("Content-Length", str(10**12))])[:-21] + b"\r\n",
            413,
            b"MAX_BODY_BYTES",
            "terabyte-content-length",
        ),
        Planned(
            build_request("POST", "/predict", one_row, [("X-Bad\x01Name", "1")]),
            400,
            b"",
            "control-byte-header",
        ),
        Planned(  # int() of 5,000 digits raises ValueError (Python's digit limit): was a 500
            build_request("POST", "/v2/models/iris/infer", v2_row, [*V2_JSON, (V2_LENGTH, "9" * 5000)]),
            400,
            b"Inference-Header-Content-Length",
            "5000-digit-inference-header-length",
        ),
    ]


@pytest.fixture(scope="module")
def hostile_server(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


async def send_once(url: str, planned: Planned) -> Reply:
    connection = Connection(url)
    try:
        return await connection.request(planned.raw, timeout=30)
    finally:
        await connection.close()


@pytest.mark.parametrize("planned", body_kinds() + head_kinds(), ids=lambda planned: planned.kind)
def test_hostile_request_gets_its_answer_quickly(hostile_server: RunningServer, planned: Planned) -> None:
    worker = children(hostile_server.process.pid)
    reply = asyncio.run(send_once(hostile_server.url, planned))
    assert planned.problem(reply) is None, planned.problem(reply)
    assert reply.seconds < MAX_SECONDS
    assert children(hostile_server.process.pid) == worker, "the worker died"
    assert hostile_server.client.get("/health").status_code == 200


def test_memory_stays_bounded_under_repeated_hostile_input(model_dir: Path) -> None:
    kinds = body_kinds() + head_kinds()
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as server:
        pid = server.process.pid
        asyncio.run(send_all(server.url, kinds))  # warm: first-time allocations are not growth
        before = tree_rss_bytes(pid)
        started = time.monotonic()
        replies = asyncio.run(send_all(server.url, kinds * 5))
        seconds = time.monotonic() - started
        after = tree_rss_bytes(pid)

    problems = [planned.problem(reply) for planned, reply in zip(kinds * 5, replies, strict=True)]
    record(
        "hostile_input",
        kinds=len(kinds),
        requests=len(replies),
        bytes_sent_mib=sum(len(planned.raw) for planned in kinds * 5) / 2**20,
        seconds=seconds,
        slowest_ms=max(reply.seconds for reply in replies) * 1000,
        rss_before_mib=before / 2**20,
        rss_after_mib=after / 2**20,
    )
    assert [problem for problem in problems if problem] == []
    assert after - before < MAX_RSS_GROWTH


async def send_all(url: str, kinds: list[Planned]) -> list[Reply]:
    return [await send_once(url, planned) for planned in kinds]


# --- the matrix: every POST route of the route table x every hostile body ----------------------------------

MATRIX_DEPTH = 100_000
MAX_BODY_BYTES = 1_048_576  # the default the server runs with here
PATH_PARAMETERS = {"name": "iris", "version": "v1"}
JSON_TYPE = ("Content-Type", "application/json")


def _fill(template: str) -> str:
    for name, value in PATH_PARAMETERS.items():
        template = template.replace("{" + name + "}", value)
    return template


def post_routes() -> list[Route]:
    """The POST routes of the app's own table (listing them needs no model, and the app writes nothing)."""
    app = in_process_app(None, Path("/nonexistent-mlkube-runtime-dir"))
    return [route for route in app.router.routes if "POST" in route.handlers]


def key_paths(kind: Any) -> list[list[str]]:
    """Every key of a request type, and the keys of the structs in its lists: `[["inputs", "data"], ...]`."""
    found: list[list[str]] = []

    def walk(info: Any, prefix: list[str]) -> None:
        if isinstance(info, types.Metadata):
            walk(info.type, prefix)
        elif isinstance(info, types.UnionType):
            for member in info.types:
                walk(member, prefix)
        elif isinstance(info, (types.ListType, types.VarTupleType)):
            walk(info.item_type, prefix)
        elif isinstance(info, types.StructType):
            for field in info.fields:
                found.append([*prefix, field.encode_name])
                walk(field.type, [*prefix, field.encode_name])

    walk(types.type_info(kind), [])
    return found


def under(path: list[str], value: bytes) -> bytes:
    """`value` under the keys of `path`, each level an object in a list where the type has a list of them."""
    body = value
    for key in reversed(path):
        body = b'[{"' + key.encode() + b'": ' + body + b"}]"
    return body[1:-1]  # the outermost level is the body itself, not a list


def deep_lists(depth: int = MATRIX_DEPTH) -> bytes:
    return b"[" * depth + b"]" * depth


def _rows_json(rows: list[Any]) -> bytes:
    return json.dumps(rows, allow_nan=True).encode()


ROWS_IN_BODY: dict[Any, Callable[[bytes, int], bytes]] = {
    PredictRequest: lambda rows, count: b'{"instances": ' + rows + b"}",
    V1PredictRequest: lambda rows, count: b'{"instances": ' + rows + b"}",
    NamedPredictRequest: lambda rows, count: b'{"instances": ' + rows + b"}",
    V1NamedRequest: lambda rows, count: b'{"instances": ' + rows + b"}",
    InvocationsRequest: lambda rows, count: b'{"inputs": ' + rows + b"}",
    InferenceRequest: lambda rows, count: (
        b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [%d, 4], "data": ' % count
        + rows
        + b"}]}"
    ),
}
"""How each request type carries rows (raw JSON text of a list of rows, and their count)."""

ROW = [5.1, 3.5, 1.4, 0.2]
BAD_ROWS: dict[str, tuple[bytes, int]] = {
    "nan": (b"[[NaN, 3.5, 1.4, 0.2]]", 1),
    "infinity": (b"[[Infinity, 3.5, 1.4, 0.2]]", 1),
    "minus-infinity": (b"[[-Infinity, 3.5, 1.4, 0.2]]", 1),
    "1e999": (b"[[1e999, 3.5, 1.4, 0.2]]", 1),
    "1e39": (b"[[1e39, 3.5, 1.4, 0.2]]", 1),
    "string": (b'[["5.1", 3.5, 1.4, 0.2]]', 1),
    "boolean": (b"[[true, 3.5, 1.4, 0.2]]", 1),
    "null": (b"[[null, 3.5, 1.4, 0.2]]", 1),
    "object": (b'[[{"a": 1}, 3.5, 1.4, 0.2]]', 1),
    "narrow": (b"[[5.1, 3.5, 1.4]]", 1),
    "wide": (b"[[5.1, 3.5, 1.4, 0.2, 9.9]]", 1),
    "ragged": (b"[[5.1, 3.5, 1.4, 0.2], [5.1]]", 2),
    "empty-row": (b"[[]]", 1),
    "empty-batch": (b"[]", 0),
    "oversized-batch": (_rows_json([ROW] * 1001), 1001),
    "deep-row": (b"[" + deep_lists() + b"]", 1),
}
HUGE_V2_SHAPES = {
    "shape-terarows": b"[1000000000000, 4]",
    "shape-terafeatures": b"[1, 1000000000000]",
    "shape-2^63": b"[9223372036854775808, 4]",
    "shape-10^30": b"[1000000000000000000000000000000, 4]",
    "shape-negative": b"[-1, 4]",
    "shape-flat": b"[4]",
    "shape-3d": b"[1, 4, 1]",
    "shape-float": b"[1.5, 4]",
}


def generic_bodies(kind: Any) -> dict[str, tuple[bytes, tuple[str, str]]]:
    """Bodies that need nothing but the route's request type: (body, content-type header)."""
    bodies = {
        "invalid-json": b"{not json",
        "empty-body": b"",
        "truncated": b'{"instances": [[1, 2,',
        "top-level-list": b"[1, 2, 3, 4]",
        "top-level-string": b'"features"',
        "top-level-null": b"null",
        "deep-objects": b'{"a":' * MATRIX_DEPTH + b"1" + b"}" * MATRIX_DEPTH,
        "deep-lists": deep_lists(),
        "deep-under-unknown-key": b'{"unknown": ' + deep_lists() + b"}",
        "lone-surrogates": b'{"x": "' + b"\\ud800" * 1000 + b'"}',
        "over-max-body-bytes": b'{"instances": [' + b" " * MAX_BODY_BYTES + b"]}",
    }
    for path in key_paths(kind):
        bodies["deep-under-" + ".".join(path)] = under(path, deep_lists())
    return {name: (body, JSON_TYPE) for name, body in bodies.items()} | {
        "wrong-content-type": (b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', ("Content-Type", "text/plain")),
        "form-content-type": (b"features=5.1", ("Content-Type", "application/x-www-form-urlencoded")),
    }


def row_bodies(kind: Any) -> dict[str, bytes]:
    build = ROWS_IN_BODY[kind]
    bodies = {name: build(rows, count) for name, (rows, count) in BAD_ROWS.items()}
    if kind is InferenceRequest:
        one_row = _rows_json([ROW])
        for name, shape in HUGE_V2_SHAPES.items():
            bodies[name] = build(one_row, 1).replace(b'"shape": [1, 4]', b'"shape": ' + shape)
        # a float in `shape` sends the decoder down its lenient second pass, over 20,000 levels of nesting
        float_shape = build(one_row, 1).replace(b'"shape": [1, 4]', b'"shape": [1.0, 4]')
        bodies["shape-float-deep-data"] = float_shape.replace(one_row, deep_lists(20_000))
        bodies["shape-float-deep-extra"] = float_shape[:-1] + b', "x": ' + deep_lists(20_000) + b"}"
    return bodies


CSV_TYPE = ("Content-Type", "text/csv")
CSV_HEADER = b"sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n"
CSV_ROW = b"5.1,3.5,1.4,0.2\n"
BAD_CSV: dict[str, bytes] = {
    "csv-unknown-column": CSV_HEADER.replace(b"\n", b",weight\n") + CSV_ROW.replace(b"\n", b",1\n"),
    "csv-missing-column": b"sepal_length_cm,sepal_width_cm,petal_length_cm\n5.1,3.5,1.4\n",
    "csv-column-twice": CSV_HEADER.replace(b"\n", b",petal_width_cm\n") + CSV_ROW.replace(b"\n", b",0.2\n"),
    "csv-ragged-rows": CSV_HEADER + CSV_ROW + b"5.1,3.5\n",
    "csv-wide-row": CSV_HEADER + CSV_ROW.replace(b"\n", b",9.9\n"),
    "csv-non-numeric": CSV_HEADER + b"5.1,wide,1.4,0.2\n",
    "csv-empty-cell": CSV_HEADER + b"5.1,,1.4,0.2\n",
    "csv-nan": CSV_HEADER + b"nan,3.5,1.4,0.2\n",
    "csv-infinity": CSV_HEADER + b"inf,3.5,1.4,0.2\n",
    "csv-1e39": CSV_HEADER + b"1e39,3.5,1.4,0.2\n",
    "csv-empty": b"",
    "csv-blank-lines": b"\n" * 1000,
    "csv-header-only": CSV_HEADER,
    "csv-not-utf8": CSV_HEADER + b"5.1,3.5,1.4,\xff\n",
    "csv-unclosed-quote": CSV_HEADER + b'"5.1,3.5,1.4,0.2\n',
    "csv-huge-field": CSV_HEADER + b'"' + b"9" * 500_000 + b'",3.5,1.4,0.2\n',
    "csv-huge-header": b",".join(b"c%d" % index for index in range(100_000)) + b"\n" + CSV_ROW,
    "csv-oversized-batch": CSV_HEADER + CSV_ROW * 1001,
    "csv-many-tiny-rows": CSV_HEADER + b"1,1,1,1\n" * 120_000,
    "csv-over-max-body-bytes": CSV_HEADER + CSV_ROW * (MAX_BODY_BYTES // len(CSV_ROW) + 1),
}
"""MLflow's text/csv bodies (the notes' Iris columns), sent to the routes that take text/csv."""


def csv_bodies(route: Route) -> dict[str, tuple[bytes, tuple[str, str]]]:
    """A `csv_body` route gets every bad CSV body; any other route gets a good one, and must refuse it."""
    if route.csv_body:
        return {name: (body, CSV_TYPE) for name, body in BAD_CSV.items()}
    return {"csv-content-type": (CSV_HEADER + CSV_ROW, CSV_TYPE)}


def request_type(route: Route) -> Any:
    kind = route.operations["POST"].request
    info = types.type_info(kind)
    while isinstance(info, types.Metadata):
        info = info.type
    assert isinstance(info, types.StructType), f"{route.template}: its request is not a struct"
    return info.cls


def matrix() -> list[Any]:
    cells = []
    for route in post_routes():
        kind = request_type(route)
        path = _fill(route.template)
        for name, (body, content_type) in (generic_bodies(kind) | csv_bodies(route)).items():
            raw = build_request("POST", path, body, [content_type])
            cells.append(
                pytest.param(Planned(raw, tuple(range(400, 500)), b'"error"', name), id=f"{path} {name}")
            )
        for name, body in row_bodies(kind).items():
            raw = build_request("POST", path, body, [JSON_TYPE])
            cells.append(
                pytest.param(Planned(raw, tuple(range(400, 500)), b'"error"', name), id=f"{path} {name}")
            )
    return cells


def test_every_post_route_is_in_the_matrix() -> None:
    routes = post_routes()
    assert {route.template for route in routes} >= {"/predict", "/predict/proba", "/v2/models/{name}/infer"}
    for route in routes:
        kind = request_type(route)
        assert kind in ROWS_IN_BODY, f"{route.template}: add a builder of {kind.__name__} to ROWS_IN_BODY"
        assert key_paths(kind), f"{route.template}: {kind.__name__} has no keys to nest under"


@pytest.mark.parametrize("planned", matrix())
def test_every_post_route_answers_every_hostile_body_with_a_json_4xx(
    hostile_server: RunningServer, planned: Planned
) -> None:
    worker = children(hostile_server.process.pid)
    reply = asyncio.run(send_once(hostile_server.url, planned))
    assert planned.problem(reply) is None, planned.problem(reply)
    assert reply.headers.get("content-type") == "application/json"
    assert list(msgspec.json.decode(reply.body)) == ["error"]
    assert children(hostile_server.process.pid) == worker, "the worker died"
    assert hostile_server.client.get("/health").status_code == 200
