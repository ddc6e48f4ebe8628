"""The image, built without a container engine: the Dockerfile's own steps, run in a temporary root.

The `# recipe:` RUN lines of the Dockerfile are executed as written, with the image's absolute paths
(/src, /opt/..., /app/..., /tmp) moved under a temporary folder and pip's cache left on (PIP_NO_CACHE_DIR
dropped, so this stays fast); tests/image builds the same file with a real engine. The server then
starts from the serving-only venv with the runtime stage's ENV and ENTRYPOINT plus the pod's environment
from the rendered minikube Deployment, inside a mount namespace where every filesystem is read-only
except a tmpfs at TMPDIR: the read-only root filesystem of the pod, for real.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.dockerfile import Dockerfile, Stage, parse_dockerfile
from tests.deploy.rendered import Rendered, pod_env
from tests.deploy.tools import DOCKERFILE, REPO, explain, run
from tests.support import free_port, poll, wait_until_answering

IMAGE_PATHS = ("/src", "/opt", "/app", "/tmp", "/etc/mlkube")
NOTES_ROW = [5.1, 3.5, 1.4, 0.2]
TRAINING_ONLY = ("sklearn", "skl2onnx", "skops")
MIB = 1024 * 1024

# About 2 minutes idle: two fresh venvs and a training run; several times that on a loaded machine, so
# the image's build (in the first test's setup) gets the recipe steps' own 900 s, not the default 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Runs as root in a private mount namespace: every mount but /dev, /proc and /sys (as in a container)
# becomes read-only, a write probe proves it, TMPDIR gets a tmpfs (the pod's emptyDir), then the server.
READ_ONLY_ROOT = r"""
set -eu
tmpdir=$1 probe=$2
shift 2
for mount_point in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  case "$mount_point" in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) continue ;; esac
  mount -o remount,bind,ro "$mount_point" 2>/dev/null || true
done
if touch "$probe" 2>/dev/null; then echo "the filesystem is still writable: $probe" >&2; exit 97; fi
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$tmpdir"
exec "$@"
"""


@dataclass(frozen=True)
class Image:
    """The image's filesystem, laid out under `root` by the Dockerfile's own steps."""

    root: Path
    dockerfile: Dockerfile

    def path(self, image_path: str) -> Path:
        return Path(self.rooted(image_path))

    def rooted(self, text: str) -> str:
        """`text` with every image path moved under the temporary root."""
        pattern = "|".join(re.escape(prefix) for prefix in IMAGE_PATHS)
        return re.sub(
            rf"(?<![\w/.])({pattern})(?![\w.-])", lambda match: f"{self.root}{match.group(1)}", text
        )

    @property
    def python(self) -> Path:
        return self.path("/opt/venv/bin/python")


@dataclass(frozen=True)
class Pod:
    process: subprocess.Popen[bytes]
    url: str
    api_key: str
    log_path: Path
    env: dict[str, str]


def clean_environ() -> dict[str, str]:
    """This machine's environment without anything mlkube would read."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("API_KEY", "MODEL_", "PROMETHEUS", "VIRTUAL_ENV"))
    }


