"""`mlkube load`: steady traffic at a fixed rate for the HPA demo (open loop: requests are due on a clock,
not after the previous answer), with achieved rate, latency percentiles and errors as it goes."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from mlkube.kube.httpclient import HttpClient, TransportError, key_headers
from mlkube.kube.smoke import NOTES_ROW

MAX_LATE = 1.0
"""A request that cannot start within this many seconds of its time is skipped and counted as late."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float) -> float:
    """`60s`, `2m`, `1m30s`, `500ms` or plain seconds (`90`) → seconds."""
    if isinstance(text, (int, float)):
        return _positive(float(text), str(text))
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"not a duration: {text!r} (examples: 60s, 2m, 1m30s, 500ms)") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    return _positive(seconds, text)


def _positive(seconds: float, text: str) -> float:
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


@dataclass(frozen=True)
class LoadPlan:
    url: str
    rps: float
    duration: float
    api_key: str | None = None
    concurrency: int = 64
    timeout: float = 5.0
    tick: float = 5.0
    reconnect_every: float = 2.0
    """Each connection is closed after this many seconds and opened anew, so that the Service spreads
    it again and pods the HPA adds get their share (a keep-alive connection stays on its first pod)."""


@dataclass
class Window:
    """What happened in one stretch of the run."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        """Answered requests (ok or not) per second."""
        return (self.ok + self.failed) / self.seconds if self.seconds > 0 else 0.0


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._errors: Counter[str] = Counter()
        self._late = 0

    def record(self, outcome: str, seconds: float) -> None:
        with self._lock:
            if outcome == "ok":
                self._latencies.append(seconds)
            else:
                self._errors[outcome] += 1

    def skip_late(self) -> None:
        with self._lock:
            self._late += 1

    def take(self, seconds: float) -> Window:
        with self._lock:
            window = Window(seconds, self._latencies, self._errors, self._late)
            self._latencies, self._errors, self._late = [], Counter(), 0
        return window


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def merge(windows: list[Window]) -> Window:
    total = Window(sum(w.seconds for w in windows))
    for window in windows:
        total.latencies.extend(window.latencies)
        total.errors.update(window.errors)
        total.late += window.late
    return total


def run_load(plan: LoadPlan, on_window: Callable[[float, Window], None]) -> Window:
    """Send `rps` requests a second for `duration` seconds; `on_window(elapsed, window)` every `tick`."""
    tickets: queue.Queue[float | None] = queue.Queue()
    recorder = _Recorder()
    body = msgspec.json.encode({"features": NOTES_ROW})
    workers = [
        threading.Thread(target=_work, args=(plan, body, tickets, recorder), daemon=True)
        for _ in range(max(1, plan.concurrency))
    ]
    for worker in workers:
        worker.start()
    windows = _dispatch(plan, tickets, recorder, on_window)
    for _ in workers:
        tickets.put(None)
    finish_by = time.monotonic() + plan.timeout + MAX_LATE + 1
    for worker in workers:
        worker.join(max(0.0, finish_by - time.monotonic()))
    windows.append(recorder.take(0.0))  # answers that came in after the last window closed
    return merge(windows)


def _dispatch(
    plan: LoadPlan,
    tickets: queue.Queue[float | None],
    recorder: _Recorder,
    on_window: Callable[[float, Window], None],
) -> list[Window]:
    windows: list[Window] = []
    start = time.monotonic()
    last_tick = start
    total = max(1, round(plan.rps * plan.duration))
    for index in range(total):
        due = start + index / plan.rps
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = due
        tickets.put(due)
        if now - last_tick >= plan.tick:
            windows.append(recorder.take(now - last_tick))
            last_tick = now
            on_window(now - start, windows[-1])
    end = start + plan.duration
    if end > time.monotonic():
        time.sleep(end - time.monotonic())
    windows.append(recorder.take(time.monotonic() - last_tick))
    on_window(time.monotonic() - start, windows[-1])
    return windows


def _work(plan: LoadPlan, body: bytes, tickets: queue.Queue[float | None], recorder: _Recorder) -> None:
    headers = {"Content-Type": "application/json"}
    with HttpClient(plan.url, timeout=plan.timeout, headers=key_headers(plan.api_key)) as client:
        opened = time.monotonic()
        while (due := tickets.get()) is not None:
            started = time.monotonic()
            if started - due > MAX_LATE:
                recorder.skip_late()
                continue
            if started - opened >= plan.reconnect_every:
                client.close()  # the next request connects anew
                opened = started
            try:
                reply = client.request("POST", "/predict", body, headers)
                outcome = "ok" if reply.status == 200 else f"HTTP {reply.status}"
            except TransportError as error:
                outcome = type(error).__name__
            recorder.record(outcome, time.monotonic() - started)
