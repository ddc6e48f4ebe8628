"""One policy for every system tool the suite uses: skip with the install command, or fail under CI=true."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import require_tool

ABSENT = "mlkube-no-such-tool"


def test_a_missing_tool_skips_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.skip.Exception, match=r"wrk on PATH not found: .*apt-get install -y wrk"):
        require_tool("wrk")


def test_under_ci_a_missing_tool_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=rf"^CI=true and {tmp_path}/chromium not found: "):
        require_tool("chromium", tmp_path / "chromium")


def test_a_present_tool_is_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool("python", Path(sys.executable)) == sys.executable
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert require_tool(Path(sys.executable).name) == sys.executable
    with pytest.raises(pytest.fail.Exception, match=ABSENT):
        require_tool(ABSENT)