def python_bin(folder: Path) -> Path:
    """A folder whose `python` is this interpreter's base (the image's `python` on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    return folder


def copy_context(stage: Stage, image: Image) -> Path:
    """The stage's COPY instructions from the build context (the repository) into its WORKDIR."""
    workdir = image.path(stage.last("WORKDIR").value)
    workdir.mkdir(parents=True, exist_ok=True)
    for copy in stage.all("COPY"):
        *sources, destination = copy.words()
        target = workdir / destination
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(
                    origin, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    return workdir


def run_recipe(image: Image, tag: str, workdir: Path, path: str) -> None:
    stage, instruction = image.dockerfile.recipe(tag)
    assert instruction.keyword == "RUN"
    command = image.rooted(instruction.value).replace(" --no-cache-dir", "")
    env = {**clean_environ(), **stage.merged("ENV"), **stage.merged("ARG"), "PATH": path}
    env.pop("PIP_NO_CACHE_DIR")  # pip's cache keeps this fast here
    result = run(["sh", "-c", command], cwd=workdir, env=env, timeout=900)
    assert result.returncode == 0, explain(result)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The build stage's install and train steps, then the runtime stage's copies (same paths here)."""
    dockerfile = parse_dockerfile(DOCKERFILE)
    built = Image(tmp_path_factory.mktemp("image"), dockerfile)
    workdir = copy_context(dockerfile.stage("serve"), built)
    assert copy_context(dockerfile.stage("model-train"), built) == workdir
    path = f"{python_bin(built.root / 'usr-local-bin')}:{os.environ['PATH']}"
    for tag in ("train-install", "serve-install", "serve-project", "train"):
        run_recipe(built, tag, workdir, path)
    for folder, _, files in os.walk(built.path("/app/models")):
        for name in files:
            Path(folder, name).chmod(0o444)
        Path(folder).chmod(0o555)
    return built


@contextmanager
def start_pod(image: Image, renders: dict[str, Rendered]) -> Iterator[Pod]:
    """The ENTRYPOINT with the runtime ENV and the minikube pod's env, on a read-only filesystem."""
    runtime = image.dockerfile.final_stage
    api_key = secrets.token_urlsafe(24)
    image_env = {**runtime.environment({"PATH": "$PATH"}), **pod_env(renders["minikube"])}
    env = {**clean_environ(), **{name: image.rooted(value) for name, value in image_env.items()}}
    env["PATH"] = env["PATH"].replace("$PATH", os.environ["PATH"])
    key_file = Path(env["API_KEY_FILE"])
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(api_key + "\n", encoding="utf-8")
    tmpdir = image.path("/tmp") / f"pod-{secrets.token_hex(4)}"  # each pod its own emptyDir
    tmpdir.mkdir(parents=True)
    # Only loopback traffic in tests; a free port; one worker, as the pod's 500m CPU limit gives.
    env |= {"HOST": "127.0.0.1", "PORT": str(free_port()), "WORKERS": "1", "TMPDIR": str(tmpdir)}
    entrypoint = runtime.last("ENTRYPOINT").exec_form()
    program = shutil.which(entrypoint[0], path=env["PATH"])
    assert program == str(image.python), f"{entrypoint[0]} resolves to {program}"
    probe = image.path("/app/models/write-probe")
    log_path = tmpdir.with_suffix(".log")
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, str(tmpdir), str(probe), program, *entrypoint[1:]],
            env=env,
            cwd=image.path(runtime.last("WORKDIR").value),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until_answering(process, url, log_path, timeout=60)
        yield Pod(process, url, api_key, log_path, env)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def pod(image: Image, renders: dict[str, Rendered]) -> Iterator[Pod]:
    """One pod for the tests that only talk to it."""
    with start_pod(image, renders) as started:
        yield started


