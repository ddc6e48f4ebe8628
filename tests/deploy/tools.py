"""The deploy checks' command-line tools: kubectl from the machine, the rest from `make tools`.

A missing tool fails the test that needs it with the command that installs it: these checks run in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBE_DIR = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
TOOLS_BIN = REPO / ".venv-tools" / "bin"
_MAKE_TOOLS = "run `make tools` (installs deploy/requirements-tools.txt into .venv-tools)"
_INSTALL_HINT = {
    "kubectl": "it ships with these machines; install it from your distribution or the Kubernetes release",
    "checkov": _MAKE_TOOLS,
    "hadolint": _MAKE_TOOLS,
    "kubernetes-validate": _MAKE_TOOLS,
}


def tool(name: str) -> str:
    """Path of a tool: $MLKUBE_TOOLS_BIN, then .venv-tools/bin, then PATH; fails the test when absent."""
    folders = [Path(os.environ["MLKUBE_TOOLS_BIN"])] if os.environ.get("MLKUBE_TOOLS_BIN") else []
    for folder in [*folders, TOOLS_BIN]:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: {_INSTALL_HINT.get(name, 'install it')}", pytrace=False)
    return found


def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing text output; the caller checks the exit code."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    """The command, its exit code and its output, for an assertion message."""
    command = " ".join(result.args)
    return f"$ {command}\nexit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


KUBERNETES_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")
CHECKOV_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "WARNING", "BC_SKIP_MAPPING": "TRUE"}

Report = dict[str, Any]


def kubernetes_validate(files: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    return run([tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, files)])


def checkov(args: list[str], cwd: Path) -> list[Report]:
    """Run checkov offline with JSON output; one report per framework that found something to check."""
    env = {**os.environ, **CHECKOV_ENV}
    result = run(
        [tool("checkov"), "--skip-download", "--output", "json", *args], cwd=cwd, env=env, timeout=600
    )
    assert result.returncode in (0, 1), explain(result)
    parsed = json.loads(result.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    return [report for report in reports if "results" in report]


def failures(reports: list[Report]) -> list[str]:
    return [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
