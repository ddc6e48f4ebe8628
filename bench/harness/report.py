"""From samples to answers: medians with their spread across rounds, the issue's targets, the ratio lines."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.measure import Config, Run, Sample
from harness.peers import MLKUBE_WORKERS

NOTES, MLSERVER, MLKUBE = "notes", "mlserver", "mlkube"
NOLOG, AUTH = "mlkube-nolog", "mlkube-auth"
WIDE = "mlkube-wide"  # the second model (a wider table, named features), not a variant


@dataclass(frozen=True)
class Stat:
    """Median of the rounds, with the lowest and highest round."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


class Summary:
    def __init__(self, runs: list[Run], config: Config) -> None:
        self.runs = runs
        self.config = config

    def servers(self) -> list[str]:
        return list(dict.fromkeys(run.server for run in self.runs))

    def samples(self, server: str, kind: str, concurrency: int, rows: int) -> list[Sample]:
        return [
            sample
            for run in self.runs
            if run.server == server
            for sample in run.samples
            if (sample.kind, sample.concurrency, sample.rows) == (kind, concurrency, rows)
        ]

    def stat(
        self, server: str, kind: str, concurrency: int, rows: int, value: Callable[[Sample], float]
    ) -> Stat | None:
        return Stat.of([value(sample) for sample in self.samples(server, kind, concurrency, rows)])

    def single(self, server: str, concurrency: int, value: Callable[[Sample], float]) -> Stat | None:
        return self.stat(server, "single", concurrency, 1, value)

    def run_stat(self, server: str, value: Callable[[Run], float]) -> Stat | None:
        return Stat.of([value(run) for run in self.runs if run.server == server])

    def ratio(self, server: str, other: str, concurrency: int) -> float | None:
        mine, theirs = self.single(server, concurrency, rps), self.single(other, concurrency, rps)
        if mine is None or theirs is None or theirs.median <= 0:
            return None
        return mine.median / theirs.median

    def v2_ratio(self, concurrency: int) -> float | None:
        """mlkube's V2 route against MLServer's, the very same request body."""
        mine = self.stat(MLKUBE, "v2", concurrency, 1, rps)
        theirs = self.single(MLSERVER, concurrency, rps)
        if mine is None or theirs is None or theirs.median <= 0:
            return None
        return mine.median / theirs.median

    def floor_ratio(self, concurrency: int) -> float | None:
        predict = self.single(MLKUBE, concurrency, rps)
        floor = self.stat(MLKUBE, "floor", concurrency, 0, rps)
        if predict is None or floor is None or floor.median <= 0:
            return None
        return predict.median / floor.median

    def min_worker_share(self, concurrency: int = 8) -> tuple[float, list[list[float]]] | None:
        """The smallest share any of mlkube's workers had in any round (0 when a worker sat idle)."""
        shares = [sample.worker_shares for sample in self.samples(MLKUBE, "single", concurrency, 1)]
        if not shares:
            return None
        lowest = min(share[MLKUBE_WORKERS - 1] if len(share) >= MLKUBE_WORKERS else 0.0 for share in shares)
        return lowest, shares

    def total_errors(self, server: str) -> int:
        return sum(
            sample.non_2xx + sample.socket_errors
            for run in self.runs
            if run.server == server
            for sample in run.samples
        )

    def cpu_difference(self, server: str, baseline: str, concurrency: int) -> float | None:
        with_feature = self.single(server, concurrency, cpu_us)
        without = self.single(baseline, concurrency, cpu_us)
        if with_feature is None or without is None:
            return None
        return with_feature.median - without.median


def rps(sample: Sample) -> float:
    return sample.rps


def rows_per_s(sample: Sample) -> float:
    return sample.rows_per_s


def p50(sample: Sample) -> float:
    return sample.p50_ms


def p99(sample: Sample) -> float:
    return sample.p99_ms


def cpu_us(sample: Sample) -> float:
    return sample.cpu_us_per_request


