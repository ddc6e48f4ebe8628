"""One round on one server: start it, check one answer, warm up, run every load point, read memory, stop.

Every load point is one wrk run; around it the harness snapshots the CPU time of the server's whole
process tree, so CPU per request covers all of the server's processes (workers, supervisor, helpers).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import procs
from harness.peers import Peer
from harness.wrk import Request, run_wrk, write_script

_LOG_SETTLE = 0.3
"""Seconds for buffered log lines to reach the pipe (mlkube flushes its access log every 0.1 s)."""


@dataclass(frozen=True)
class Config:
    rounds: int
    seconds: int
    warmup_seconds: int
    single_concurrency: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    batch_concurrency: int
    floor_concurrency: tuple[int, ...]
    variant_concurrency: int
    wrk_cpu: int | None
    server_cpus: str | None
    quiet_wait: float = 0.0
    """Before each server start, wait up to this many seconds for other work to drop below 0.3 cores."""
    retry_budget: float = 0.0
    """Seconds a whole run may spend waiting for calm and re-measuring points that other work disturbed
    (over `busy_cores`); the quiet waits before server starts come out of the same budget."""
    busy_cores: float = 0.4
    v2_concurrency: tuple[int, ...] = ()
    """mlkube's V2 route with MLServer's body, to compare the two on the same protocol."""
    ready_timeout: float = 60.0


@dataclass(frozen=True)
class Point:
    kind: str  # "single" (one row, c varies), "batch" (rows vary, c fixed), "floor" (no-op route), "v2"
    concurrency: int
    rows: int
    request: Request


@dataclass
class Sample:
    """One wrk run against one server in one round."""

    server: str
    round: int
    kind: str
    concurrency: int
    rows: int
    seconds: float
    requests_ok: int
    non_2xx: int
    socket_errors: int
    rps: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_us_per_request: float
    output_lines_per_request: float
    server_cores: float
    wrk_cores: float
    other_cores: float
    """CPUs busy with neither the server nor wrk: other work on the machine, which skews the point."""
    steal_cores: float
    worker_shares: list[float] = field(default_factory=list)
    worker_connections: list[int] = field(default_factory=list)
    """Client connections each server process held halfway through the run, most first."""
    main_thread_us_per_request: float = 0.0
    """CPU of the processes' main threads per request: for granian, Python's event loop and the app."""
    retried: bool = False
    """Measured again because other work took over `busy_cores` the first time; the calmer one is kept."""


@dataclass
class RetryBudget:
    """What is left of `Config.retry_budget` in this run, in seconds."""

    seconds: float


@dataclass
class Run:
    """One start-to-stop of one server."""

    server: str
    round: int
    start_to_ready_s: float
    rss_mib: float
    pss_mib: float
    processes: int
    exit_code: int | None
    stop_s: float
    answer: str
    busy_before: float
    """CPUs busy with other work just before the start (after waiting up to `quiet_wait`)."""
    samples: list[Sample] = field(default_factory=list)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def points_for(peer: Peer, config: Config, variant: bool) -> list[Point]:
    if variant:  # a feature-price variant: only the c=64 single-row point
        return [Point("single", config.variant_concurrency, 1, peer.single())]
    points = [Point("single", c, 1, peer.single()) for c in config.single_concurrency]
    for rows in config.batch_sizes:
        request = peer.batch(rows)
        if request is not None:
            points.append(Point("batch", config.batch_concurrency, rows, request))
    floor = peer.floor()
    if floor is not None:
        points += [Point("floor", c, 0, floor) for c in config.floor_concurrency]
    v2 = peer.v2()
    if v2 is not None:
        points += [Point("v2", c, 1, v2) for c in config.v2_concurrency]
    return points


def ask_once(port: int, request: Request) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(request.method, request.path, request.body or None, dict(request.headers))
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def run_server(
    peer: Peer, round_no: int, config: Config, scripts: Path, wrk: str, variant: bool, budget: RetryBudget
) -> Run:
    busy_before = procs.busy_cores(0.5)
    patience = min(config.quiet_wait, budget.seconds)
    if patience > 0:
        busy_before, waited = procs.wait_until_quiet(0.3, patience)
        budget.seconds -= waited
    ports = free_ports(3)
    launch = peer.launch(ports)
    command = launch.command
    if config.server_cpus is not None:
        command = ["taskset", "-c", config.server_cpus, *command]
    server = procs.ServerProcess(command, launch.env, launch.cwd)
    try:
        ready = server.wait_ready(ports[0], launch.ready_path, config.ready_timeout)
        answer = _checked_answer(peer, ports[0])
        url = f"http://127.0.0.1:{ports[0]}"
        warm = write_script(peer.single(), scripts, f"{peer.name}-warmup")
        run_wrk(wrk, url + peer.single().path, warm, 8, config.warmup_seconds, config.wrk_cpu)
        samples: list[Sample] = []
        done: dict[tuple[Request, int], Sample] = {}
        for point in points_for(peer, config, variant):
            same = done.get((point.request, point.concurrency))
            if same is not None:  # MLServer's one-row batch is its single-row request: measure it once
                samples.append(dataclasses.replace(same, kind=point.kind, rows=point.rows))
                continue
            sample = _measure(peer, round_no, point, server, url, scripts, wrk, config)
            if sample.other_cores > config.busy_cores and budget.seconds >= config.seconds + 10:
                sample = _calmer(sample, peer, round_no, point, server, url, scripts, wrk, config, budget)
            done[(point.request, point.concurrency)] = sample
            samples.append(sample)
        memory = procs.tree_memory(server.pid)
    except BaseException:
        server.stop(timeout=5)
        raise
    stop_started = time.perf_counter()
    exit_code = server.stop()
    stop_s = time.perf_counter() - stop_started
    return Run(
        peer.name,
        round_no,
        ready,
        memory.rss_mib,
        memory.pss_mib,
        memory.processes,
        exit_code,
        stop_s,
        answer,
        busy_before,
        samples,
    )


def _checked_answer(peer: Peer, port: int) -> str:
    status, text = ask_once(port, peer.single())
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if status != 200 or not isinstance(parsed, dict) or not peer.check(parsed):
        raise RuntimeError(f"{peer.name}: wrong answer to the single-row request: {status} {text[:300]}")
    return text.strip()


def _measure(
    peer: Peer,
    round_no: int,
    point: Point,
    server: procs.ServerProcess,
    url: str,
    scripts: Path,
    wrk: str,
    config: Config,
) -> Sample:
    name = f"{peer.name}-{point.kind}-c{point.concurrency}-r{point.rows}"
    script = write_script(point.request, scripts, name)
    cpu_before = procs.tree_cpu_ticks(server.pid)
    main_before = procs.main_thread_ticks(server.pid)
    time.sleep(_LOG_SETTLE)
    lines_before = server.output_lines()
    busy_before, steal_before = procs.machine_busy_ticks()
    wrk_before = procs.children_cpu_seconds()
    started = time.perf_counter()
    held: dict[int, int] = {}
    port = int(url.rsplit(":", 1)[1])
    result = run_wrk(
        wrk,
        url + point.request.path,
        script,
        point.concurrency,
        config.seconds,
        config.wrk_cpu,
        halfway=lambda: held.update(procs.connections_per_process(server.pid, port)),
    )
    elapsed = time.perf_counter() - started
    busy_after, steal_after = procs.machine_busy_ticks()
    wrk_cores = (procs.children_cpu_seconds() - wrk_before) / elapsed
    per_process = procs.cpu_seconds(cpu_before, procs.tree_cpu_ticks(server.pid))
    main_threads = procs.cpu_seconds(main_before, procs.main_thread_ticks(server.pid))
    server_cores = sum(per_process.values()) / elapsed
    busy_cores = (busy_after - busy_before) / procs.CLOCK_TICKS / elapsed
    time.sleep(_LOG_SETTLE)
    total = max(result.requests, 1)
    lines = server.output_lines() - lines_before
    return Sample(
        server=peer.name,
        round=round_no,
        kind=point.kind,
        concurrency=point.concurrency,
        rows=point.rows,
        seconds=result.seconds,
        requests_ok=result.ok,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        rps=result.ok / result.seconds,
        rows_per_s=result.ok * point.rows / result.seconds,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        cpu_us_per_request=sum(per_process.values()) * 1e6 / total,
        output_lines_per_request=lines / total,
        server_cores=server_cores,
        wrk_cores=wrk_cores,
        other_cores=max(0.0, busy_cores - server_cores - wrk_cores),
        steal_cores=(steal_after - steal_before) / procs.CLOCK_TICKS / elapsed,
        worker_shares=_worker_shares(server.pid, per_process),
        worker_connections=sorted(held.values(), reverse=True),
        main_thread_us_per_request=sum(main_threads.values()) * 1e6 / total,
    )


def _calmer(
    first: Sample,
    peer: Peer,
    round_no: int,
    point: Point,
    server: procs.ServerProcess,
    url: str,
    scripts: Path,
    wrk: str,
    config: Config,
    budget: RetryBudget,
) -> Sample:
    """Wait (up to 10 s) for other work to calm down, measure the point again, keep the calmer sample."""
    started = time.perf_counter()
    procs.wait_until_quiet(0.3, 10)
    again = _measure(peer, round_no, point, server, url, scripts, wrk, config)
    budget.seconds -= time.perf_counter() - started
    return dataclasses.replace(again if again.other_cores < first.other_cores else first, retried=True)


def _worker_shares(root: int, per_process: dict[int, float]) -> list[float]:
    """Each child process's share of the tree's child CPU time (the supervisor itself left out).

    With one process per worker and the same work per request, CPU time is proportional to requests
    served, so this is the share of the work each worker did. Children with under 1% are helpers.
    """
    children = {pid: seconds for pid, seconds in per_process.items() if pid != root}
    busy = sum(children.values())
    if busy <= 0:
        return []
    return sorted((seconds / busy for seconds in children.values() if seconds / busy >= 0.01), reverse=True)
