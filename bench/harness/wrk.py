"""The load generator: Debian's wrk, closed loop, pinned to one core, a Lua script per request shape.

Each script sets the method, body and headers, and prints one `WRK_JSON {...}` line in `done()` with
the counts and latency percentiles (microseconds), so nothing is parsed out of wrk's human output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WRK_MISSING = (
    "wrk is not installed: the benchmark's load generator is Debian's `wrk` "
    "(.ci/system-deps must install it; by hand: apt-get install -y wrk)"
)
_MARKER = "WRK_JSON "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class Request:
    """One request shape: what every connection sends, again and again."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    rows: int = 1


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    socket_errors: int
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_MISSING)
    return path


def _lua_string(data: bytes) -> str:
    """A Lua long string holding `data` exactly (JSON bodies never contain the closing `]==]`)."""
    text = data.decode()
    if "]==]" in text:
        raise ValueError("body contains ']==]'")
    return "[==[" + text + "]==]"


def write_script(request: Request, folder: Path, name: str) -> Path:
    lines = [f'wrk.method = "{request.method}"']
    if request.body:
        lines.append(f"wrk.body = {_lua_string(request.body)}")
    lines += [f'wrk.headers["{key}"] = {_lua_string(value.encode())}' for key, value in request.headers]
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    connections: int,
    seconds: int,
    cpu: int | None,
    halfway: Callable[[], None] | None = None,
) -> WrkResult:
    """Closed loop: `connections` keep-alive connections from one wrk thread, each sends after each answer.

    `halfway` is called once in the middle of the run (to look at the server while it is loaded).
    """
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        if halfway is not None:
            time.sleep(seconds / 2)
            halfway()
        stdout, stderr = process.communicate(timeout=seconds + 60)
    found = [line for line in stdout.splitlines() if line.startswith(_MARKER)]
    if process.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.strip() or stdout.strip()}")
    data = json.loads(found[-1][len(_MARKER) :])
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )
