"""Find a URL for the Service when none is given: the NodePort through `minikube service --url`, else a
temporary `kubectl port-forward` on a free local port. Both are context managers: the tunnel lives as long
as the `with` block."""

from __future__ import annotations

import queue
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import msgspec

from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Service
from mlkube.kube.output import Output
from mlkube.kube.runner import Completed, Runner

MINIKUBE_HINT = "install it (https://minikube.sigs.k8s.io/docs/start/)"


class _Profiles(msgspec.Struct):
    valid: list[dict[str, object]] = []


def minikube(out: Output, *, dry_run: bool = False) -> Runner:
    return Runner("minikube", out, dry_run=dry_run, timeout=120.0, install_hint=MINIKUBE_HINT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def service_endpoint(kubectl: Kubectl, url: str | None = None) -> Iterator[str]:
    """`url` itself, else the Service's URL: via minikube for a NodePort on a minikube context, else a
    port-forward to the Service (which sticks to one pod: fine for checks, not for spreading load)."""
    if url:
        yield url.rstrip("/")
        return
    service = kubectl.get(Service, f"service/{names.SERVICE}")
    port = service.spec.ports[0].port if service.spec.ports else names.PORT
    runner = minikube(kubectl.out)
    profile = kubectl.current_context()
    if service.spec.type in ("NodePort", "LoadBalancer") and is_minikube_profile(runner, profile):
        with minikube_service_url(runner, profile, kubectl.target.namespace) as found:
            yield found
        return
    kubectl.out.info(f"no --url: a port-forward to Service {names.SERVICE} (it sticks to one pod)")
    with port_forward(kubectl, f"service/{names.SERVICE}", port) as found:
        yield found


@contextmanager
def port_forward(
    kubectl: Kubectl, target: str, remote_port: int = names.PORT, timeout: float = 20.0
) -> Iterator[str]:
    """`kubectl port-forward <target> <free>:<remote_port>` until the block ends; yields the local URL."""
    local = free_port()
    with tempfile.TemporaryDirectory(prefix="mlkube-pf-") as folder:
        errors = Path(folder) / "stderr"
        args = ("port-forward", target, f"{local}:{remote_port}", "--address", "127.0.0.1")
        process = kubectl.popen(*args, stderr_path=str(errors), note="temporary; stopped when done")
        try:
            _wait_for_port(kubectl, process, kubectl.argv(*args), local, errors, timeout)
            yield f"http://127.0.0.1:{local}"
        finally:
            _stop(process)


@contextmanager
def minikube_service_url(
    runner: Runner, profile: str, namespace: str | None, timeout: float = 60.0
) -> Iterator[str]:
    """`minikube service ml-model-service --url`: prints the URL and exits (Linux) or keeps a tunnel open
    (Docker driver on macOS/Windows); either way the first http line is the URL."""
    args = ["service", names.SERVICE, "--url", "-p", profile]
    if namespace:
        args += ["-n", namespace]
    with tempfile.TemporaryDirectory(prefix="mlkube-mk-") as folder:
        errors = Path(folder) / "stderr"
        process = runner.popen(*args, stderr_path=str(errors), capture_stdout=True)
        try:
            yield _first_url(runner, process, errors, timeout)
        finally:
            _stop(process)


def is_minikube_profile(runner: Runner, context: str) -> bool:
    if not runner.available():
        return False
    completed = runner.run("profile", "list", "-o", "json", quiet=True, check=False, timeout=30)
    try:
        profiles = msgspec.json.decode(completed.stdout or "{}", type=_Profiles)
    except msgspec.DecodeError:
        return False
    return any(profile.get("Name") == context for profile in profiles.valid)


def _wait_for_port(
    kubectl: Kubectl,
    process: subprocess.Popen[bytes],
    argv: list[str],
    port: int,
    errors: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = errors.read_text(encoding="utf-8", errors="replace")
            raise kubectl.classify(Completed(argv, process.returncode, "", stderr))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise KubeError(f"kubectl port-forward did not open 127.0.0.1:{port} within {timeout:g}s")


def _first_url(runner: Runner, process: subprocess.Popen[bytes], errors: Path, timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = process.stdout
    if stdout is None:
        raise KubeError("minikube service: no output pipe")
    threading.Thread(target=_read_lines, args=(stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            stderr = errors.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            reason = stderr[-1] if stderr else f"exit status {process.wait()}"
            raise KubeError(f"`minikube service {names.SERVICE} --url` printed no URL: {reason}")
        if line.startswith(("http://", "https://")):
            return line.strip()
    raise KubeError(f"`minikube service {names.SERVICE} --url` printed no URL within {timeout:g}s")


def _read_lines(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    for raw in stream:
        lines.put(raw.decode("utf-8", errors="replace").strip())
    lines.put(None)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
