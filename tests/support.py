"""Test helpers: start a real `mlkube serve` process on a free port and talk to it over a socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

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
    log_dir = Path(tempfile.mkdtemp(prefix="mlkube-test-"))
    log_path = log_dir / "server.log"
    process, url = spawn_server(overrides, log_path)
    running = RunningServer(process, url, log_path)
    try:
        if wait:
            wait_until_answering(process, url, log_path)
        yield running
    finally:
        running.stop()
