"""Test helpers: start a real `mlkube serve` process on a free port and talk to it over a socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from mlkube.model.bundle import METADATA_FILE, sha256_file

# The keys of every `keyed_server` (conftest.py): KEY is the current one, OLD_KEY the one being rotated out.
# (at least settings.MIN_KEY_LENGTH characters, or the server refuses to start).
# The notes' curl: POST /predict {"features": [5.1, 3.5, 1.4, 0.2]}
NOTES_ROW = [5.1, 3.5, 1.4, 0.2]

KEY = "test-key-Hn42-7c1d9e"
OLD_KEY = "old-key-Zx81-4f0c2a"

# A shared 2-core machine running other work (another test run, a benchmark) is several times slower than
# an idle one. A time bound in a test is what an idle machine needs times TIME_FACTOR, so a loaded machine
# makes a test slower, not red; raise MLKUBE_TEST_TIME_FACTOR on a slower machine.
TIME_FACTOR = float(os.environ.get("MLKUBE_TEST_TIME_FACTOR", "3"))

# Debian's chromium, as the browser tests launch it: no sandbox as root, and no background connections
# (this machine reaches only package registries; Chromium's own calls home would be refused).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# How each system tool the suite uses is installed (`make system-deps` runs .ci/system-deps, which does it).
SYSTEM_TOOLS = {
    "chromium": "apt-get install -y chromium",
    "wrk": "apt-get install -y wrk",
    "kubectl": "it ships with these machines; else install it from the Kubernetes release",
    "docker": "apt-get install -y docker.io",
    "dockerd": "apt-get install -y docker.io",
    "debootstrap": "apt-get install -y debootstrap",
}


def require_tool(name: str, path: Path | None = None) -> str:
    """The tool's path. One policy for every system tool: under CI=true a missing tool fails the test
    (a missing install step must not pass as green); elsewhere the test skips, saying how to install it."""
    found = str(path) if path is not None and path.is_file() else shutil.which(name) if path is None else None
    if found is not None:
        return found
    where = str(path) if path is not None else f"{name} on PATH"
    return missing(
        f"{where} not found: `make system-deps` as root installs it ({SYSTEM_TOOLS.get(name, name)})"
    )


def missing(message: str) -> NoReturn:
    """What the suite needs from the machine is not there: fail under CI=true, else skip saying why."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and its workers: killing only the main process would orphan them."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def wait_for_log(self, text: str, timeout: float = 5) -> list[str]:
        """Lines containing `text`, waiting for them: a worker writes its line after answering."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_lines() if text in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self, timeout: float = 30) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.process)
                self.process.wait()
        return int(self.process.returncode)


def server_env(overrides: Mapping[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEY", "MODEL_", "PROMETHEUS"))}
    return {**keep, "HOST": "127.0.0.1", "LOG_LEVEL": "INFO", "DRAIN_SECONDS": "0", **overrides}


def spawn_server(overrides: Mapping[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = server_env(overrides)
    env.setdefault("PORT", str(free_port()))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlkube.server"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill takes the workers too
        )
    return process, f"http://127.0.0.1:{env['PORT']}"


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = 30
) -> None:
    """Poll /health until the server answers (ready or not); fail with its log if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    kill_group(process)
    raise AssertionError(f"server did not answer within {timeout}s:\n{log_path.read_text()}")


@contextmanager
def start_server(overrides: Mapping[str, str], wait: bool = True) -> Iterator[RunningServer]:
    """The server's TMPDIR is the folder of its log, so a test can read its workers' metrics files."""
    log_dir = Path(tempfile.mkdtemp(prefix="mlkube-test-"))
    log_path = log_dir / "server.log"
    process, url = spawn_server({"TMPDIR": str(log_dir), **overrides}, log_path)
    running = RunningServer(process, url, log_path)
    try:
        if wait:
            wait_until_answering(process, url, log_path)
        yield running
    finally:
        running.stop()


