"""`mlkube image build`: docker or podman; minikube's daemon without eval; kind load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkube.kube.image import parse_docker_env
from tests.kube.conftest import run_cli
from tests.kube.fake_kubectl import FakeKubectl

DOCKER_ENV = """export DOCKER_TLS_VERIFY="1"
export DOCKER_HOST="tcp://192.168.49.2:2376"
export DOCKER_CERT_PATH="/home/learner/.minikube/certs"
export MINIKUBE_ACTIVE_DOCKERD="minikube"

# To point your shell to minikube's docker-daemon, run:
# eval $(minikube -p minikube docker-env)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    return folder


@pytest.fixture
def only_fakes(fake: FakeKubectl, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    """PATH holds the fakes and nothing else (this machine has a real docker client)."""
    monkeypatch.setenv("PATH", str(fake.bin))
    return fake


def test_docker_env_output_is_parsed_without_eval() -> None:
    assert parse_docker_env(DOCKER_ENV) == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": "tcp://192.168.49.2:2376",
        "DOCKER_CERT_PATH": "/home/learner/.minikube/certs",
        "MINIKUBE_ACTIVE_DOCKERD": "minikube",
    }
    assert parse_docker_env('export X="a b; rm -rf /"\necho hi\n') == {"X": "a b; rm -rf /"}


def test_minikube_build_runs_docker_with_minikubes_environment(
    only_fakes: FakeKubectl, project: Path
) -> None:
    for tool in ("docker", "minikube"):
        only_fakes.install(tool)
    only_fakes.on("docker-env", tool="minikube", reply={"stdout": DOCKER_ENV})
    only_fakes.on("build", tool="docker", reply={"stdout": "Successfully tagged ml-model:v3\n"})
    result = run_cli("image", "build", "--minikube", "--tag", "ml-model:v3", "--build-context", str(project))
    assert result.exit_code == 0, result.output
    assert only_fakes.lines() == [
        "minikube docker-env --shell bash -p minikube",
        f"docker build -t ml-model:v3 -f {project}/Dockerfile --build-arg MODEL_VERSION=v3 {project}",
    ]
    build = only_fakes.calls("docker")[0]
    assert build.env["DOCKER_HOST"] == "tcp://192.168.49.2:2376"
    assert build.env["DOCKER_CERT_PATH"] == "/home/learner/.minikube/certs"
    assert "what `eval $(minikube docker-env)` would export" in result.stdout
    assert "image ml-model:v3 built into minikube" in result.stdout


def test_with_podman_the_image_is_loaded_into_minikube(only_fakes: FakeKubectl, project: Path) -> None:
    for tool in ("podman", "minikube"):
        only_fakes.install(tool)
    only_fakes.on("build", tool="podman")
    only_fakes.on("image", "load", tool="minikube")
    result = run_cli(
        "image",
        "build",
        "--minikube",
        "--tag",
        "ml-model:v3",
        "--build-context",
        str(project),
        "--build-arg",
        "MODEL_VERSION=v3",
    )
    assert result.exit_code == 0, result.output
    assert only_fakes.lines() == [
        f"podman build -t ml-model:v3 -f {project}/Dockerfile --build-arg MODEL_VERSION=v3 {project}",
        "minikube image load ml-model:v3 -p minikube",
    ]


def test_kind_loads_the_built_image(only_fakes: FakeKubectl, project: Path) -> None:
    for tool in ("docker", "kind"):
        only_fakes.install(tool)
    only_fakes.on("build", tool="docker")
    only_fakes.on("load", "docker-image", tool="kind")
    result = run_cli("image", "build", "--kind", "--kind-cluster", "ml", "--build-context", str(project))
    assert result.exit_code == 0, result.output
    assert only_fakes.lines() == [
        f"docker build -t ml-model:v2 -f {project}/Dockerfile --build-arg MODEL_VERSION=v2 {project}",
        "kind load docker-image ml-model:v2 --name ml",
    ]
    # No minikube variables for a kind build; BuildKit, which builds only the stages the target needs.
    assert only_fakes.calls("docker")[0].env == {"DOCKER_BUILDKIT": "1"}


def test_no_engine_is_one_line(only_fakes: FakeKubectl, project: Path) -> None:
    result = run_cli("image", "build", "--build-context", str(project))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: neither docker nor podman found on PATH: install Docker "
        "(https://docs.docker.com/engine/install/) or Podman"
    )


