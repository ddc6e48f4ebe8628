"""The benchmark's running order: every server takes a turn at each place, mlkube's variants follow it."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from tests.bench.conftest import BENCH


@pytest.fixture(scope="module")
def run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names(run_module: ModuleType, round_no: int) -> list[str]:
    peers = run_module.all_peers()
    return [peer.name for peer in run_module.round_order(peers, round_no)]


def test_first_round_keeps_the_listed_order(run_module: ModuleType) -> None:
    listed = ["notes", "mlserver", "mlkube", "mlkube-nolog", "mlkube-auth", "mlkube-wide"]
    assert names(run_module, 1) == listed


def test_each_round_starts_one_server_further_on(run_module: ModuleType) -> None:
    mlkube = ["mlkube", "mlkube-nolog", "mlkube-auth"]  # the variants stay right after mlkube
    assert names(run_module, 2) == ["mlserver", *mlkube, "mlkube-wide", "notes"]
    assert names(run_module, 3) == [*mlkube, "mlkube-wide", "notes", "mlserver"]
    assert names(run_module, 4) == ["mlkube-wide", "notes", "mlserver", *mlkube]
    assert names(run_module, 5) == names(run_module, 1)


def test_every_server_runs_once_per_round(run_module: ModuleType) -> None:
    for round_no in range(1, 4):
        assert sorted(names(run_module, round_no)) == sorted(peer.name for peer in run_module.all_peers())
