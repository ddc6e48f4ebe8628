"""RESULTS.md: the tables of the issue, the targets, how it was measured, the machine and the versions."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.measure import Config
from harness.report import (
    AUTH,
    MLKUBE,
    MLSERVER,
    NOLOG,
    NOTES,
    WIDE,
    Summary,
    cpu_us,
    errors,
    lines_per_request,
    main_thread_us,
    number,
    other_threads_us,
    p50,
    p99,
    rows_per_s,
    rps,
    show,
    targets,
)

_DASH = "—"


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_text = (wrk.stdout or wrk.stderr).strip()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": platform.release(),
        "memory": _mem_total(),
        "python": platform.python_version(),
        "wrk": wrk_text.splitlines()[0] if wrk_text else "?",
        "load average (1, 5, 15 min) at the end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _mem_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value is not None else _DASH


def _percent(value: float | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else _DASH


def markdown(
    summary: Summary,
    labels: dict[str, str],
    versions: dict[str, dict[str, str]],
    host: dict[str, str],
    command: str,
    in_process: dict[str, float | str],
    stage_costs: dict[str, dict[str, float] | str],
    elapsed_s: float,
) -> str:
    config = summary.config
    rounds = max((run.round for run in summary.runs), default=0)
    out = [
        "# Benchmark: mlkube against the notes' app and MLServer",
        "",
        f"Written by `{command}` in {elapsed_s / 60:.1f} min. Every number is the median of {rounds} "
        f"round(s), with [lowest-highest round] beside it; each point is a {config.seconds} s closed-loop "
        "wrk run. Ratios compare medians measured in this one run on this one machine.",
        "",
        "![throughput and p99 against concurrency](results.png)",
        "",
        *_noise(summary),
    ]
    out += _single_section(summary, labels)
    out += _v2_section(summary)
    out += _batch_section(summary, labels)
    out += _second_model_section(summary)
    out += _floor_section(summary)
    out += _feature_section(summary, in_process)
    out += _stage_section(stage_costs, summary)
    out += _balance_section(summary)
    out += ["", "## Issue 6 targets", ""]
    verdicts = {True: "yes", False: "**no**", None: _DASH}
    out += _table(
        ["target", "goal", "measured", "met?"],
        [[t.name, t.goal, t.measured, verdicts[t.met]] for t in targets(summary)],
    )
    out += _missed_section(summary, stage_costs)
    out += ["", "## How it was measured", "", *_method(config), ""]
    out += ["## Machine and versions", ""]
    out += [f"- {key}: {value}" for key, value in host.items()]
    for server, found in versions.items():
        out.append(f"- {server}: " + ", ".join(f"{name} {version}" for name, version in found.items()))
    out += ["", "## Answers checked before each load (one per server)", ""]
    seen: dict[str, str] = {}
    for run in summary.runs:
        seen.setdefault(run.server, run.answer)
    out += [f"- {server}: `{answer[:200]}`" for server, answer in seen.items()]
    return "\n".join(out) + "\n"


def _missed_section(summary: Summary, stage_costs: dict[str, dict[str, float] | str]) -> list[str]:
    """For each target this run missed, what the profile above says it costs."""
    single, batch = stage_costs.get("single"), stage_costs.get("batch_1000")
    stages = (single if isinstance(single, dict) else {}, batch if isinstance(batch, dict) else {})
    reasons = [
        reason
        for target in targets(summary)
        if target.met is False and (reason := _why_missed(target.name, summary, *stages))
    ]
    if not reasons:
        return []
    return ["", "### Why the missed targets are missed (from this run's profile)", "", *reasons]


def _why_missed(name: str, summary: Summary, single: dict[str, float], batch: dict[str, float]) -> str:
    if name.startswith("p99 at c="):
        c = int(name.removeprefix("p99 at c="))
        server = summary.single(MLKUBE, c, lambda sample: sample.server_cores)
        load = summary.single(MLKUBE, c, lambda sample: sample.wrk_cores)
        cost = summary.single(MLKUBE, c, cpu_us)
        if server is None or load is None or cost is None:
            return ""
        return (
            f"- {name}: the server used {number(server.median)} cores and wrk {number(load.median)} of the "
            f"machine's 2, so the workers are CPU-bound at c={c}: a request waits for the ones ahead of it "
            "in its worker and for scheduler time slices shared by 2 workers, granian's threads and wrk. "
            f"The lever is the CPU a request costs ({number(cost.median)} µs at c={c}); a pod with cores of "
            "its own, without the load generator beside it, has a shorter tail."
        )
    if name.startswith("/predict vs own /health") and {"whole_joined_16", "health_joined_16"} <= set(single):
        predict, health = summary.single(MLKUBE, 64, cpu_us), summary.stat(MLKUBE, "floor", 64, 0, cpu_us)
        if predict is None or health is None:
            return ""
        return (
            f"- {name}: `/predict` costs {number(predict.median)} µs of CPU per request and `/health` "
            f"{number(health.median)} µs. The model is not the difference: micro-batched it takes "
            f"{number(single['model_joined_16'])} µs a row. The app's own Python is: "
            f"{number(single['whole_joined_16'])} against {number(single['health_joined_16'])} µs "
            "per request in process (reading and decoding the body, checking the row, awaiting the "
            "batcher, building the answer, counting the class), plus granian's Python-side work for the "
            "awaited body (see the two sections above)."
        )
    if name.startswith("1,000-row") and {"decode", "rows_to_array", "model", "answer"} <= set(batch):
        cost = summary.stat(MLKUBE, "batch", summary.config.batch_concurrency, 1000, cpu_us)
        json_us = batch["decode"] + batch["answer"]
        return (
            f"- {name}: a 1,000-row request costs {show(cost)} µs of server CPU. In process, decoding its "
            f"4,000 JSON numbers takes {number(batch['decode'])} µs, checking them into a float32 array "
            f"{number(batch['rows_to_array'])}, the model {number(batch['model'])} and the 1,000 answers "
            f"{number(batch['answer'])}: JSON in and out ({number(json_us)} µs) costs more than the model."
        )
    if name.startswith("start"):
        ready = summary.run_stat(MLKUBE, lambda run: run.start_to_ready_s)
        if ready is None:
            return ""
        return (
            f"- {name}: the fastest round was ready in {number(ready.low)} s. Before forking, the server "
            "imports numpy, ONNX Runtime, asyncio, prometheus_client and granian (about 0.25 s of "
            "`python -X importtime` on a calm machine); each worker then opens its session and scores a "
            "warm-up row. The spread between rounds is the shared machine."
        )
    return ""


def _noise(summary: Summary) -> list[str]:
    """How much CPU other work took during the points: on a shared machine this skews the numbers."""
    samples = [sample for run in summary.runs for sample in run.samples]
    if not samples:
        return []
    others = sorted(sample.other_cores for sample in samples)
    steal = max(sample.steal_cores for sample in samples)
    busiest = max(samples, key=lambda sample: sample.other_cores)
    line = (
        f"Other work on the machine during the load points (CPU busy with neither the server nor wrk): "
        f"median {others[len(others) // 2]:.2f} cores, at most {busiest.other_cores:.2f} "
        f"({busiest.server} {busiest.kind} c={busiest.concurrency}, round {busiest.round}); steal at most "
        f"{steal:.2f} cores."
    )
    limit = summary.config.busy_cores
    disturbed = sum(1 for sample in samples if sample.other_cores > limit)
    retried = sum(1 for sample in samples if sample.retried)
    line += f" {retried} of {len(samples)} points were measured again after waiting for calm; "
    line += f"{disturbed} still shared the machine with over {limit:g} cores of other work."
    if disturbed:
        line += " Such points are slower than on a quiet machine; the [lowest-highest] spread shows it."
    return [line, ""]


def _single_section(summary: Summary, labels: dict[str, str]) -> list[str]:
    concurrencies = summary.config.single_concurrency
    top = max(concurrencies)
    header = ["server", *[f"c={c} req/s" for c in concurrencies]]
    header += [f"c={c} p50 / p99 ms" for c in concurrencies if c > 1]
    header += [f"CPU µs/req (c={top})", "errors", "RSS / PSS MiB", "start → ready s"]
    rows = []
    for server in (NOTES, MLSERVER, MLKUBE):
        if server not in summary.servers():
            continue
        row = [labels[server], *[show(summary.single(server, c, rps)) for c in concurrencies]]
        for c in concurrencies:
            if c > 1:
                median = summary.single(server, c, p50)
                row.append(
                    f"{number(median.median) if median else _DASH} / {show(summary.single(server, c, p99))}"
                )
        rss = summary.run_stat(server, lambda run: run.rss_mib)
        pss = summary.run_stat(server, lambda run: run.pss_mib)
        row += [
            show(summary.single(server, top, cpu_us)),
            str(summary.total_errors(server)),
            f"{number(rss.median) if rss else _DASH} / {show(pss)}",
            show(summary.run_stat(server, lambda run: run.start_to_ready_s)),
        ]
        rows.append(row)
    ratio_rows = [
        [f"c={c}", _ratio(summary.ratio(MLKUBE, NOTES, c)), _ratio(summary.ratio(MLKUBE, MLSERVER, c))]
        for c in concurrencies
    ]
    return [
        '## Single-row requests (the notes\' body `{"features": [5.1, 3.5, 1.4, 0.2]}`)',
        "",
        *_table(header, rows),
        "",
        "Ratios of mlkube's median req/s to the peers' (same run):",
        "",
        *_table(["concurrency", "mlkube / the notes' app", "mlkube / MLServer"], ratio_rows),
    ]


def _v2_section(summary: Summary) -> list[str]:
    rows = [
        [
            f"c={c}",
            show(summary.stat(MLKUBE, "v2", c, 1, rps)),
            show(summary.stat(MLKUBE, "v2", c, 1, p99)),
            show(summary.single(MLSERVER, c, rps)),
            show(summary.single(MLSERVER, c, p99)),
            _ratio(summary.v2_ratio(c)),
        ]
        for c in summary.config.v2_concurrency
        if summary.samples(MLKUBE, "v2", c, 1)
    ]
    if not rows:
        return []
    header = ["concurrency", "mlkube V2 req/s", "mlkube p99 ms", "MLServer req/s", "MLServer p99 ms", "ratio"]
    return [
        "",
        "## The same protocol: V2 inference, one row, `predict` + `predict_proba`",
        "",
        "mlkube's `/v2/models/iris/infer` answers the very body MLServer gets above (MLServer's numbers "
        "are its single-row column).",
        "",
        *_table(header, rows),
    ]


def _batch_section(summary: Summary, labels: dict[str, str]) -> list[str]:
    config = summary.config
    c = config.batch_concurrency
    rows = []
    for server in (MLSERVER, MLKUBE):
        label = labels.get(server, server)
        for size in config.batch_sizes:
            samples = summary.samples(server, "batch", c, size)
            if not samples:
                continue
            rows.append(
                [
                    label,
                    str(size),
                    *[
                        show(summary.stat(server, "batch", c, size, get))
                        for get in (rps, rows_per_s, p50, p99, cpu_us)
                    ],
                    str(sum(int(errors(sample)) for sample in samples)),
                ]
            )
            label = ""
    if not rows:
        return []
    header = ["server", "rows/request", "req/s", "rows/s", "p50 ms", "p99 ms", "CPU µs/req", "errors"]
    return [
        "",
        f'## Batches (c={c}; mlkube `{{"instances": [...]}}`, MLServer V2 `[n, 4]` FP64)',
        "",
        "The notes' app has no batch API. MLServer answers `predict` and `predict_proba` for every row.",
        "",
        *_table(header, rows),
    ]


def _second_model_section(summary: Summary) -> list[str]:
    """The second model (mlkube-wide) beside the Iris forest, measured in the same run."""
    config = summary.config
    rows = []
    for server, model in (
        (MLKUBE, "Iris forest, 4 numbers (list)"),
        (WIDE, "HistGradientBoosting, 22 named"),
    ):
        if server not in summary.servers():
            continue
        points = [("single", c, 1) for c in config.single_concurrency]
        points += [("batch", config.batch_concurrency, size) for size in config.batch_sizes]
        for kind, c, size in points:
            if summary.samples(server, kind, c, size):
                rows.append(
                    [
                        model,
                        f"{kind} c={c}" + (f", {size} rows" if kind == "batch" else ""),
                        *[
                            show(summary.stat(server, kind, c, size, get))
                            for get in (rps, rows_per_s, p99, cpu_us)
                        ],
                    ]
                )
    if WIDE not in summary.servers():
        return []
    header = ["model", "point", "req/s", "rows/s", "p99 ms", "CPU µs/req"]
    return [
        "",
        "## A second model: HistGradientBoosting on a wider table",
        "",
        "mlkube alone (`mlkube-wide`): a Pipeline (imputation, one-hot encoding, HistGradientBoosting, 50 "
        "iterations) trained by `mlkube train --data` on a 22-column table with 2 text columns "
        "(bench/harness/wide.py), one ONNX input per column, asked by feature name "
        '(`{"features": {"x01": ..., "region": "east", ...}}`), so every value passes the input schema\'s '
        "checks. The notes' app and MLServer's sklearn runtime are not run on it: neither serves named text "
        "columns without code of its own. The Iris rows are the same run's.",
        "",
        *_table(header, rows),
    ]


def _floor_section(summary: Summary) -> list[str]:
    rows = [
        [
            f"c={c}",
            show(summary.stat(MLKUBE, "floor", c, 0, rps)),
            show(summary.stat(MLKUBE, "floor", c, 0, p99)),
            show(summary.single(MLKUBE, c, rps)),
            _percent(summary.floor_ratio(c)),
        ]
        for c in summary.config.floor_concurrency
        if summary.samples(MLKUBE, "floor", c, 0)
    ]
    if not rows:
        return []
    header = ["concurrency", "/health req/s", "/health p99 ms", "/predict req/s", "/predict ÷ /health"]
    return [
        "",
        "## mlkube against its own floor",
        "",
        "`GET /health` goes through the same server, routing, request id, metrics and access log as "
        "`/predict`, without a body, JSON parsing or the model.",
        "",
        *_table(header, rows),
        *_thread_split(summary),
    ]


def _thread_split(summary: Summary) -> list[str]:
    c = max(summary.config.floor_concurrency)
    routes = (("GET /health", summary.stat(MLKUBE, "floor", c, 0, cpu_us), "floor", 0),
              ("POST /predict, one row", summary.single(MLKUBE, c, cpu_us), "single", 1))  # fmt: skip
    rows = [
        [
            route,
            show(total),
            show(summary.stat(MLKUBE, kind, c, rows, main_thread_us)),
            show(summary.stat(MLKUBE, kind, c, rows, other_threads_us)),
        ]
        for route, total, kind, rows in routes
        if total is not None
    ]
    if len(rows) < 2 or not any(
        sample.main_thread_us_per_request for sample in summary.samples(MLKUBE, "floor", c, 0)
    ):
        return []
    header = [
        f"CPU µs per request, c={c}",
        "all processes",
        "Python thread (event loop + app)",
        "granian threads (HTTP, sockets)",
    ]
    return [
        "",
        "Where the server's CPU goes (each process's main thread runs Python; granian's other threads parse "
        "HTTP and move bytes in Rust). The difference between the two rows is what a prediction adds; the "
        "first row is the price of any request through granian and the event loop.",
        "",
        *_table(header, rows),
    ]


def _feature_section(summary: Summary, in_process: dict[str, float | str]) -> list[str]:
    c = summary.config.variant_concurrency
    variants = ((MLKUBE, "all on (production defaults)"), (NOLOG, "access log off"), (AUTH, "API key on"))
    rows = [
        [feature, *[show(summary.single(server, c, get)) for get in (rps, cpu_us, lines_per_request)]]
        for server, feature in variants
        if summary.single(server, c, rps) is not None
    ]
    if not rows:
        return []
    log_cost = summary.cpu_difference(MLKUBE, NOLOG, c)
    auth_cost = summary.cpu_difference(AUTH, MLKUBE, c)
    metrics_us, log_us = in_process.get("metrics_us"), in_process.get("access_log_us")

    def micro(value: float | str | None) -> str:
        if isinstance(value, float):
            return number(value) + " µs"
        return str(in_process.get("error", _DASH))

    return [
        "",
        "## What each feature costs per request (mlkube, single row)",
        "",
        *_table([f"variant (c={c})", "req/s", "server CPU µs/req", "log lines/req"], rows),
        "",
        f"- access log: {micro(log_cost)} of server CPU per request end to end (defaults minus "
        f"LOG_LEVEL=WARNING); in process, formatting and writing one line to /dev/null: {micro(log_us)}.",
        f"- API key check: {micro(auth_cost)} per request end to end (API_KEY set minus defaults; includes "
        "reading the extra header).",
        "- metrics have no off switch, so they are timed in process: the app's `observe_request` + "
        f"`observe_scores` for one row, with the periodic flush into the multiprocess files: "
        f"{micro(metrics_us)}.",
        "- CPU per request is the CPU time of the whole process tree during the run divided by the "
        "requests answered; differences of a few µs are within the noise of a shared 2-core machine.",
    ]


_STAGES = (
    ("decode", "decode the JSON body (msgspec, typed)"),
    ("rows_to_array", "check widths and float32 range, make the float32 array"),
    ("model", "ONNX Runtime call, this request alone"),
    ("model_joined_16", "ONNX Runtime, per row when micro-batching joins 16 requests"),
    ("answer", "round the confidences, the notes' keys, encode JSON"),
    ("metrics", "count the request, its latency, class and confidence"),
    ("access_log", "one JSON access-log line"),
    ("whole", "the whole request through `App.__rsgi__`, alone in its loop turn (no granian)"),
    ("whole_joined_16", "the same, per request, 16 requests in one loop turn (micro-batched, as under load)"),
    ("health_joined_16", "`GET /health` through `App.__rsgi__`, per request, 16 in one loop turn"),
)


def _stage_section(stage_costs: dict[str, dict[str, float] | str], summary: Summary) -> list[str]:
    single, batch = stage_costs.get("single"), stage_costs.get("batch_1000")
    if not isinstance(single, dict) or not isinstance(batch, dict):
        error = stage_costs.get("error")
        return (
            ["", "## Where a request's time goes in the app", "", f"Not measured: {error}."] if error else []
        )

    def cell(found: dict[str, float], key: str) -> str:
        return number(found[key]) if key in found else _DASH

    rows = [[label, f"`{key}`", cell(single, key), cell(batch, key)] for key, label in _STAGES]
    return [
        "",
        "## Where a request's time goes in the app",
        "",
        "Each stage of `/predict` timed alone in process (`bench/harness/stages.py`: the app's own functions "
        "on the served bundle, best of 5, measured after every round; the fastest round is shown, since "
        "other work on the machine only ever slows a stage down). granian's HTTP work and the event loop "
        "come on top: see the CPU split by thread above.",
        "",
        *_table(["stage", "key", "µs, one row", "µs, 1,000 rows"], rows),
        *_app_against_thread(single, summary),
    ]


def _app_against_thread(single: dict[str, float], summary: Summary) -> list[str]:
    """The app's own µs per request under load beside what the Python thread spent end to end."""
    c = max(summary.config.floor_concurrency)
    predict_stat = summary.single(MLKUBE, c, main_thread_us)
    health_stat = summary.stat(MLKUBE, "floor", c, 0, main_thread_us)
    if predict_stat is None or health_stat is None:
        return []
    predict, health = predict_stat.median, health_stat.median
    if not predict or not health or "whole_joined_16" not in single or "health_joined_16" not in single:
        return []
    app_predict, app_health = single["whole_joined_16"], single["health_joined_16"]
    if app_predict >= predict or app_health >= health:
        return [
            "",
            f"Under load the app's own code costs {number(app_predict)} µs for a one-row `/predict` and "
            f"{number(app_health)} µs for `/health` in process, as much as or more than the workers' "
            f"Python thread spent end to end at c={c} ({number(predict)} and {number(health)} µs): the "
            "machine was busier during the in-process timing than during the load, so this run cannot "
            "split the Python thread's time between the app and granian's glue.",
        ]
    return [
        "",
        f"Under load the app's own code costs {number(app_predict)} µs for a one-row `/predict` and "
        f"{number(app_health)} µs for `/health` (16 requests per loop turn, in process); end to end at "
        f"c={c} the workers' Python thread spent {number(predict)} and {number(health)} µs. The rest, "
        f"{number(predict - app_predict)} and {number(health - app_health)} µs, is the event loop and "
        "granian's Python-side work per request (the task it creates, the awaited body, handing the answer "
        "back), which `/predict` pays more of: it awaits its body and the micro-batcher.",
    ]