def wait_ready(pod: Pod, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{pod.url}/ready", timeout=2)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def tree_memory(pid: int) -> tuple[int, int]:
    """Summed RSS and PSS (bytes) of a process and its descendants, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":")
            if name in ("Rss", "Pss"):
                kib = int(value.split()[0]) * 1024
                rss, pss = (rss + kib, pss) if name == "Rss" else (rss, pss + kib)
        for task in Path(f"/proc/{current}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return rss, pss


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_serving_install_has_no_training_library(image: Image) -> None:
    check = "import importlib.util, sys; print([m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    result = run([str(image.python), "-c", check, *TRAINING_ONLY])
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == "[]", f"the serving install holds {result.stdout.strip()}"
    train_python = image.path("/opt/train/bin/python")
    assert run([str(train_python), "-c", "import sklearn"]).returncode == 0, "the training venv has it"


def test_build_trains_the_labelled_model_version(image: Image) -> None:
    arguments = image.dockerfile.stage("model-train").merged("ARG")
    bundle = image.path(f"/app/models/{arguments['MODEL_NAME']}/{arguments['MODEL_VERSION']}")
    listed = json.loads((bundle / "metadata.json").read_text())["files"]
    assert {"model.onnx", "model.skops", "report.md"} <= set(listed)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(["metadata.json", *listed])
    assert json.loads((bundle / "metadata.json").read_text())["version"] == arguments["MODEL_VERSION"]


def test_pod_becomes_ready_on_a_read_only_filesystem(pod: Pod) -> None:
    response = wait_ready(pod)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


def test_pod_answers_the_notes_request_with_the_mounted_key(pod: Pod, image: Image) -> None:
    wait_ready(pod)
    body = {"features": NOTES_ROW}
    assert httpx.post(f"{pod.url}/predict", json=body).status_code == 401
    answer = httpx.post(f"{pod.url}/predict", json=body, headers={"X-API-Key": pod.api_key})
    assert answer.status_code == 200, answer.text
    version = image.dockerfile.final_stage.merged("ARG")["MODEL_VERSION"]
    assert answer.json() == {"prediction": 0, "class_name": "setosa", "confidence": 1.0, "version": version}


def test_every_probe_path_answers_200(pod: Pod, renders: dict[str, Rendered]) -> None:
    wait_ready(pod)
    container = renders["minikube"].container
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert httpx.get(f"{pod.url}{path}").status_code == 200, f"{probe} {path}"


def test_image_healthcheck_passes_against_the_server(pod: Pod, image: Image) -> None:
    healthcheck = image.dockerfile.final_stage.last("HEALTHCHECK").value.partition(" CMD ")[2]
    program, *arguments = json.loads(healthcheck)
    result = run([str(image.python) if program == "python" else program, *arguments], env=pod.env, timeout=10)
    assert result.returncode == 0, explain(result)


def test_memory_under_load_fits_the_pods_request(pod: Pod, renders: dict[str, Rendered]) -> None:
    wait_ready(pod)
    batch = {"instances": [NOTES_ROW] * 1000}
    with httpx.Client(base_url=pod.url, headers={"X-API-Key": pod.api_key}) as client:
        for _ in range(50):
            assert client.post("/predict", json=batch).status_code == 200
        assert client.get("/metrics").status_code == 200
    rss, pss = tree_memory(pod.process.pid)
    resources = renders["minikube"].container["resources"]
    request, limit = (
        memory_bytes(resources["requests"]["memory"]),
        memory_bytes(resources["limits"]["memory"]),
    )
    print(f"serving install, 1 worker, 50 batches of 1000: RSS {rss / MIB:.0f} MiB, PSS {pss / MIB:.0f} MiB")
    assert pss < request, f"PSS {pss / MIB:.0f} MiB exceeds the memory request {request / MIB:.0f} MiB"
    assert rss < limit, f"RSS {rss / MIB:.0f} MiB exceeds the memory limit {limit / MIB:.0f} MiB"


def test_sigterm_drains_then_exits_within_the_grace_period(
    image: Image, renders: dict[str, Rendered]
) -> None:
    """A pod of its own (SIGTERM ends it): /ready turns 503 while predictions still succeed, then exit 0."""
    with start_pod(image, renders) as pod:
        wait_ready(pod)
        drain = float(pod.env["DRAIN_SECONDS"])
        started = time.monotonic()
        pod.process.send_signal(signal.SIGTERM)
        # /ready turns 503 at once; the drain window is the deadline that matters to a load balancer
        assert poll(lambda: httpx.get(f"{pod.url}/ready").status_code == 503, timeout=drain), (
            f"/ready still 200 {drain} s (DRAIN_SECONDS) after SIGTERM"
        )
        answer = httpx.post(
            f"{pod.url}/predict", json={"features": NOTES_ROW}, headers={"X-API-Key": pod.api_key}
        )
        assert answer.status_code == 200, "traffic is still served while draining"
        grace_period = renders["minikube"].pod_spec["terminationGracePeriodSeconds"]
        assert pod.process.wait(timeout=grace_period) == 0, pod.log_path.read_text()
        elapsed = time.monotonic() - started
    print(f"SIGTERM to exit: {elapsed:.1f} s (DRAIN_SECONDS={drain}, grace period {grace_period} s)")
    assert elapsed >= drain
