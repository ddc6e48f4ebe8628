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


def listed(run_module: ModuleType) -> list[str]:
    return [peer.name for peer in run_module.all_peers()]


def variants(run_module: ModuleType) -> list[str]:
    """mlkube's feature-price variants, in listed order (a second model, mlkube-wide, takes its own turn)."""
    return [name for name in listed(run_module) if name in run_module.VARIANTS]


def turns(run_module: ModuleType, names_in_order: list[str]) -> list[str]:
    """The servers that take turns: each mlkube variant rides along right after `mlkube`."""
    return [name for name in names_in_order if name not in run_module.VARIANTS]


def test_first_round_keeps_the_listed_order(run_module: ModuleType) -> None:
    assert names(run_module, 1) == listed(run_module)


def test_every_server_runs_once_per_round(run_module: ModuleType) -> None:
    for round_no in range(1, 7):
        assert sorted(names(run_module, round_no)) == sorted(listed(run_module))


def test_each_round_starts_one_server_further_on_and_every_server_goes_first_in_turn(
    run_module: ModuleType,
) -> None:
    servers = turns(run_module, listed(run_module))
    assert len(servers) >= 2
    for round_no in range(1, 2 * len(servers) + 1):
        shift = (round_no - 1) % len(servers)
        assert turns(run_module, names(run_module, round_no)) == servers[shift:] + servers[:shift], round_no
    assert {names(run_module, n)[0] for n in range(1, len(servers) + 1)} == set(servers)


def test_mlkube_variants_stay_right_after_mlkube(run_module: ModuleType) -> None:
    riders = variants(run_module)
    assert riders, "no mlkube variant to keep together"
    for round_no in range(1, 7):
        order = names(run_module, round_no)
        start = order.index("mlkube")
        assert order[start + 1 : start + 1 + len(riders)] == riders, order
