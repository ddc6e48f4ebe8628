"""A small, bounded HTTP/1.1 load generator for the reliability tests (asyncio, keep-alive, 127.0.0.1 only).

httpx costs ~300 µs of client CPU a request; on a 2-core machine shared with the server that would measure
the client. This client writes pre-built request bytes and parses only what the server sends (a status line,
headers, a Content-Length body), so a few thousand requests a second cost the client little.

Every run is bounded twice: by its own duration and by a deadline on each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def build_request(
    method: str, path: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """The bytes of one HTTP/1.1 request (Content-Length set when there is a body or the method is POST)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of a server URL; refuses anything but the loopback interface."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        raise ValueError(f"load is only ever sent to 127.0.0.1, not {url}")
    return "127.0.0.1", parts.port


class Connection:
    """One keep-alive connection; reopened transparently when the server closes it."""

    def __init__(self, url: str) -> None:
        self.host, self.port = loopback_address(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes, timeout: float = REQUEST_TIMEOUT) -> Reply:
        return await self.request_in_parts([raw], 0.0, timeout)

    async def request_in_parts(
        self, parts: Sequence[bytes], interval: float, timeout: float = REQUEST_TIMEOUT
    ) -> Reply:
        """Write `parts` with `interval` seconds between them (a slow client), then read the answer."""
        started = time.perf_counter()
        status, headers, body = await asyncio.wait_for(self._exchange(parts, interval), timeout)
        return Reply(status, headers, body, time.perf_counter() - started)

    async def _exchange(self, parts: Sequence[bytes], interval: float) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            for index, part in enumerate(parts):
                if index and interval:
                    await asyncio.sleep(interval)
                self._writer.write(part)
                await self._writer.drain()
            status, headers = _parse_head(await self._reader.readuntil(b"\r\n\r\n"))
            body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            await self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1 status line: {status_line!r}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers


@dataclass
class Tally:
    """What a load run saw: statuses, latencies per status, and transport errors by kind."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    retry_after: Counter[str] = field(default_factory=Counter)

    def add(self, reply: Reply) -> None:
        self.statuses[reply.status] += 1
        self.latencies.setdefault(reply.status, []).append(reply.seconds)
        if reply.status == 503:
            self.retry_after[reply.headers.get("retry-after", "<none>")] += 1

    def fail(self, error: BaseException) -> None:
        self.errors[type(error).__name__] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failed(self) -> int:
        """Requests that did not get the answer they should have: transport errors and wrong answers."""
        return sum(self.errors.values()) + len(self.unexpected)

    def percentile(self, status: int, fraction: float) -> float:
        values = sorted(self.latencies.get(status, []))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass(frozen=True)
class Planned:
    """One request and the answer it must get: a status and, optionally, bytes the body must contain."""

    raw: bytes
    status: int | tuple[int, ...] = 200
    contains: bytes = b""
    kind: str = ""

    def problem(self, reply: Reply) -> str | None:
        allowed = self.status if isinstance(self.status, tuple) else (self.status,)
        what = self.kind or "request"
        if reply.status not in allowed:
            return f"{what}: status {reply.status}, expected {self.status}: {reply.body[:200]!r}"
        if self.contains not in reply.body:
            return f"{what}: body lacks {self.contains!r}: {reply.body[:200]!r}"
        return None


async def _send(connection: Connection, planned: Planned, tally: Tally) -> None:
    try:
        reply = await connection.request(planned.raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
        tally.fail(error)
        return
    tally.add(reply)
    problem = planned.problem(reply)
    if problem is not None:
        tally.unexpected.append(problem)


async def fixed_rate(
    url: str,
    rate: float,
    seconds: float,
    plan: Callable[[int], Planned],
    connections: int = 8,
    stop: asyncio.Event | None = None,
) -> Tally:
    """Send request `plan(i)` at t0 + i/rate over `connections` keep-alive connections for `seconds`.

    `stop` ends the run early (no new request is sent once it is set; those in flight complete).
    """
    tally = Tally()
    started = time.monotonic()
    total = int(rate * seconds)
    tickets = iter(range(total))

    async def client() -> None:
        connection = Connection(url)
        try:
            for ticket in tickets:
                if stop is not None and stop.is_set():
                    return
                delay = started + ticket / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await _send(connection, plan(ticket), tally)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return tally


async def closed_loop(url: str, clients: int, seconds: float, planned: Planned) -> Tally:
    """`clients` connections, each sending `planned` again as soon as it is answered, for `seconds`."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        connection = Connection(url)
        try:
            while time.monotonic() < deadline:
                await _send(connection, planned, tally)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return tally
