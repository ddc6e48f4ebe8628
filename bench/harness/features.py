"""The in-process price of mlkube's per-request features, for the ones the server cannot switch off.

Metrics have no off switch (they are part of the product), so their cost per request is timed here:
the exact calls the app makes for one single-row `/predict` (`observe_request` + `observe_scores`) on
the multiprocess registry, in a fresh interpreter. The access log line is timed the same way (written
to /dev/null), next to the end-to-end measurement with LOG_LEVEL=WARNING.
"""

from __future__ import annotations

import json
import subprocess
import sys

_SNIPPET = r"""
import json, logging, logging.config, os, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlkube-bench-")
import numpy as np
from mlkube.server import metrics
from mlkube.server.logs import logging_config

def per_call_us(call, n=20000):
    for _ in range(1000):
        call()
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6

m = metrics.Metrics("iris", "v1")
names, classes, confidences = ["setosa", "versicolor", "virginica"], np.array([0]), np.array([1.0])
def observe():
    m.observe_request("/predict", "POST", 200, 0.0004)
    m.observe_scores(names, classes, confidences)

config = logging_config("INFO")
config["handlers"]["stdout"]["stream"] = open(os.devnull, "w")
logging.config.dictConfig(config)
access = logging.getLogger("mlkube.access")
extra = {"method": "POST", "path": "/predict", "status": 200, "latency_ms": 0.4, "request_id": "0" * 24}
def log_line():
    access.info("request", extra=extra)

print(json.dumps({"metrics_us": per_call_us(observe), "access_log_us": per_call_us(log_line)}))
"""


def in_process_costs() -> dict[str, float | str]:
    """Microseconds per request of the metrics calls and of one access-log line, or why not known."""
    done = subprocess.run(
        [sys.executable, "-c", _SNIPPET], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    costs: dict[str, float | str] = json.loads(done.stdout)
    return costs
