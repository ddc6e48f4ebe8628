"""Benchmark mlkube against the notes' app and MLServer; write RESULTS.md, results.png, results.json.

    python bench/run.py                 # the full run (3 rounds, ~12 min), writes into bench/
    python bench/run.py --quick         # 1 round, short points (< 2 min), writes into bench/out/quick/
    python bench/run.py --only mlkube   # one server (and its feature variants)

Each peer gets its own virtual environment under bench/.envs/ (created once). mlkube runs from the
interpreter that runs this script, which must have mlkube installed (`make bench` uses the repo .venv).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import features, stages
from harness.chart import write_chart
from harness.measure import Config, RetryBudget, Run, Sample, run_server
from harness.peers import BENCH_DIR, REPO_DIR, MlkubePeer, Peer, all_peers
from harness.report import Summary, ratio_lines
from harness.results_md import machine, markdown
from harness.wrk import require_wrk

FULL = Config(
    rounds=3,
    seconds=8,
    warmup_seconds=2,
    single_concurrency=(1, 8, 64),
    batch_sizes=(1, 10, 100, 1000),
    batch_concurrency=8,
    floor_concurrency=(1, 8, 64),
    variant_concurrency=64,
    v2_concurrency=(8, 64),
    wrk_cpu=1,
    server_cpus=None,
    quiet_wait=10.0,
    retry_budget=120.0,
)
QUICK = dataclasses.replace(
    FULL,
    rounds=1,
    seconds=2,
    warmup_seconds=1,
    batch_sizes=(1, 1000),
    floor_concurrency=(64,),
    v2_concurrency=(64,),
    quiet_wait=0.0,
    retry_budget=0.0,
)
SERVERS = ("notes", "mlserver", "mlkube", "mlkube-nolog", "mlkube-auth", "mlkube-wide")
VARIANTS = ("mlkube-nolog", "mlkube-auth")
"""Feature-price variants of mlkube: one point each. mlkube-wide is a second model, measured in full."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s points, fewer points")
    parser.add_argument(
        "--only",
        default=",".join(SERVERS),
        help="comma list of servers; 'mlkube' also brings its variants unless --no-variants; "
        "mlkube-wide is the second model (a HistGradientBoosting Pipeline on a wider table) "
        f"(choices: {', '.join(SERVERS)})",
    )
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the feature-price variants of mlkube"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 3, quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per load point (default 8, quick 2)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per server start (default 2, quick 1)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="wait up to this many s before each server start for other work to calm down (10; quick 0)",
    )
    parser.add_argument(
        "--retry-budget",
        type=float,
        help="seconds the run may spend waiting for calm and re-measuring disturbed points (120; quick 0)",
    )
    parser.add_argument(
        "--pin",
        choices=("shared", "split"),
        default="shared",
        help="shared: wrk on core 1, servers unpinned (default); split: servers on core 0 only",
    )
    parser.add_argument("--out", type=Path, help="output folder (default bench/, quick: bench/out/quick)")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: rewrite RESULTS.md and the chart from a results.json"
    )
    parser.add_argument(
        "--work", type=Path, help="scratch folder for models and scripts (default bench/out/work)"
    )
    return parser.parse_args(argv)


def choose_config(args: argparse.Namespace) -> Config:
    config = QUICK if args.quick else FULL
    if args.rounds is not None:
        config = dataclasses.replace(config, rounds=max(1, args.rounds))
    if args.duration is not None:
        config = dataclasses.replace(config, seconds=max(1, args.duration))
    if args.warmup is not None:
        config = dataclasses.replace(config, warmup_seconds=max(1, args.warmup))
    if args.retry_budget is not None:
        config = dataclasses.replace(config, retry_budget=max(0.0, args.retry_budget))
    if args.quiet_wait is not None:
        config = dataclasses.replace(config, quiet_wait=max(0.0, args.quiet_wait))
    if args.pin == "split":
        config = dataclasses.replace(config, server_cpus="0")
    return config


def choose_peers(args: argparse.Namespace) -> list[Peer]:
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - set(SERVERS)
    if unknown:
        raise SystemExit(
            f"--only: unknown server(s) {', '.join(sorted(unknown))}; choose from {', '.join(SERVERS)}"
        )
    if "mlkube" in wanted and not args.no_variants:
        wanted |= set(VARIANTS)
    if args.no_variants:
        wanted -= set(VARIANTS)
    if "mlserver" in wanted:
        wanted.add("notes")  # the notes' train_model.py writes the forest MLServer serves
    return [peer for peer in all_peers() if peer.name in wanted]


def setup(peers: list[Peer], work: Path) -> None:
    log = work / "setup.log"
    for peer in peers:
        print(f"setting up {peer.name} (log: {log})", flush=True)
        peer.setup(work, log)


