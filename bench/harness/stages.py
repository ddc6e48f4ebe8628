"""Where a `/predict` request's time goes inside the app: each stage timed alone, in a fresh interpreter.

The stages are the app's own functions, called as a request calls them, on the bundle the benchmark
serves: decode the JSON, check the rows and make the float32 array, the model call (one row alone; per row
when micro-batching joins 16 requests; 1,000 rows), the answer (rounding, the notes' keys, JSON), metrics
and the access-log line. `whole` is one request through `App.__rsgi__` with a stand-in for granian's
protocol object (a test double: it hands over the body and keeps the answer), so the sum of the stages
can be checked against it. End to end, granian's HTTP parsing and the event loop come on top (see the
CPU split by thread in RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.report import fastest_per_key

_SNIPPET = r"""
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlkube-bench-")
import msgspec
from mlkube.model.bundle import latest_bundle_path, read_bundle
from mlkube.api.simple import BatchPrediction
from mlkube.server.app import build_app
from mlkube.server.http import decode_json
from mlkube.server.simple_api import _decode_predict
from mlkube.settings import load_settings

settings = load_settings({"MODEL_DIR": sys.argv[1]})
bundle = read_bundle(latest_bundle_path(settings.model_dir, settings.model_name))
app = build_app(settings, bundle, None, Path(tempfile.mkdtemp()) / "draining")
import uvloop  # granian's loop in the workers
loop = uvloop.new_event_loop()
app.__rsgi_init__(loop)
app.access_log._fd = os.open(os.devnull, os.O_WRONLY)
service, encode = app.service, msgspec.json.Encoder().encode


def per_call_us(call, seconds=0.4):
    call()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(20):
            call()
        calls += 20
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls // 5 or 1):
            call()
        best = min(best, (time.perf_counter() - started) / (calls // 5 or 1))
    return best * 1e6


class StandInProtocol:  # test double for granian's RSGI protocol object
    def __init__(self, body):
        self.body = body
    async def __call__(self):
        return self.body
    def response_bytes(self, status, headers, body):
        self.status = status


class Scope:
    def __init__(self, body, method="POST", path="/predict"):
        self.method, self.path = method, path
        self.headers = {"content-type": "application/json", "content-length": str(len(body))} if body else {}


async def together(requests, body, method="POST", path="/predict"):
    protocols = [StandInProtocol(body) for _ in range(requests)]
    await asyncio.gather(*(app.__rsgi__(Scope(body, method, path), protocol) for protocol in protocols))
    assert all(protocol.status == 200 for protocol in protocols)


def stages(rows):
    body = json.dumps({"features": rows[0]} if len(rows) == 1 else {"instances": rows}).encode()
    decoded = decode_json(_decode_predict, body)
    listed = [decoded.features] if decoded.features is not None else decoded.instances
    array = service.rows_to_array(listed)
    scores = service.score(array)
    confidences = service.confidences(scores)

    def answer():
        found = service.confidences(scores)
        answers = service.predictions(scores.classes.tolist(), found)
        return encode(answers[0]) if len(rows) == 1 else encode(BatchPrediction(answers))

    def observe(scores, confidences):
        app.metrics.observe_request("/predict", "POST", 200, 0.001)
        app.metrics.observe_scores(service.class_names, scores, confidences)

    in_one_run = 50 if len(rows) == 1 else 1  # one event-loop run per request would time the loop's start

    async def in_turn():
        for _ in range(in_one_run):
            protocol = StandInProtocol(body)
            await app.__rsgi__(Scope(body), protocol)
            assert protocol.status == 200

    def whole():
        loop.run_until_complete(in_turn())

    found = {
        "decode": per_call_us(lambda: decode_json(_decode_predict, body)),
        "rows_to_array": per_call_us(lambda: service.rows_to_array(listed)),
        "model": per_call_us(lambda: service.score(array)),
        "answer": per_call_us(answer),
        "metrics": per_call_us(lambda: observe(scores, confidences)),
        "access_log": per_call_us(lambda: app.access_log.record("POST", "/predict", 200, 0.001, "0" * 24)),
        "whole": per_call_us(whole) / in_one_run,
    }
    if len(rows) == 1:
        joined = service.rows_to_array(listed * 16)
        found["model_joined_16"] = per_call_us(lambda: service.score(joined)) / 16
        found["whole_joined_16"] = per_call_us(lambda: loop.run_until_complete(together(16, body))) / 16
        health = lambda: loop.run_until_complete(together(16, b"", "GET", "/health"))
        found["health_joined_16"] = per_call_us(health) / 16
    return found

row = [5.1, 3.5, 1.4, 0.2]
batch = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.9, 5.6, 1.8]] * 250
print(json.dumps({"single": stages([row]), "batch_1000": stages(batch)}))
"""


StageCosts = dict[str, dict[str, float] | str]


def fastest(measured: list[StageCosts]) -> StageCosts:
    """Per stage, the fastest of several measurements (one per round): the machine's other work only ever
    slows a stage down. An error only if all failed."""
    good = [costs for costs in measured if "error" not in costs]
    if not good:
        return measured[-1] if measured else {}
    return {
        part: fastest_per_key([found for costs in good if isinstance(found := costs.get(part), dict)])
        for part in ("single", "batch_1000")
    }


def stage_costs(models: Path) -> StageCosts:
    """µs per stage for one row and for 1,000 rows, or {"error": why} when the snippet failed."""
    done = subprocess.run(
        [sys.executable, "-c", _SNIPPET, str(models)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    costs: StageCosts = json.loads(done.stdout)
    return costs
