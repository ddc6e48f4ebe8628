"""Start-up and shutdown: verify the bundle once, fork granian workers, drain on SIGTERM.

Shutdown, as Kubernetes needs it: on SIGTERM every worker's /ready turns 503 at once (a marker file all
workers see) while requests are still served for DRAIN_SECONDS, so endpoints are removed before anything
stops listening; then granian stops the workers, which finish the requests in flight (up to
GRACE_SECONDS), and the process exits 0. A second SIGTERM/SIGINT skips the drain.
"""

from __future__ import annotations

import gc
import logging
import logging.config
import math
import os
import shutil
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

from mlkube.errors import BundleError
from mlkube.model.bundle import Bundle, latest_bundle_path, read_bundle
from mlkube.server.logs import logging_config
from mlkube.settings import Settings

log = logging.getLogger("mlkube.server")
DRAIN_MARKER = "draining"
GRANIAN_BACKLOG = 1024  # granian's default listen backlog
HEADER_READ_SECONDS = 10
"""From accept (and between keep-alive requests) to a complete request head; silent connections are closed."""
RESERVED_FILES = 64  # descriptors a worker keeps for itself beyond connections (model, metrics files, pipes)
_CGROUP_V2_CPU = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def serve_forever(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    logging.config.dictConfig(logging_config(settings.log_level))
    runtime_dir = _prepare_runtime_dir()
    try:
        bundle, load_error = locate_bundle(settings)
        _preload_libraries(settings)
        return _serve(settings, bundle, load_error, runtime_dir)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)


def locate_bundle(settings: Settings) -> tuple[Bundle | None, str | None]:
    """The verified bundle, or why there is none (the server then runs, alive but never ready)."""
    try:
        if settings.model_bundle is not None:
            bundle = read_bundle(settings.model_bundle, settings.model_sha256)
        else:
            folder = latest_bundle_path(settings.model_dir, settings.model_name)
            bundle = read_bundle(folder, settings.model_sha256, boundary=settings.model_dir)
        log.info("model bundle verified", extra={"bundle": str(bundle.path), "digest": bundle.digest})
        return bundle, None
    except BundleError as error:
        log.error("model bundle refused: %s", error)
        return None, str(error)


def default_workers() -> int:
    """One worker per CPU the cgroup grants (a pod's CPU limit, rounded up), else per usable core."""
    quota = cgroup_cpu_limit()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if quota is None:
        return max(1, cores)
    return max(1, min(cores, math.ceil(quota)))


def cgroup_cpu_limit(v2: Path = _CGROUP_V2_CPU, v1_quota: Path = _CGROUP_V1_QUOTA) -> float | None:
    """CPUs allowed by the cgroup quota (`0.5` for a 500m limit); None when unlimited or unknown."""
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or "100000")
        if v1_quota.is_file():
            quota_us = int(v1_quota.read_text())
            period_path = v1_quota.with_name("cpu.cfs_period_us")
            return None if quota_us <= 0 else quota_us / int(period_path.read_text())
    except (OSError, ValueError):
        return None
    return None


def connection_limit(
    max_in_flight: int, workers: int, backlog: int = GRANIAN_BACKLOG, open_files: int | None = None
) -> int:
    """Connections one worker accepts (granian's `backpressure`): above MAX_IN_FLIGHT, within the fd limit.

    granian takes a permit before accept() and holds it until the connection closes; past the limit
    connections wait unanswered in the kernel's backlog. Keeping it at twice MAX_IN_FLIGHT (at least
    granian's own default, backlog/workers) lets excess requests reach the app, which answers them 503 at
    once, instead of leaving clients hanging. A connection that sends nothing holds its permit at most
    HEADER_READ_SECONDS, so holding every permit takes a fresh connection per permit every
    HEADER_READ_SECONDS, which per-client limits at the ingress stop. The permits stay under the worker's
    open-file limit: past it accept() fails with EMFILE instead of waiting.
    """
    limit = max(backlog // workers, 2 * max_in_flight)
    files = open_file_limit() if open_files is None else open_files
    return max(1, min(limit, files - RESERVED_FILES))


def open_file_limit() -> int:
    """The process's soft RLIMIT_NOFILE (inherited by the workers); a large number when unlimited."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _prepare_runtime_dir() -> Path:
    """Where the workers share state: Prometheus' multiprocess files and the drain marker (under TMPDIR)."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="mlkube-"))
    metrics_dir = runtime_dir / "metrics"
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return runtime_dir


def _preload_libraries(settings: Settings) -> None:
    """Import the heavy libraries before forking, so workers share their pages instead of copying them."""
    import numpy  # noqa: F401

    if settings.model_runtime == "onnx":
        import onnxruntime  # noqa: F401

    import mlkube.server.app  # noqa: F401 - also imports prometheus_client in multiprocess mode


def _serve(settings: Settings, bundle: Bundle | None, load_error: str | None, runtime_dir: Path) -> int:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    from mlkube.server.app import build_app
    from mlkube.server.auth import ApiKeys

    api_keys = ApiKeys.from_settings(settings)  # API_KEY's keys told apart from API_KEY_FILE's, once
    workers = settings.workers or default_workers()
    server = _draining_server_class()(
        target="mlkube.server.app:build_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=workers,
        websockets=False,
        backpressure=connection_limit(settings.max_in_flight, workers),
        # HTTP/1 only: in `auto` mode hyper-util first waits, with no timer, for the bytes that tell HTTP/1
        # from HTTP/2, so a connection that never sends one was never closed; hyper's HTTP/1 server starts
        # the header timeout at accept and again after each answer on a keep-alive connection
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_SECONDS * 1000),
        log_dictconfig=logging_config(settings.log_level),
        respawn_failed_workers=True,
        respawn_interval=0.5,
        workers_kill_timeout=max(1, math.ceil(settings.grace_seconds)),
    )
    server.configure_drain(runtime_dir / DRAIN_MARKER, settings.drain_seconds)
    log.info(
        "serving",
        extra={
            "model": bundle.metadata.name if bundle else settings.model_name,
            "version": settings.model_version or (bundle.metadata.version if bundle else None),
            "runtime": settings.model_runtime,
            "bundle": str(bundle.path) if bundle else None,
            "url": f"http://{settings.host}:{settings.port}",
            "workers": workers,
            "auth": "on" if settings.auth_enabled else "off",
            "api_keys": len(settings.api_key),
        },
    )
    loader = partial(build_app, settings, bundle, load_error, runtime_dir / DRAIN_MARKER, api_keys)
    # the workers inherit the imported libraries: frozen, the collector in a worker never writes to their
    # object headers, so their pages stay shared instead of being copied into every worker
    gc.freeze()
    server.serve(target_loader=loader, wrap_loader=False)
    log.info("stopped")
    return 0


def _draining_server_class() -> Any:
    """granian's process server, with SIGTERM turned into drain-then-stop (granian is imported lazily)."""
    from granian.server import Server

    class DrainingServer(Server):  # type: ignore[misc, valid-type]
        _marker: Path
        _drain_seconds: float
        _draining = False

        def configure_drain(self, marker: Path, seconds: float) -> None:
            self._marker, self._drain_seconds = marker, seconds

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            if self._draining or self._drain_seconds <= 0:
                super().signal_handler_interrupt(*args, **kwargs)
                return
            self._draining = True
            self._marker.touch()
            log.info("draining: /ready answers 503", extra={"drain_seconds": self._drain_seconds})
            timer = threading.Timer(self._drain_seconds, super().signal_handler_interrupt)
            timer.daemon = True
            timer.start()

    return DrainingServer
