"""A real container engine for tests/image: reuse the one that answers, else start dockerd (as root) for
the session and stop only that; the Dockerfile's base image, made as a labelled stand-in from Debian's
packages when no registry can give it. The engine's storage (/var/lib/docker) outlives the session, so the
base and the dependency layers are reused by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.dockerfile import parse_dockerfile
from tests.deploy.tools import DOCKERFILE, explain, run
from tests.support import missing, require_tool

STAND_IN_SCRIPT = Path(__file__).with_name("stand-in-base.sh")
STAND_IN_LABEL = "io.mlkube.stand-in"
# dockerd as the machines of this project can run it: no bridge and no iptables (containers and builds
# use the host's network, and the tests only talk to 127.0.0.1).
DOCKERD_ARGS = ["--storage-driver=vfs", "--bridge=none", "--iptables=false", "--ip6tables=false"]


@dataclass(frozen=True)
class Engine:
    client: str
    """A docker client that can build with BuildKit (Docker >= 23 needs buildx for it; 20.10 does not)."""
    bin_dir: Path
    """A folder whose `docker` is `client`: first on PATH for `mlkube image build`."""

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([self.client, *args], timeout=timeout)

    def check(self, *args: str, timeout: float = 120) -> str:
        result = self.docker(*args, timeout=timeout)
        assert result.returncode == 0, explain(result)
        return result.stdout.strip()


def say(config: pytest.Config, line: str) -> None:
    """A line on the terminal even while output is captured: what the image tests did to the machine."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print(f"\n[tests/image] {line}", flush=True)


def buildkit_client() -> str:
    """The first docker client that builds with BuildKit: PATH's, else Debian's /usr/bin/docker."""
    candidates = [shutil.which("docker"), "/usr/bin/docker"]
    for client in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        if run([client, "buildx", "version"], timeout=30).returncode == 0:
            return client
        version = run([client, "version", "--format", "{{.Client.Version}}"], timeout=30).stdout
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) < 23:
            return client
    require_tool("docker")
    return missing(
        "no docker client that builds with BuildKit: install buildx, or Debian's docker.io (20.10)"
    )


def engine_answers(client: str) -> bool:
    return run([client, "info", "--format", "{{.ServerVersion}}"], timeout=30).returncode == 0


def start_dockerd(client: str, log_path: Path) -> subprocess.Popen[bytes]:
    if os.geteuid() != 0:
        missing("no container engine answers, and starting dockerd needs root (`sudo make test`)")
    dockerd = require_tool("dockerd")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [dockerd, *DOCKERD_ARGS], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 90
    while not engine_answers(client):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(process)
            raise AssertionError(f"dockerd did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.5)
    return process


def stop_dockerd(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    client = buildkit_client()
    bin_dir = Path(tempfile.mkdtemp(prefix="mlkube-docker-bin-"))
    (bin_dir / "docker").symlink_to(client)
    started = None
    if engine_answers(client):
        say(request.config, f"using the running container engine ({client})")
    else:
        log_path = bin_dir / "dockerd.log"
        started = start_dockerd(client, log_path)
        say(request.config, f"started dockerd {' '.join(DOCKERD_ARGS)} (log: {log_path}); stopped at the end")
    try:
        yield Engine(client, bin_dir)
    finally:
        if started is not None:
            stop_dockerd(started)


def base_image() -> str:
    """The Dockerfile's registry base (one tag, pinned; tests/deploy/test_dockerfile.py checks that)."""
    return parse_dockerfile(DOCKERFILE).final_stage.base


@pytest.fixture(scope="session")
def base(engine: Engine, request: pytest.FixtureRequest) -> str:
    """The base tag, present in the engine: pulled already, or made here as a labelled stand-in."""
    tag = base_image()
    if engine.docker("image", "inspect", tag).returncode != 0:
        require_tool("debootstrap")
        say(request.config, f"{tag} is missing and no registry is reachable: making a STAND-IN (~4 min)")
        env = {**os.environ, "PATH": f"{engine.bin_dir}{os.pathsep}{os.environ['PATH']}"}
        made = run(["bash", str(STAND_IN_SCRIPT), tag], env=env, timeout=1200)
        assert made.returncode == 0, explain(made)
    label = engine.check(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}', tag
    )
    if label and label != "<no value>":
        python = engine.check("run", "--rm", "--network", "none", tag, "python", "--version")
        say(
            request.config,
            f"base {tag} is a STAND-IN ({label}, {python}), not the registry's image: "
            "sizes and the Python patch level differ from a real build",
        )
    return tag