def _balance_section(summary: Summary) -> list[str]:
    samples = summary.samples(MLKUBE, "single", 8, 1)
    if not samples:
        return []
    rows = [
        [
            str(s.round),
            " / ".join(f"{share * 100:.0f}%" for share in s.worker_shares),
            " / ".join(str(count) for count in s.worker_connections) or _DASH,
            number(s.rps),
            f"{s.other_cores:.2f}",
        ]
        for s in samples
    ]
    return [
        "",
        "## Worker balance (mlkube, 2 workers, c=8, one line per round)",
        "",
        "Each worker's share of the CPU time the worker processes spent during the c=8 run (the same "
        "work per request, so CPU time is proportional to requests served), and how many of wrk's 8 "
        "keep-alive connections each worker held halfway through (from /proc: socket inodes of each "
        "process against the established connections on the port). Every round starts a fresh server, "
        "so the assignment of connections to workers is drawn anew; the spread is shown, not averaged "
        "away. Other work on the machine can also starve one worker.",
        "",
        *_table(["round", "worker shares", "connections per worker", "req/s", "other work, cores"], rows),
    ]


def _method(config: Config) -> list[str]:
    pin = (
        f"wrk runs one thread pinned to core {config.wrk_cpu} (`taskset -c {config.wrk_cpu} wrk -t1`)"
        if config.wrk_cpu is not None
        else "wrk runs unpinned"
    )
    servers = f"servers pinned to CPUs {config.server_cpus}" if config.server_cpus else "servers unpinned"
    return [
        f"- Load: Debian's wrk, closed loop, keep-alive connections; {pin}, {servers}. This is the setup "
        "of the issue's reference numbers (wrk pinned to one core). On 2 cores it is the fair choice for "
        "servers meant to run 2 workers: pinning the servers to the other core would give 2 workers one "
        "core and measure something else. The price: wrk takes part of core 1 from the server, more at "
        "higher request rates, so absolute numbers are below what 2 free cores would give; every peer "
        "meets the same setup, which is what the ratios need. `--pin split` puts the servers on core 0 "
        "alone, for comparison.",
        f"- Points: single row at c = {', '.join(map(str, config.single_concurrency))}; batches of "
        f"{', '.join(map(str, config.batch_sizes))} rows at c = {config.batch_concurrency} (mlkube and "
        "MLServer); mlkube's `GET /health` as its floor at c = "
        f"{', '.join(map(str, config.floor_concurrency))}; feature variants at "
        f"c = {config.variant_concurrency}.",
        f"- Rounds: {config.rounds}. Each round starts every server afresh, one after another (round 1: "
        "the notes' app, MLServer, mlkube and its variants; each later round starts one server further "
        "on, so no server is always measured right after the same neighbour), checks one answer, warms up "
        f"{config.warmup_seconds} s at c=8, runs each point for {config.seconds} s, reads memory, and "
        "stops the server with SIGTERM.",
        f"- The machine is shared with other work: before each server start the harness waits up to "
        f"{config.quiet_wait:g} s for the rest of the machine to use under 0.3 cores, and every point "
        "records the CPU that neither the server nor wrk used (`results.json`: `other_cores`). A point "
        f"during which other work took more than {config.busy_cores:g} cores is measured once more after "
        "waiting up to 10 s for calm, and the calmer of the two is kept (`retried`). Waiting and "
        f"re-measuring share a budget of {config.retry_budget:g} s per run, so the run stays near 15 min "
        "however busy the machine is.",
        "- req/s and rows/s count 2xx answers; errors are non-2xx answers plus socket errors (connect, "
        "read, write, timeouts over 5 s). Latency percentiles are wrk's, per request, closed loop.",
        "- Server CPU per request: utime+stime of every process in the server's tree from "
        "/proc/<pid>/stat, before and after each run. Memory: the sum of Rss and Pss from "
        "/proc/<pid>/smaps_rollup over the tree, after the round's load. start → ready: from spawn "
        "until the readiness route answers 200 (mlkube `/ready`; the notes' app `/health`, its only "
        "probe; MLServer `/v2/models/iris/ready`), polled every 5 ms.",
        "- Server output (the access log) goes to a pipe that the harness reads and counts, as a "
        "container runtime would; `log lines/req` checks one line per request.",
        "- The notes' app runs as the notes write it, except for its last line: host 127.0.0.1 and a "
        "free port instead of 0.0.0.0:5000. The notes' pins (flask 3.0.0, scikit-learn 1.3.2, joblib "
        "1.3.2) install on Python 3.11 as they are. MLServer serves the `model.joblib` that the notes' "
        "`train_model.py` wrote (scikit-learn 1.3.2 in both environments, so the file loads unchanged). "
        "mlkube runs as `python -m mlkube.server` (the container's entry point; `mlkube serve` runs the "
        "same function after loading the CLI) and serves its own `mlkube train` bundle through ONNX "
        "Runtime: the same recipe (a 10-tree random forest on iris), trained on 80% of the rows with "
        "seed 42 where the notes' script uses all rows and no seed.",
    ]
