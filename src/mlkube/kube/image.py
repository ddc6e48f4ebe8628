"""`mlkube image build`: docker or podman, into the local engine, minikube's daemon, or a kind cluster.

`--minikube` is the notes' `eval $(minikube docker-env)` without eval: mlkube reads the variables that
command prints and passes them to `docker build` only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from mlkube.kube.errors import KubeError, ToolMissing
from mlkube.kube.output import Output
from mlkube.kube.runner import Runner

ENGINES = ("docker", "podman")
_ENGINE_HINT = "install Docker (https://docs.docker.com/engine/install/) or Podman"


@dataclass(frozen=True)
class BuildRequest:
    tag: str = "ml-model:v2"
    context: Path = Path()
    dockerfile: Path | None = None
    build_args: list[str] = field(default_factory=list)
    into: str = "local"
    """`local`, `minikube` (its Docker daemon) or `kind` (loaded into the cluster's nodes)."""
    profile: str = "minikube"
    kind_cluster: str = "kind"
    engine: str | None = None
    bundle: Path | None = None
    """An existing bundle folder inside the context to ship (MODEL_SOURCE=copy) instead of training."""
    network: str | None = None
    """The network of the build's RUN steps (`host` where the engine has no bridge network)."""


def parse_docker_env(text: str) -> dict[str, str]:
    """`export DOCKER_HOST="tcp://..."` lines (`minikube docker-env --shell bash`) into a dict."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


def pick_engine(out: Output, wanted: str | None = None) -> Runner:
    """The engine asked for, else docker, else podman."""
    for name in [wanted] if wanted else ENGINES:
        runner = Runner(name, out, timeout=3600, install_hint=_ENGINE_HINT)
        if runner.available():
            return runner
    raise ToolMissing(f"{wanted or 'neither docker nor podman'} found on PATH: {_ENGINE_HINT}")


def build_image(out: Output, request: BuildRequest, *, dry_run: bool = False) -> None:
    dockerfile = request.dockerfile or request.context / "Dockerfile"
    if not dockerfile.is_file():
        raise KubeError(f"no Dockerfile at {dockerfile}: run from the repository root or pass --file")
    bundle_arg = bundle_build_arg(request)
    engine = _engine(out, request.engine, dry_run)
    minikube = Runner(
        "minikube", out, dry_run=dry_run, timeout=120, install_hint="see https://minikube.sigs.k8s.io"
    )
    if request.into == "minikube" and engine.tool == "docker":
        engine.env = _minikube_docker_env(minikube, request.profile, out)
    if engine.tool == "docker":
        # The Dockerfile builds only the stages its target needs: BuildKit (Docker < 23 defaults to legacy).
        engine.env = {**(engine.env or {}), "DOCKER_BUILDKIT": "1"}
    _build(engine, request, dockerfile, bundle_arg)
    if request.into == "minikube" and engine.tool != "docker":
        minikube.run("image", "load", request.tag, "-p", request.profile, timeout=1800)
    elif request.into == "kind":
        kind = Runner("kind", out, dry_run=dry_run, timeout=1800, install_hint="see https://kind.sigs.k8s.io")
        kind.run("load", "docker-image", request.tag, "--name", request.kind_cluster)
    where = {
        "local": f"the local {engine.tool}",
        "minikube": "minikube",
        "kind": f"kind cluster {request.kind_cluster}",
    }
    if not dry_run:
        out.ok(f"image {request.tag} built into {where[request.into]}")


def _engine(out: Output, wanted: str | None, dry_run: bool) -> Runner:
    try:
        runner = pick_engine(out, wanted)
    except ToolMissing:
        if not dry_run:
            raise
        runner = Runner(wanted or "docker", out)
    runner.dry_run = dry_run
    return runner


def _minikube_docker_env(minikube: Runner, profile: str, out: Output) -> dict[str, str]:
    completed = minikube.run(
        "docker-env", "--shell", "bash", "-p", profile, note="what `eval $(minikube docker-env)` would export"
    )
    env = parse_docker_env(completed.stdout)
    if not minikube.dry_run and "DOCKER_HOST" not in env:
        raise KubeError(f"`minikube docker-env` printed no DOCKER_HOST: is minikube ({profile}) running?")
    if env:
        out.info("  using minikube's Docker daemon: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    return env


def build_args(request: BuildRequest) -> list[str]:
    """--build-arg values; MODEL_VERSION defaults to the tag (`ml-model:v3` → v3), the version the pods
    then report, which is what `mlkube release` checks."""
    given = list(request.build_args)
    version = tag_of(request.tag)
    if version and not any(arg.startswith("MODEL_VERSION=") for arg in given):
        given.append(f"MODEL_VERSION={version}")
    return given


def tag_of(image: str) -> str | None:
    """`ml-model:v3` → `v3`; `registry:5000/team/ml-model:v3@sha256:...` → `v3`; no tag → None."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def bundle_build_arg(request: BuildRequest) -> list[str]:
    """`--bundle models/iris/v3` → MODEL_SOURCE=copy and BUNDLE=<its path inside the context>: BuildKit's
    built-in frontend copies it from the context (a named build context would need buildx)."""
    if request.bundle is None:
        return []
    bundle, context = request.bundle.resolve(), request.context.resolve()
    if not (bundle / "metadata.json").is_file():
        raise KubeError(f"{request.bundle} is not a model bundle (no metadata.json): see `mlkube train`")
    if not bundle.is_relative_to(context):
        raise KubeError(
            f"{request.bundle} is outside the build context {request.context}: copy it under models/"
        )
    return ["MODEL_SOURCE=copy", f"BUNDLE={bundle.relative_to(context).as_posix()}"]


def _build(engine: Runner, request: BuildRequest, dockerfile: Path, extra_args: list[str]) -> None:
    args = ["build", "-t", request.tag, "-f", str(dockerfile)]
    if request.network:
        args += ["--network", request.network]
    for build_arg in [*build_args(request), *extra_args]:
        args += ["--build-arg", build_arg]
    engine.stream(*args, str(request.context))