def measure(
    peers: list[Peer], config: Config, work: Path, wrk: str, after_round: Callable[[], None] = lambda: None
) -> list[Run]:
    scripts = work / "wrk"
    scripts.mkdir(parents=True, exist_ok=True)
    runs = []
    budget = RetryBudget(config.retry_budget)
    for round_no in range(1, config.rounds + 1):
        for peer in round_order(peers, round_no):
            variant = peer.name in VARIANTS
            run = run_server(peer, round_no, config, scripts, wrk, variant, budget)
            runs.append(run)
            _print_run(run, config.rounds)
        after_round()
    return runs


def round_order(peers: list[Peer], round_no: int) -> list[Peer]:
    """This round's order: the servers take turns going first, so none is always measured right after
    the same neighbour (one that has just freed 400 MiB, say); mlkube's variants stay right after it."""
    groups: list[list[Peer]] = []
    for peer in peers:
        if peer.name in VARIANTS and groups and groups[-1][0].name == "mlkube":
            groups[-1].append(peer)
        else:
            groups.append([peer])
    shift = (round_no - 1) % max(1, len(groups))
    return [peer for group in groups[shift:] + groups[:shift] for peer in group]


def _print_run(run: Run, rounds: int) -> None:
    print(
        f"round {run.round}/{rounds} {run.server}: others busy {run.busy_before:.2f} cores at start, "
        f"ready in {run.start_to_ready_s:.2f} s, "
        f"RSS {run.rss_mib:.0f} MiB, PSS {run.pss_mib:.0f} MiB in {run.processes} processes, "
        f"exit {run.exit_code} after {run.stop_s:.1f} s",
        flush=True,
    )
    for s in run.samples:
        again = " (re-measured)" if s.retried else ""
        shares = f" workers {'/'.join(f'{x * 100:.0f}%' for x in s.worker_shares)}" if s.worker_shares else ""
        if len(s.worker_connections) > 1:
            shares += f" connections {'/'.join(map(str, s.worker_connections))}"
        print(
            f"  {s.kind:6} c={s.concurrency:<3} rows={s.rows:<4} {s.rps:10,.0f} req/s "
            f"{s.rows_per_s:12,.0f} rows/s "
            f"p50 {s.p50_ms:7.2f} p99 {s.p99_ms:7.2f} ms  CPU {s.cpu_us_per_request:6.0f} µs/req  "
            f"errors {s.non_2xx + s.socket_errors}  cores: server {s.server_cores:.2f} wrk {s.wrk_cores:.2f} "
            f"others {s.other_cores:.2f}{again}{shares}",
            flush=True,
        )


def write_outputs(out: Path, raw: dict[str, Any]) -> Summary:
    """RESULTS.md, results.png and results.json from the raw record of a run."""
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary([_run_from(run) for run in raw["runs"]], _config_from(raw["config"]))
    text = markdown(
        summary,
        raw["labels"],
        raw["versions"],
        raw["machine"],
        raw["command"],
        raw["in_process_costs"],
        raw.get("stage_costs", {}),
        raw["elapsed_s"],
    )
    (out / "RESULTS.md").write_text(text)
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    write_chart(summary, out / "results.png")
    print(
        f"\nwrote {_shown(out / 'RESULTS.md')}, {_shown(out / 'results.png')}, {_shown(out / 'results.json')}"
    )
    return summary


def _config_from(data: dict[str, Any]) -> Config:
    values: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}
    return Config(**values)


def _run_from(data: dict[str, Any]) -> Run:
    return Run(**{**data, "samples": [Sample(**sample) for sample in data["samples"]]})


def measure_all(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    wrk = require_wrk()
    config = choose_config(args)
    peers = choose_peers(args)
    work = args.work or BENCH_DIR / "out" / "work"
    work.mkdir(parents=True, exist_ok=True)
    setup(peers, work)
    mlkube = next((peer for peer in peers if isinstance(peer, MlkubePeer) and peer.name == "mlkube"), None)
    stage_runs: list[stages.StageCosts] = []
    feature_runs: list[dict[str, float | str]] = []

    def profile_in_process() -> None:  # once per round, so a busy moment of the machine is not all we see
        if mlkube is not None:
            stage_runs.append(stages.stage_costs(mlkube.models))
            feature_runs.append(features.in_process_costs())

    runs = measure(peers, config, work, wrk, profile_in_process)
    return {
        "command": "python bench/run.py " + shlex.join(argv) if argv else "python bench/run.py",
        "config": dataclasses.asdict(config),
        "machine": machine(),
        "labels": {peer.name: peer.label for peer in peers},
        "versions": {peer.name: peer.versions for peer in peers if not peer.name.startswith("mlkube-")},
        "in_process_costs": features.fastest(feature_runs),
        "stage_costs": stages.fastest(stage_runs),
        "elapsed_s": time.perf_counter() - started,
        "runs": [dataclasses.asdict(run) for run in runs],
    }


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    out = args.out or (BENCH_DIR / "out" / "quick" if args.quick else BENCH_DIR)
    raw = json.loads(args.from_json.read_text()) if args.from_json else measure_all(args, argv)
    summary = write_outputs(out, raw)
    print(f"took {(time.perf_counter() - started) / 60:.1f} min\n")
    for line in ratio_lines(summary):
        print(line)
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
