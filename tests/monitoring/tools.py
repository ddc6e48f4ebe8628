"""Debian's `prometheus` package: the server and promtool.

Missing, the tests that need them skip with the install command on a developer's machine, and fail in CI
(CI=true), where .ci/system-deps installs the package.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL = "apt-get install prometheus  (Debian's package ships /usr/bin/prometheus and /usr/bin/promtool)"


def prometheus_tool(name: str) -> str:
    """Path of `prometheus` or `promtool`; skips the test without it, fails it under CI=true."""
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} not found: {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