def poll(condition: Callable[[], bool], timeout: float = 10 * TIME_FACTOR, interval: float = 0.05) -> bool:
    """Whether `condition` held before the deadline, asking it every `interval` seconds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def run_mlkube(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`mlkube ARGS` as a user types it, in a subprocess of this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "mlkube", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        cwd=cwd,
        check=False,
    )


# --- /metrics ---------------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metric_samples(server: RunningServer) -> Samples:
    """One scrape of /metrics. The answering worker flushes its own counts first; other workers' counts
    arrive up to FLUSH_SECONDS later, so a test that needs them waits with `wait_for_metric`."""
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metric_value(found: Samples, name: str, **labels: str) -> float:
    labels = {"model_name": "iris", "model_version": "v1", **labels}
    return found.get((name, frozenset(labels.items())), 0.0)


def wait_for_metric(server: RunningServer, name: str, expected: float, **labels: str) -> Samples:
    """Scrape until the series reaches `expected` (every worker has flushed), or the deadline passes; the
    caller asserts on what is returned, so a count that overshoots or never arrives fails with its value."""
    found: Samples = {}

    def reached() -> bool:
        nonlocal found
        found = metric_samples(server)
        return metric_value(found, name, **labels) >= expected

    poll(reached, interval=0.1)
    return found


def worker_samples(server: RunningServer) -> dict[int, Samples]:
    """Each worker's own counters, by pid, read from prometheus_client's multiprocess files
    (`counter_<pid>.db`, under the server's TMPDIR): which workers answered, without asking the server."""
    found: dict[int, Samples] = {}
    for path in server.log_path.parent.glob("mlkube-*/metrics/counter_*.db"):
        with tempfile.TemporaryDirectory(prefix="mlkube-worker-") as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
            found[int(path.stem.removeprefix("counter_"))] = {
                (sample.name, frozenset(sample.labels.items())): sample.value
                for family in registry.collect()
                for sample in family.samples
            }
    return found


def workers_counting(server: RunningServer, name: str, **labels: str) -> dict[int, float]:
    """The workers (pid: count) whose own count of the series is above zero."""
    counts = {pid: metric_value(found, name, **labels) for pid, found in worker_samples(server).items()}
    return {pid: count for pid, count in counts.items() if count > 0}


# --- bundles ----------------------------------------------------------------------------------------


def copy_bundle(source: Path, target: Path) -> Path:
    """A writable copy of a bundle folder, to tamper with."""
    shutil.copytree(source, target)
    return target


def edit_metadata(bundle: Path, **changes: object) -> None:
    metadata_path = bundle / METADATA_FILE
    metadata = json.loads(metadata_path.read_text())
    metadata.update(changes)
    metadata_path.write_text(json.dumps(metadata))


def rehash(bundle: Path, *file_names: str) -> None:
    """Rewrite metadata.json's sha256 of `file_names`, so only the check under test stands in the way."""
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    edit_metadata(bundle, files={**metadata["files"], **{n: sha256_file(bundle / n) for n in file_names}})


# --- data ------------------------------------------------------------------------------------------


def write_fruit_csv(path: Path) -> Path:
    """A small two-class CSV whose target column sits between the features."""
    lines = ["weight_g,fruit,diameter_cm"]
    for i in range(20):
        lines.append(f"{150 + i},apple,{7 + i % 3}")
        lines.append(f"{8 + i % 4},cherry,{2 + i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has right after the signature."""
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


# Bodies /predict must refuse, with the status and a part of the message (tests/server/test_predict.py
# sends each alone; tests/reliability/test_malformed.py interleaves them with good traffic).
BAD_BODIES = [
    pytest.param(b"{not json", 400, "not valid JSON", id="invalid-json"),
    pytest.param(b"", 400, "not valid JSON", id="empty-body"),
    pytest.param(b'{"features": [1, 2, NaN, 4]}', 400, "not valid JSON", id="nan-literal"),
    pytest.param(b'{"features": [1, 2, Infinity, 4]}', 400, "not valid JSON", id="infinity-literal"),
    pytest.param(b"[5.1, 3.5, 1.4, 0.2]", 422, "Expected object", id="array-body"),
    pytest.param(b'"features"', 422, "Expected object", id="string-body"),
    pytest.param(b"{}", 422, "missing 'features': a list of 4 numbers", id="missing-features"),
    pytest.param(b'{"feature": [1, 2, 3, 4]}', 422, "missing 'features'", id="misspelled-key"),
    pytest.param(b'{"features": [1, 2, 3]}', 422, "features has 3 values, expected 4", id="too-few"),
    pytest.param(b'{"features": [1, 2, 3, 4, 5]}', 422, "expected 4", id="too-many"),
    pytest.param(b'{"features": []}', 422, "expected 4", id="empty-features"),
    pytest.param(b'{"features": "5.1,3.5,1.4,0.2"}', 422, "Expected array", id="string-features"),
    pytest.param(
        b'{"features": ["5.1", 3.5, 1.4, 0.2]}', 422, "got str - at $.features[0]", id="string-value"
    ),
    pytest.param(b'{"features": [true, 3.5, 1.4, 0.2]}', 422, "got bool", id="boolean"),
    pytest.param(b'{"features": [null, 3.5, 1.4, 0.2]}', 422, "got null", id="null"),
    pytest.param(b'{"features": [[5.1, 3.5, 1.4, 0.2]]}', 422, "got array", id="nested-list"),
    pytest.param(b'{"features": [1e999, 3.5, 1.4, 0.2]}', 422, "out of range", id="overflow-to-infinity"),
    pytest.param(b'{"features": [1e300, 3.5, 1.4, 0.2]}', 422, "must lie within", id="beyond-float32"),
    pytest.param(b'{"instances": []}', 422, "no rows", id="empty-batch"),
    pytest.param(b'{"instances": [[1, 2, 3, 4], [1, 2]]}', 422, "row 1 has 2 values", id="ragged-batch"),
    pytest.param(
        b'{"instances": [[1, 2, 3, 4], [1, 2, 3, 4, 5], [1, 2, 3]]}',
        422,
        "row 1 has 5 values",
        id="ragged-sum",
    ),
    pytest.param(
        b'{"instances": [[1, 2, 3, 4], [1, 2, 3e38, -4e38]]}', 422, "must lie within", id="batch-beyond"
    ),
    pytest.param(b'{"instances": [1, 2, 3, 4]}', 422, "got int", id="flat-instances"),
    pytest.param(
        b'{"features": [1, 2, 3, 4], "instances": [[1, 2, 3, 4]]}',
        422,
        "not both",
        id="features-and-instances",
    ),
]