def fastest_per_key(measured: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the lowest value of several in-process timings: other work on the machine only ever slows
    a timing down, so the minimum is the closest to the code's own cost."""
    best: dict[str, float] = {}
    for timings in measured:
        for key, value in timings.items():
            best[key] = min(value, best.get(key, value))
    return best


def main_thread_us(sample: Sample) -> float:
    return sample.main_thread_us_per_request


def other_threads_us(sample: Sample) -> float:
    return sample.cpu_us_per_request - sample.main_thread_us_per_request


def errors(sample: Sample) -> float:
    return sample.non_2xx + sample.socket_errors


def lines_per_request(sample: Sample) -> float:
    return sample.output_lines_per_request


# --- formatting ---------------------------------------------------------------------------------------


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def show(stat: Stat | None, unit: str = "") -> str:
    if stat is None:
        return "—"
    text = number(stat.median) + unit
    if stat.count > 1:
        text += f" [{number(stat.low)}-{number(stat.high)}]"
    return text


# --- targets ------------------------------------------------------------------------------------------


def _median(stat: Stat | None) -> float | None:
    return None if stat is None else stat.median


def _target(name: str, goal: str, value: float | None, shown: str, ok: Callable[[float], bool]) -> Target:
    if value is None:
        return Target(name, goal, "not measured", None)
    return Target(name, goal, shown, ok(value))


def targets(summary: Summary) -> list[Target]:
    """The issue's targets, each judged on the medians of this run."""
    notes, mlserver = summary.ratio(MLKUBE, NOTES, 64), summary.ratio(MLKUBE, MLSERVER, 64)
    p99_64, p99_8 = summary.single(MLKUBE, 64, p99), summary.single(MLKUBE, 8, p99)
    floor = summary.floor_ratio(64)
    batch = summary.stat(MLKUBE, "batch", summary.config.batch_concurrency, 1000, rows_per_s)
    pss = summary.run_stat(MLKUBE, lambda run: run.pss_mib)
    ready = summary.run_stat(MLKUBE, lambda run: run.start_to_ready_s)
    balance = summary.min_worker_share(8)
    lowest = None if balance is None else balance[0]
    of_rounds = "" if balance is None else f" (lowest of {len(balance[1])} rounds)"
    return [
        _target("/predict c=64 vs the notes' app", "≥ 80x", notes, f"{notes or 0:.0f}x", lambda v: v >= 80),
        _target("/predict c=64 vs MLServer", "≥ 40x", mlserver, f"{mlserver or 0:.0f}x", lambda v: v >= 40),
        _target("p99 at c=64", "≤ 10 ms", _median(p99_64), show(p99_64, " ms"), lambda v: v <= 10),
        _target("p99 at c=8", "≤ 2 ms", _median(p99_8), show(p99_8, " ms"), lambda v: v <= 2),
        _target(
            "/predict vs own /health, c=64", "≥ 60%", floor, f"{(floor or 0) * 100:.0f}%", lambda v: v >= 0.6
        ),
        _target("1,000-row batches", "≥ 1,000,000 rows/s", _median(batch), show(batch), lambda v: v >= 1e6),
        _target("PSS of all processes", "≤ 128 MiB", _median(pss), show(pss, " MiB"), lambda v: v <= 128),
        _target("start → ready", "≤ 0.5 s", _median(ready), show(ready, " s"), lambda v: v <= 0.5),
        _target(
            "worker balance at c=8",
            "each worker ≥ 1/3",
            lowest,
            f"{(lowest or 0) * 100:.0f}%{of_rounds}",
            lambda v: v >= 1 / 3,
        ),
    ]


def ratio_lines(summary: Summary) -> list[str]:
    lines = []
    for concurrency in summary.config.single_concurrency:
        parts = []
        for other, label in ((NOTES, "the notes' app"), (MLSERVER, "MLServer")):
            value = summary.ratio(MLKUBE, other, concurrency)
            if value is not None:
                parts.append(f"{value:.1f}x {label}")
        if parts:
            lines.append(f"mlkube /predict at c={concurrency}: " + ", ".join(parts))
    for concurrency in summary.config.v2_concurrency:
        v2 = summary.v2_ratio(concurrency)
        if v2 is not None:
            lines.append(f"mlkube V2 infer at c={concurrency}: {v2:.1f}x MLServer on the same request")
    floor = summary.floor_ratio(64)
    if floor is not None:
        lines.append(f"mlkube /predict at c=64 is {floor * 100:.0f}% of its own /health floor")
    for target in targets(summary):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
        lines.append(f"target {target.name} {target.goal}: {target.measured} -> {verdict}")
    return lines
