"""results.png: throughput and p99 against concurrency per server, and rows/s against batch size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.measure import Sample
from harness.report import MLKUBE, MLSERVER, NOTES, Stat, Summary

_COLOURS = {NOTES: "tab:red", MLSERVER: "tab:orange", MLKUBE: "tab:blue"}
_NAMES = {NOTES: "the notes' app", MLSERVER: "MLServer 1.7.1", MLKUBE: "mlkube (2 workers)"}


def _series(
    summary: Summary,
    server: str,
    kind: str,
    xs: tuple[int, ...],
    value: Callable[[Sample], float],
    batch: bool,
) -> tuple[list[int], list[float], list[list[float]]]:
    """x values, medians, and [below, above] error-bar lengths to the lowest and highest round."""
    found: list[tuple[int, Stat]] = []
    for x in xs:
        concurrency = summary.config.batch_concurrency if batch else x
        rows = x if batch else (0 if kind == "floor" else 1)
        stat = summary.stat(server, kind, concurrency, rows, value)
        if stat is not None:
            found.append((x, stat))
    medians = [stat.median for _, stat in found]
    spread = [[stat.median - stat.low for _, stat in found], [stat.high - stat.median for _, stat in found]]
    return [x for x, _ in found], medians, spread


def write_chart(summary: Summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, p99, batches) = plt.subplots(1, 3, figsize=(16, 5))
    concurrency = summary.config.single_concurrency
    for server in (NOTES, MLSERVER, MLKUBE):
        style = {"color": _COLOURS[server], "marker": "o", "capsize": 3, "label": _NAMES[server]}
        xs, ys, spread = _series(summary, server, "single", concurrency, lambda s: s.rps, batch=False)
        if xs:
            throughput.errorbar(xs, ys, yerr=spread, **style)
        xs, ys, spread = _series(summary, server, "single", concurrency, lambda s: s.p99_ms, batch=False)
        if xs:
            p99.errorbar(xs, ys, yerr=spread, **style)
        sizes = summary.config.batch_sizes
        xs, ys, spread = _series(summary, server, "batch", sizes, lambda s: s.rows_per_s, batch=True)
        if xs:
            batches.errorbar(xs, ys, yerr=spread, **style)
    floors = summary.config.floor_concurrency
    xs, ys, spread = _series(summary, MLKUBE, "floor", floors, lambda s: s.rps, batch=False)
    if xs:
        throughput.errorbar(
            xs,
            ys,
            yerr=spread,
            color=_COLOURS[MLKUBE],
            linestyle="--",
            marker="x",
            capsize=3,
            label="mlkube GET /health (floor)",
        )
    _axes(throughput, "single-row requests per second", "connections (c)", "req/s", concurrency)
    _axes(p99, "p99 latency, single row", "connections (c)", "ms", concurrency)
    _axes(
        batches,
        f"rows per second by batch size (c={summary.config.batch_concurrency})",
        "rows per request",
        "rows/s",
        summary.config.batch_sizes,
    )
    figure.suptitle("median of rounds; bars: lowest and highest round")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _axes(axes: object, title: str, xlabel: str, ylabel: str, ticks: tuple[int, ...]) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    axes.set_xscale("log")
    axes.set_xticks(list(ticks), [str(tick) for tick in ticks])
    axes.minorticks_off()
    axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
