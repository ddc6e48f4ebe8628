"""The in-process price of mlkube's per-request features, for the ones the server cannot switch off.

Metrics have no off switch (they are part of the product), so their cost per request is timed here:
the exact calls the app makes for one single-row `/predict` (`observe_request` + `observe_scores`,
with the periodic flush into the multiprocess files), in a fresh interpreter. The access log line is
timed the same way (to /dev/null), next to the end-to-end measurement with LOG_LEVEL=WARNING.
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness.report import fastest_per_key

_SNIPPET = r"""
import json, os, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlkube-bench-")
import numpy as np
from mlkube.model.runtime import Scores
from mlkube.server import metrics
from mlkube.server.logs import AccessLog

FLUSH_EVERY = 2500  # the worker flushes on a timer; at ~10,000 req/s a flush covers about this many

def per_call_us(call, flush, n=50000):
    for _ in range(1000):
        call()
    flush()
    started = time.perf_counter()
    for index in range(n):
        call()
        if index % FLUSH_EVERY == 0:
            flush()
    flush()
    return (time.perf_counter() - started) / n * 1e6

def later(seconds, callback):  # a test double for the event loop's call_later: flushes are timed above
    return None

m = metrics.Metrics("iris", "v1")
m.attach(later)
names = ["setosa", "versicolor", "virginica"]
scores, confidences = Scores(np.array([0]), np.array([[1.0, 0.0, 0.0]], dtype=np.float32)), [1.0]
def observe():
    m.observe_request("/predict", "POST", 200, 0.0004)
    m.observe_scores(names, scores, confidences)

log = AccessLog(enabled=True, fd=os.open(os.devnull, os.O_WRONLY))
log.attach(later)
def log_line():
    log.record("POST", "/predict", 200, 0.0004, "0" * 24)

costs = {"metrics_us": per_call_us(observe, m.flush), "access_log_us": per_call_us(log_line, log.flush)}
print(json.dumps(costs))
"""


def fastest(measured: list[dict[str, float | str]]) -> dict[str, float | str]:
    """Per cost, the fastest of several measurements (one per round); an error only if all failed."""
    good = [{key: float(value) for key, value in costs.items()} for costs in measured if "error" not in costs]
    if not good:
        return measured[-1] if measured else {}
    return dict(fastest_per_key(good))


def in_process_costs() -> dict[str, float | str]:
    """Microseconds per request of the metrics calls and of one access-log line, or why not known."""
    done = subprocess.run(
        [sys.executable, "-c", _SNIPPET], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    costs: dict[str, float | str] = json.loads(done.stdout)
    return costs
