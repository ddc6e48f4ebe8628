"""The image's hashed locks (deploy/requirements-*.lock, written by `make lock`) agree with pyproject.toml.

A bound changed in pyproject without `make lock` fails here, naming the package, before an image build
would ship a version outside the bounds.
"""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.tools import REPO

LOCK_SCRIPT = REPO / ".ci" / "lock"
# The image's Python and platform, as .ci/lock compiles for them.
IMAGE_MARKERS = {"sys_platform": "linux", "python_version": "3.11", "platform_system": "Linux"}
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ \\]+)")


def lock(name: str) -> dict[str, tuple[str, int]]:
    """name → (pinned version, number of hashes) of deploy/requirements-<name>.lock."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (REPO / "deploy" / f"requirements-{name}.lock").read_text(encoding="utf-8").splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match[1])
            pins[current] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def project(extra: str = "") -> list[Requirement]:
    """pyproject's dependencies (with `extra`'s), as the installed package's metadata states them, for the
    image's Python and platform."""
    declared = [Requirement(text) for text in metadata.requires("mlkube") or []]
    environment = {**IMAGE_MARKERS, "extra": extra}
    return [r for r in declared if r.marker is None or r.marker.evaluate(environment)]


def cli_only() -> set[str]:
    [names] = re.findall(r'^CLI_ONLY="([^"]*)"', LOCK_SCRIPT.read_text(encoding="utf-8"), re.MULTILINE)
    return {canonicalize_name(name) for name in names.split()}


def assert_pinned_within_bounds(pins: dict[str, tuple[str, int]], requirements: list[Requirement]) -> None:
    assert requirements, "no requirement read from the package's metadata"
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in the lock: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock pins {requirement.name}=={version}, outside pyproject's {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("name", ["serve", "train"])
def test_every_pin_has_a_hash(name: str) -> None:
    pins = lock(name)
    assert pins
    assert [package for package, (_, hashes) in pins.items() if hashes == 0] == []


def names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def test_serve_lock_holds_the_serving_dependencies_within_pyprojects_bounds() -> None:
    serving = [r for r in project() if canonicalize_name(r.name) not in cli_only()]
    assert_pinned_within_bounds(lock("serve"), serving)


def test_serve_lock_holds_no_cli_or_training_package() -> None:
    training = names(project("train")) - names(project())
    unwanted = cli_only() | training | {"pygments", "pydantic", "pip", "setuptools"}
    assert set(lock("serve")) & unwanted == set()


def test_train_lock_holds_every_dependency_and_the_train_extra_within_bounds() -> None:
    assert_pinned_within_bounds(lock("train"), project("train"))


def test_both_locks_pin_shared_packages_alike() -> None:
    serve, train = lock("serve"), lock("train")
    differing = {name: (serve[name][0], train[name][0]) for name in serve if serve[name][0] != train[name][0]}
    assert set(serve) <= set(train)
    assert differing == {}, "the model is trained and served with the same numpy, onnxruntime, ..."
