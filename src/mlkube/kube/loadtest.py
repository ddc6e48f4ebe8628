"""`mlkube load` from end to end: find the URL and the key, follow the replicas, run, print, judge."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mlkube.kube.endpoint import service_endpoint
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.load import LoadPlan, Window, percentile, run_load
from mlkube.kube.replicas import ReplicaWatch
from mlkube.kube.secret import cluster_key, first_key, local_key


@dataclass(frozen=True)
class LoadRequest:
    rps: float
    duration: float
    url: str | None = None
    api_key_file: Path | None = None
    concurrency: int = 64
    timeout: float = 5.0
    tick: float = 5.0
    watch: bool = True
    watch_every: float = 5.0
    max_error_ratio: float = 0.01


def load_test(kubectl: Kubectl, request: LoadRequest) -> Window:
    """Run the load; KubeError when more than `max_error_ratio` of the requests failed."""
    out = kubectl.out
    key = local_key(request.api_key_file)
    key = first_key(key) if key else None
    if request.url is None or request.watch:
        kubectl = _pinned_or_unpinned(kubectl, needed=request.url is None)
    with ExitStack() as stack:
        if request.url is None and not kubectl.dry_run:
            key = key or cluster_key(kubectl)
        url = request.url or (stack.enter_context(service_endpoint(kubectl)) if not kubectl.dry_run else "")
        if kubectl.dry_run:
            target = url or "the Service"
            out.info(f"(dry run) would send {request.rps:g} req/s for {request.duration:g}s to {target}")
            return Window(0.0)
        watch = ReplicaWatch(kubectl, every=request.watch_every)
        watching = request.watch and watch.start()
        out.info(
            f"sending {request.rps:g} req/s of the notes' /predict payload to {url} for {request.duration:g}s"
        )
        plan = LoadPlan(
            url, request.rps, request.duration, key, request.concurrency, request.timeout, request.tick
        )
        try:
            total = run_load(plan, lambda elapsed, window: out.info(window_line(elapsed, window)))
        finally:
            if watching:
                watch.stop()
    for line in summary_lines(total, request.rps, watch.summary() if watching else None):
        out.info(line)
    answered = total.ok + total.failed
    if answered == 0 or total.failed > request.max_error_ratio * answered:
        raise KubeError(
            f"{total.failed} of {answered} requests failed (allowed: {request.max_error_ratio:.1%})"
        )
    return total


def _pinned_or_unpinned(kubectl: Kubectl, *, needed: bool) -> Kubectl:
    """The context pinned for the whole run; without a cluster, when only the replica watch needed it,
    the watch says so itself and the load still runs against --url."""
    try:
        return kubectl.pinned()
    except KubeError:
        if needed:
            raise
        return kubectl


def window_line(elapsed: float, window: Window) -> str:
    ordered = sorted(window.latencies)
    late = f"  {window.late} late" if window.late else ""
    return (
        f"  {elapsed:5.0f}s  {window.rate:7.1f} req/s  ok {window.ok:<6} errors {window.failed:<5}"
        f"p50 {_ms(percentile(ordered, 50))}  p99 {_ms(percentile(ordered, 99))}{late}"
    )


def summary_lines(total: Window, asked: float, replicas: str | None) -> list[str]:
    ordered = sorted(total.latencies)
    lines = [
        f"achieved {total.rate:.1f} req/s of {asked:g} asked over {total.seconds:.1f}s: "
        f"{total.ok} ok, {total.failed} errors",
        "latency "
        + ", ".join(f"p{p} {_ms(percentile(ordered, p))}" for p in (50, 90, 99))
        + f", max {_ms(ordered[-1] if ordered else 0.0)}",
    ]
    if total.errors:
        lines.append("errors: " + ", ".join(f"{kind} x{count}" for kind, count in total.errors.most_common()))
    if total.late:
        lines.append(
            f"{total.late} requests skipped: they could not start within 1s of their time because every "
            "connection was busy (a slow server, or raise --concurrency)"
        )
    if replicas:
        lines.append(replicas)
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