def test_a_failed_build_points_at_its_output(only_fakes: FakeKubectl, project: Path) -> None:
    only_fakes.install("docker")
    only_fakes.on("build", tool="docker", reply={"stderr": "failed to solve\n", "exit": 1})
    result = run_cli("image", "build", "--build-context", str(project))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: `docker build` failed with exit status 1: see its output above"


def test_minikube_not_running_is_said_plainly(only_fakes: FakeKubectl, project: Path) -> None:
    for tool in ("docker", "minikube"):
        only_fakes.install(tool)
    only_fakes.on(
        "docker-env",
        tool="minikube",
        reply={"stderr": "* The control-plane node minikube host is not running\n", "exit": 80},
    )
    result = run_cli("image", "build", "--minikube", "--build-context", str(project))
    assert result.exit_code == 1
    assert "failed: * The control-plane node minikube host is not running" in result.stderr
    assert not only_fakes.calls("docker")


def test_a_missing_dockerfile_says_where_it_looked(fake: FakeKubectl, tmp_path: Path) -> None:
    result = run_cli("image", "build", "--build-context", str(tmp_path))
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: no Dockerfile at {tmp_path}/Dockerfile: run from the repository root or pass --file"
    )


def test_an_explicit_model_version_build_arg_wins(only_fakes: FakeKubectl, project: Path) -> None:
    only_fakes.install("docker")
    only_fakes.on("build", tool="docker")
    result = run_cli(
        "image",
        "build",
        "--tag",
        "ml-model:latest",
        "--build-arg",
        "MODEL_VERSION=v9",
        "--build-context",
        str(project),
    )
    assert result.exit_code == 0, result.output
    assert only_fakes.lines() == [
        f"docker build -t ml-model:latest -f {project}/Dockerfile --build-arg MODEL_VERSION=v9 {project}"
    ]


def test_minikube_and_kind_exclude_each_other(fake: FakeKubectl) -> None:
    result = run_cli("image", "build", "--minikube", "--kind")
    assert result.exit_code == 2
    assert "--minikube and --kind exclude each other" in result.output
    assert fake.calls() == []  # refused before anything ran


def write_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text("{}", encoding="utf-8")
    return folder


def test_an_existing_bundle_is_shipped_from_the_context(only_fakes: FakeKubectl, project: Path) -> None:
    only_fakes.install("docker")
    only_fakes.on("build", tool="docker")
    bundle = write_bundle(project / "models" / "iris" / "v7")
    result = run_cli(
        "image", "build", "--tag", "ml-model:v7", "--bundle", str(bundle), "--network", "host",
        "--build-context", str(project),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert only_fakes.lines() == [
        f"docker build -t ml-model:v7 -f {project}/Dockerfile --network host --build-arg MODEL_VERSION=v7 "
        f"--build-arg MODEL_SOURCE=copy --build-arg BUNDLE=models/iris/v7 {project}"
    ]


def test_a_bundle_outside_the_context_is_refused(
    only_fakes: FakeKubectl, project: Path, tmp_path: Path
) -> None:
    only_fakes.install("docker")
    bundle = write_bundle(tmp_path / "elsewhere" / "v7")
    result = run_cli("image", "build", "--bundle", str(bundle), "--build-context", str(project))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {bundle} is outside the build context {project}: copy it under models/"
    )
    assert only_fakes.calls("docker") == []


def test_a_folder_without_metadata_is_not_a_bundle(only_fakes: FakeKubectl, project: Path) -> None:
    only_fakes.install("docker")
    result = run_cli("image", "build", "--bundle", str(project), "--build-context", str(project))
    assert result.exit_code == 1
    assert "is not a model bundle (no metadata.json)" in result.stderr


def test_dry_run_prints_the_build_and_runs_nothing(only_fakes: FakeKubectl, project: Path) -> None:
    result = run_cli("image", "build", "--minikube", "--dry-run", "--build-context", str(project))
    assert result.exit_code == 0, result.output
    assert "$ minikube docker-env --shell bash -p minikube" in result.stdout
    assert (
        f"$ docker build -t ml-model:v2 -f {project}/Dockerfile --build-arg MODEL_VERSION=v2 {project}"
        in result.stdout
    )
    assert only_fakes.calls() == []
