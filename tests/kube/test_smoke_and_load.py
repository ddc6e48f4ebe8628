"""`mlkube smoke --url` and `mlkube load --url` as a user types them, against a real local server that
`mlkube train` and `mlkube serve` started (subprocesses, a free port, /ready polled)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlkube.kube.kubectl import Kubectl
from mlkube.kube.load import LoadPlan, Window, merge, parse_duration, percentile, run_load
from mlkube.kube.replicas import ReplicaWatch
from tests.kube import cluster
from tests.kube.conftest import PINNED, current_context, printer, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer, free_port, server_env
from tests.support import run_mlkube as mlkube

SMOKE_KEY = "smoke-key-1-8f2a3c"  # pragma: allowlist secret


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlkube train` into a temp folder, then `mlkube serve` (2 workers, API key) until /ready says 200."""
    root = tmp_path_factory.mktemp("served")
    trained = mlkube("train", "--model-dir", str(root / "models"), "--version", "v5")
    assert trained.returncode == 0, trained.stderr
    (root / "key").write_text(SMOKE_KEY + "\n", encoding="utf-8")
    env = server_env(
        {
            "MODEL_DIR": str(root / "models"),
            "WORKERS": "2",
            "PORT": str(free_port()),
            "API_KEY_FILE": str(root / "key"),
        }
    )
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "mlkube", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        deadline = time.monotonic() + 120
        while not ready(url):
            assert process.poll() is None, (root / "serve.log").read_text()
            if time.monotonic() > deadline:
                pytest.fail(f"mlkube serve not ready after 120 s:\n{(root / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(SMOKE_KEY + "\n", encoding="utf-8")
    return path


def test_smoke_passes_and_exits_zero(served: str, key_file: Path) -> None:
    result = mlkube("smoke", "--url", served, "--api-key-file", str(key_file), "--expect-version", "v5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ GET /ready: ready: model iris v5 (onnx)" in result.stdout
    assert "✓ POST /predict (the notes' row): setosa (0), confidence" in result.stdout
    assert "✓ POST /predict (batch of 3): setosa, versicolor, virginica" in result.stdout
    assert "✓ reported version: v5 as expected" in result.stdout
    assert SMOKE_KEY not in result.stdout + result.stderr


def test_smoke_takes_the_key_from_the_environment(served: str) -> None:
    env = {**os.environ, "MLKUBE_API_KEY": SMOKE_KEY}  # pragma: allowlist secret
    assert mlkube("smoke", "--url", served, env=env).returncode == 0


def test_smoke_fails_on_the_wrong_version(served: str, key_file: Path) -> None:
    result = mlkube("smoke", "--url", served, "--api-key-file", str(key_file), "--expect-version", "v6")
    assert result.returncode == 1
    assert "✗ reported version: 'v5', expected 'v6'" in result.stdout
    assert result.stderr.strip().endswith("reported version: 'v5', expected 'v6'")


def test_smoke_without_the_key_says_which_option_to_pass(served: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLKUBE_API_KEY"}
    result = mlkube("smoke", "--url", served, env=env)
    assert result.returncode == 1
    assert (
        "401: the service wants an API key (pass --api-key-file FILE or set MLKUBE_API_KEY)" in result.stdout
    )
    assert "✓ GET /ready" in result.stdout  # /ready stays open


def test_smoke_against_nothing_is_one_line(tmp_path: Path) -> None:
    result = mlkube("smoke", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: smoke test failed against http://127.0.0.1:")
    assert "no answer from" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_smoke_fails_when_the_url_is_not_the_service(server_v1: RunningServer, fake: FakeKubectl) -> None:
    result = run_cli("smoke", "--url", server_v1.url + "/nothing-here")
    assert result.exit_code == 1
    assert "GET /ready: 404" in result.stderr


def test_load_reports_rate_percentiles_and_no_errors(served: str, key_file: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none")}
    result = mlkube(
        "load",
        "--url",
        served,
        "--rps",
        "40",
        "--duration",
        "3s",
        "--every",
        "1s",
        "--api-key-file",
        str(key_file),
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = next(line for line in result.stdout.splitlines() if line.startswith("achieved"))
    # Open loop: 40 x 3 = 120 requests fall due; each is answered or, on a starved machine, skipped as
    # late. The count is exact whatever the machine's speed; the rate is not, so it is not asserted.
    answered = int(summary.split(": ")[1].split(" ok")[0])
    skipped = re.search(r"(\d+) requests skipped", result.stdout)
    late = int(skipped.group(1)) if skipped else 0
    assert answered + late == 120, result.stdout
    assert answered > 0
    assert "of 40 asked over " in summary
    assert ", 0 errors" in summary
    assert "latency p50 " in result.stdout
    assert "p99 " in result.stdout
    assert result.stdout.count(" req/s  ok ") >= 2  # a line per --every, and the last one
    assert "! replica count not followed: " in result.stdout


def test_load_counts_errors_and_exits_one(served: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLKUBE_API_KEY"}
    result = mlkube("load", "--url", served, "--rps", "20", "--duration", "1s", "--no-watch", env=env)
    assert result.returncode == 1
    assert "errors: HTTP 401 x" in result.stdout
    assert "requests failed (allowed: 1.0%)" in result.stderr


def scale_out(fake: FakeKubectl) -> None:
    """The HPA asks for a third pod, which becomes ready: three polls, three states."""
    current_context(fake)
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        replies=[
            reply_json(cluster.deployment(replicas=2)),
            reply_json(cluster.deployment(replicas=3, ready=2)),
            reply_json(cluster.deployment(replicas=3)),
        ],
    )
    fake.on("get", "hpa/ml-model-hpa", reply=reply_json(cluster.hpa(current=87, replicas=2, desired=3)))


def test_load_follows_the_replica_count(served: str, key_file: Path, fake: FakeKubectl) -> None:
    scale_out(fake)
    result = run_cli(
        "load", "--url", served, "--rps", "10", "--duration", "1s", "--api-key-file", str(key_file)
    )
    assert result.exit_code == 0, result.output
    assert f"$ {PINNED} get deployment/ml-model-deployment -o json" in result.stdout
    assert "replicas 2 (2 ready); HPA CPU 87% of 50%, desired 3" in result.stdout  # polled at the start
    assert "replicas: 2" in result.stdout


def test_the_replica_watch_prints_each_change(fake: FakeKubectl) -> None:
    """Polled until the third state shows (a generous deadline; no timing is asserted)."""
    scale_out(fake)
    out, printed = printer()
    watch = ReplicaWatch(Kubectl(out), every=0.01)
    assert watch.start()
    deadline = time.monotonic() + 60
    while "replicas 3 -> 3 (3 ready)" not in printed.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    watch.stop()
    text = printed.getvalue()
    assert "replicas 2 -> 3 (2 ready)" in text
    assert "replicas 3 -> 3 (3 ready)" in text
    assert watch.summary() == "replicas: 2 -> 3"


class CountingRelay:
    """A TCP relay in front of a real server that counts the connections it accepts."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_load_reconnects_so_new_pods_get_traffic(served: str) -> None:
    """Each worker closes its keep-alive connection every `reconnect_every` seconds: through a Service,
    the new connections are spread again, over the pods the HPA added too."""
    relay = CountingRelay(served)
    try:
        once = LoadPlan(
            relay.url, rps=20, duration=1.5, api_key=SMOKE_KEY, concurrency=2, tick=10, reconnect_every=60
        )
        run_load(once, lambda elapsed, window: None)
        kept = relay.accepted
        relay.accepted = 0
        again = LoadPlan(
            relay.url,
            rps=20,
            duration=1.5,
            api_key=SMOKE_KEY,
            concurrency=2,
            tick=10,
            reconnect_every=0.2,
        )
        total = run_load(again, lambda elapsed, window: None)
    finally:
        relay.close()
    assert total.failed == 0
    assert kept <= 2, "one connection per worker for the whole run"
    assert relay.accepted > kept, "a fresh connection every 0.2 s of each worker's life"


def test_an_unreachable_url_is_an_error_per_request_not_a_crash() -> None:
    plan = LoadPlan(f"http://127.0.0.1:{free_port()}", rps=20, duration=0.5, tick=10)
    total = run_load(plan, lambda elapsed, window: None)
    assert total.ok == 0
    assert total.errors["ConnectionRefusedError"] == 10


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60.0), ("2m", 120.0), ("1m30s", 90.0), ("500ms", 0.5), ("90", 90.0), (1.5, 1.5)],
)
def test_durations_read_like_kubectl_timeouts(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "0s", "-1"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_a_bad_duration_is_a_usage_error() -> None:
    result = run_cli("load", "--duration", "soon")
    assert result.exit_code == 2
    assert "not a duration: 'soon'" in result.output


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([], 50) == 0.0
    total = merge(
        [Window(1.0, [0.1], errors=__import__("collections").Counter({"HTTP 503": 1})), Window(1.0, [0.2])]
    )
    assert (total.ok, total.failed, total.rate) == (2, 1, 1.5)
