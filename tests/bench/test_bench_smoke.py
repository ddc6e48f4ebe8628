"""Keeps bench/run.py from rotting: a tiny --quick run against mlkube alone; outputs parsed, no timing judged.

Needs Debian's `wrk` (the benchmark's load generator; `make system-deps` installs it): without it this test
skips saying how to install it, or fails under CI=true, so a missing install step cannot pass as green.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import require_tool

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    require_tool("wrk")
    out = tmp_path_factory.mktemp("bench")
    command = [
        sys.executable,
        str(RUN),
        "--quick",
        "--only",
        "mlkube,mlkube-wide",
        "--duration",
        "1",
        "--warmup",
        "1",
        "--out",
        str(out),
        "--work",
        str(out / "work"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False, cwd=REPO)
    assert done.returncode == 0, f"bench/run.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out, done.stdout


def test_quick_run_writes_results_json_with_every_point(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    data = json.loads((out / "results.json").read_text())
    servers = {run["server"] for run in data["runs"]}
    assert servers == {"mlkube", "mlkube-nolog", "mlkube-auth", "mlkube-wide"}
    main_run = next(run for run in data["runs"] if run["server"] == "mlkube")
    points = {(s["kind"], s["concurrency"], s["rows"]) for s in main_run["samples"]}
    expected = {("single", 1, 1), ("single", 8, 1), ("single", 64, 1), ("batch", 8, 1000), ("floor", 64, 0)}
    expected.add(("v2", 64, 1))
    assert expected <= points
    for sample in main_run["samples"]:
        assert sample["requests_ok"] > 0
        assert sample["rps"] > 0
        assert sample["p99_ms"] >= sample["p50_ms"] > 0
        assert sample["cpu_us_per_request"] > 0
    assert 0 < main_run["start_to_ready_s"] < 60
    assert main_run["pss_mib"] > 0
    assert main_run["processes"] >= 3  # supervisor + 2 workers
    assert main_run["exit_code"] == 0
    assert json.loads(main_run["answer"])["class_name"] == "setosa"


def test_access_log_is_one_line_per_request_and_off_at_warning(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    runs = {run["server"]: run for run in json.loads((out / "results.json").read_text())["runs"]}
    with_log = runs["mlkube"]["samples"][0]["output_lines_per_request"]
    without = runs["mlkube-nolog"]["samples"][0]["output_lines_per_request"]
    assert with_log == pytest.approx(1.0, abs=0.05)
    assert without < 0.01


def test_c8_point_records_each_workers_share_and_connections(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    runs = json.loads((out / "results.json").read_text())["runs"]
    main_run = next(run for run in runs if run["server"] == "mlkube")
    c8 = next(s for s in main_run["samples"] if (s["kind"], s["concurrency"]) == ("single", 8))
    assert sum(c8["worker_shares"]) == pytest.approx(1.0, abs=0.02)
    assert 1 <= len(c8["worker_shares"]) <= 2
    assert sum(c8["worker_connections"]) == 8  # wrk's 8 keep-alive connections, all held by workers
    assert 1 <= len(c8["worker_connections"]) <= 2


def test_results_md_has_the_tables_and_targets(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    text = (out / "RESULTS.md").read_text()
    for heading in (
        "## Single-row requests",
        "## Batches",
        "## mlkube against its own floor",
        "## What each feature costs per request",
        "## Where a request's time goes in the app",
        "## Worker balance",
        "## Issue 6 targets",
        "## Machine and versions",
    ):
        assert heading in text
    assert "| p99 at c=64 | ≤ 10 ms |" in text
    assert "granian" in text  # the versions line of mlkube


def test_cpu_is_split_between_python_and_granian_threads(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    runs = json.loads((out / "results.json").read_text())["runs"]
    main_run = next(run for run in runs if run["server"] == "mlkube")
    for sample in main_run["samples"]:
        assert 0 < sample["main_thread_us_per_request"] < sample["cpu_us_per_request"]
    assert "Python thread (event loop + app)" in (out / "RESULTS.md").read_text()


def test_stage_costs_time_every_stage_of_one_row_and_of_a_batch(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    stages = json.loads((out / "results.json").read_text())["stage_costs"]
    expected = {"decode", "rows_to_array", "model", "answer", "metrics", "access_log", "whole"}
    under_load = {"model_joined_16", "whole_joined_16", "health_joined_16"}
    assert set(stages["single"]) == expected | under_load
    assert set(stages["batch_1000"]) == expected
    for found in (stages["single"], stages["batch_1000"]):
        assert all(value > 0 for value in found.values())
        assert found["whole"] > found["model"]
    assert stages["batch_1000"]["decode"] > stages["single"]["decode"]
    assert "Under load the app's own code costs" in (out / "RESULTS.md").read_text()


def test_chart_is_a_png(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    assert (out / "results.png").read_bytes()[:8] == PNG_SIGNATURE


def test_ratio_lines_come_last(quick_run: tuple[Path, str]) -> None:
    _, stdout = quick_run
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("target worker balance at c=8")


def test_from_json_rewrites_the_same_results_md(quick_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = quick_run
    command = [sys.executable, str(RUN), "--from-json", str(out / "results.json"), "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "RESULTS.md").read_text() == (out / "RESULTS.md").read_text()
    assert (tmp_path / "results.png").read_bytes()[:8] == PNG_SIGNATURE


def test_every_missed_target_is_explained_from_the_profile(
    quick_run: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = quick_run
    raw = json.loads((out / "results.json").read_text())
    for run in raw["runs"]:
        if run["server"] != "mlkube":
            continue
        run["start_to_ready_s"] = 9.0
        for sample in run["samples"]:  # every mlkube target made to miss
            sample["p99_ms"] = 99.0
            if sample["kind"] == "floor":
                sample["rps"] *= 100
            if sample["kind"] == "batch" and sample["rows"] == 1000:
                sample["rows_per_s"] = 1.0
    edited = tmp_path / "results.json"
    edited.write_text(json.dumps(raw))
    command = [sys.executable, str(RUN), "--from-json", str(edited), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    why = text.split("### Why the missed targets are missed")[1].split("\n## ")[0]
    missed = ["p99 at c=64", "p99 at c=8", "/predict vs own /health, c=64", "1,000-row batches"]
    for target in [*missed, "start → ready"]:
        assert f"- {target}:" in why, why
    for reason in ("cores and wrk", "JSON in and out", "micro-batched it takes", "fastest round"):
        assert reason in why


def test_the_second_model_is_measured_beside_the_iris_forest(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    runs = {run["server"]: run for run in json.loads((out / "results.json").read_text())["runs"]}
    wide = runs["mlkube-wide"]
    points = {(s["kind"], s["concurrency"], s["rows"]) for s in wide["samples"]}
    assert {("single", 1, 1), ("single", 64, 1), ("batch", 8, 1000)} <= points
    assert all(sample["requests_ok"] > 0 and sample["non_2xx"] == 0 for sample in wide["samples"])
    assert json.loads(wide["answer"])["class_name"] in ("low", "mid", "high")
    assert "## A second model: HistGradientBoosting on a wider table" in (out / "RESULTS.md").read_text()
