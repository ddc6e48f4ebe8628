"""The image recipe, read statically: hadolint, pinning, user, entry point, labels, no secrets, context."""

from __future__ import annotations

import importlib.util
import re

import pytest

from mlkube.settings import Settings
from tests.deploy.dockerfile import Dockerfile, Instruction, parse_dockerfile
from tests.deploy.tools import DOCKERFILE, REPO, explain, run, tool

PINNED_BASE = re.compile(r"python:\d+\.\d+\.\d+-slim-[a-z]+")
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
PRAGMA = re.compile(r"^(hadolint ignore=|checkov:skip=)")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


def stage_names(dockerfile: Dockerfile) -> set[str]:
    return {stage.name for stage in dockerfile.stages if stage.name}


def test_hadolint_finds_no_warning() -> None:
    result = run([tool("hadolint"), "--failure-threshold", "warning", str(DOCKERFILE)], cwd=REPO)
    assert result.returncode == 0, explain(result)


def test_every_lint_exception_states_its_reason(dockerfile: Dockerfile) -> None:
    for instruction in dockerfile.instructions:
        pragmas = [c for c in instruction.comments if PRAGMA.match(c)]
        reasons = [c for c in instruction.comments if c and not PRAGMA.match(c)]
        if pragmas:
            assert reasons, f"line {instruction.line}: {pragmas} without a comment saying why"
        for pragma in pragmas:
            if pragma.startswith("checkov:skip="):
                assert pragma.partition(":")[2].partition(":")[2].strip(), f"{pragma}: no reason"


def test_base_images_are_one_exact_pinned_tag(dockerfile: Dockerfile) -> None:
    stages = stage_names(dockerfile)
    registry_bases = {
        stage.base
        for stage in dockerfile.stages
        if stage.base not in stages and stage.base != "scratch" and "${" not in stage.base
    }
    assert len(registry_bases) == 1, (
        f"build and runtime share one base (the venv is copied): {registry_bases}"
    )
    [base] = registry_bases
    assert PINNED_BASE.fullmatch(base), f"{base}: pin an exact python:X.Y.Z-slim-<debian> tag"
    variable_bases = [stage.base for stage in dockerfile.stages if "${" in stage.base]
    assert variable_bases == ["model-${MODEL_SOURCE}"]


def test_bundle_source_chooses_a_stage_of_this_file(dockerfile: Dockerfile) -> None:
    assert dockerfile.global_args == {"MODEL_SOURCE": "train"}
    assert {"model-train", "model-copy"} <= stage_names(dockerfile)


def test_runtime_stage_holds_only_the_serving_install_and_the_bundle(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.final_stage
    assert runtime.all("RUN") == [], "nothing is installed or built in the runtime stage"
    copies = [(i.options().get("from"), i.words()[-2:]) for i in runtime.all("COPY")]
    assert copies == [("serve", ["/opt/venv", "/opt/venv"]), ("model", ["/app/models", "/app/models"])]
    serve_stage, serve_install = dockerfile.recipe("serve-install")
    assert serve_stage.name == "serve"
    assert serve_install.value.startswith("python -m venv --without-pip /opt/venv"), "no pip in the runtime"
    assert "--require-hashes" in serve_install.words()
    assert "deploy/requirements-serve.lock" in serve_install.words()
    _, serve_project = dockerfile.recipe("serve-project")
    assert "install --no-deps ." in serve_project.value, "mlkube itself adds no dependency to the lock's"


def test_dependencies_are_installed_before_the_source_is_copied(dockerfile: Dockerfile) -> None:
    """A change under src/ must not invalidate the dependency layers."""
    for stage_name, lock in (
        ("serve", "requirements-serve.lock"),
        ("model-train", "requirements-train.lock"),
    ):
        steps = dockerfile.stage(stage_name).instructions
        lock_install = next(
            n for n, step in enumerate(steps) if step.keyword == "RUN" and f"deploy/{lock}" in step.words()
        )
        source_copy = next(
            n for n, step in enumerate(steps) if step.keyword == "COPY" and "src/" in step.words()
        )
        assert "--require-hashes" in steps[lock_install].words()
        assert lock_install < source_copy, f"{stage_name}: the lock is installed after src/ is copied"


def test_the_trained_version_is_the_labelled_version(dockerfile: Dockerfile) -> None:
    train_stage, train = dockerfile.recipe("train")
    assert '--version "$MODEL_VERSION"' in train.value
    runtime = dockerfile.final_stage
    assert train_stage.merged("ARG")["MODEL_VERSION"] == runtime.merged("ARG")["MODEL_VERSION"]
    labels = runtime.merged("LABEL")
    assert labels["io.mlkube.model.version"] == "${MODEL_VERSION}"
    assert labels["org.opencontainers.image.version"] == "${MODEL_VERSION}"
    assert labels["io.mlkube.model.name"] == "${MODEL_NAME}"


def test_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.final_stage.last("USER").value
    assert re.fullmatch(r"\d+:\d+", user), "numeric, so that runAsNonRoot can verify it"
    assert int(user.split(":")[0]) >= 10000


def test_entrypoint_is_the_server_module_in_exec_form(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.final_stage
    assert runtime.last("ENTRYPOINT").exec_form() == ["python", "-m", "mlkube.server"]
    assert importlib.util.find_spec("mlkube.server.__main__") is not None
    assert runtime.all("CMD") == []


def test_environment_serves_the_baked_bundle_on_port_5000(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.final_stage
    env = runtime.merged("ENV")
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 - the container must listen beyond its loopback
    assert env["PORT"] == "5000"
    assert env["MODEL_DIR"] == "/app/models"
    assert runtime.last("EXPOSE").value == "5000"
    settings = {name.upper() for name in Settings.__struct_fields__}
    unknown = {name for name in env if not name.startswith(("PYTHON", "PATH"))} - settings
    assert not unknown, f"not read by mlkube.settings.Settings: {unknown}"


def test_no_secret_in_build_arguments_or_environment(dockerfile: Dockerfile) -> None:
    names = set(dockerfile.global_args)
    for stage in dockerfile.stages:
        names |= set(stage.merged("ARG")) | set(stage.merged("ENV"))
    assert not {name for name in names if SECRET_NAME.search(name)}


def test_healthcheck_probes_health_with_the_standard_library(dockerfile: Dockerfile) -> None:
    healthcheck: Instruction = dockerfile.final_stage.last("HEALTHCHECK")
    command = Instruction("CMD", healthcheck.value.partition(" CMD ")[2], healthcheck.line, ()).exec_form()
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")
    assert "urllib.request" in command[2]
    assert "/health" in command[2]


def test_build_context_holds_only_what_the_build_copies(dockerfile: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: secrets, models and venvs never enter the context"
    allowed = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    sources = {
        source
        for stage in dockerfile.stages
        for copy in stage.all("COPY")
        if "from" not in copy.options()
        for source in copy.words()[:-1]
    }
    bundle_copies = {source for source in sources if source.startswith("${BUNDLE}")}
    assert bundle_copies == {"${BUNDLE}/"}, "MODEL_SOURCE=copy takes the bundle from the context"
    assert sources - bundle_copies | {"models/"} == allowed, "models/ only for the BUNDLE of a copy build"
    assert all((REPO / source).exists() for source in sources - bundle_copies)
