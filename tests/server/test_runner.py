"""Worker count from the cgroup CPU quota: a 500m pod on a 64-core node must not fork 64 workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkube.server import runner


@pytest.mark.parametrize(
    ("content", "expected"),
    [("max 100000", None), ("50000 100000", 0.5), ("200000 100000", 2.0), ("150000 100000", 1.5)],
)
def test_cgroup_v2_quota_is_read(tmp_path: Path, content: str, expected: float | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content + "\n")
    assert runner.cgroup_cpu_limit(v2=cpu_max, v1_quota=tmp_path / "absent") == expected


def test_cgroup_v1_quota_is_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert runner.cgroup_cpu_limit(v2=tmp_path / "absent", v1_quota=tmp_path / "cpu.cfs_quota_us") == 0.5


def test_unlimited_v1_quota_is_none(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert runner.cgroup_cpu_limit(v2=tmp_path / "absent", v1_quota=tmp_path / "cpu.cfs_quota_us") is None


@pytest.mark.parametrize(("quota", "expected"), [(0.5, 1), (1.5, 2), (None, 2), (64.0, 2)])
def test_default_workers_follow_the_quota_capped_by_cores(
    monkeypatch: pytest.MonkeyPatch, quota: float | None, expected: int
) -> None:
    monkeypatch.setattr(runner, "cgroup_cpu_limit", lambda: quota)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert runner.default_workers() == expected


def test_permits_stay_above_max_in_flight_and_below_the_open_file_limit() -> None:
    assert runner.connection_limit(256, 1, open_files=1 << 20) == 1024
    assert runner.connection_limit(1000, 2, open_files=1 << 20) == 2000
    # a container's 1,024-descriptor soft limit: past it accept() would fail with EMFILE, not wait
    assert runner.connection_limit(256, 1, open_files=1024) == 1024 - runner.RESERVED_FILES
