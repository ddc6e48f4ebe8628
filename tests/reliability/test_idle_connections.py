"""Connections that never send a byte (issue 13 #2): closed after HEADER_READ_SECONDS, never a lock-out.

granian holds one of a worker's permits (`runner.connection_limit`) per open connection. The attack: open
more silent connections than one worker has permits, then send a normal request. Before the fix, granian's
`auto` HTTP mode waited without a timer for the first byte, so every permit stayed taken for good and the
normal request waited forever in the kernel's backlog.
"""

from __future__ import annotations

import resource
import selectors
import socket
import time
from pathlib import Path

import httpx

from mlkube.server.runner import HEADER_READ_SECONDS, connection_limit
from tests.reliability.report import record
from tests.support import start_server

MAX_IN_FLIGHT = 256
EXTRA_CONNECTIONS = 32  # beyond the permits: these wait in the kernel's backlog (1,024 deep)
MARGIN_SECONDS = 5.0


def ensure_open_files(needed: int) -> None:
    """Raise this process's soft descriptor limit towards the hard one if the test needs more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard)
        )


def open_silent_connections(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.setblocking(False)
        connections.append(connection)
    return connections


def seconds_until_closed(connections: list[socket.socket], opened_at: float, timeout: float) -> list[float]:
    """For each connection, seconds from `opened_at` until the server closed it (EOF or reset)."""
    closed: dict[int, float] = {}
    with selectors.DefaultSelector() as selector:
        for index, connection in enumerate(connections):
            selector.register(connection, selectors.EVENT_READ, index)
        deadline = time.monotonic() + timeout
        while len(closed) < len(connections) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(1024)  # type: ignore[union-attr]
                except (ConnectionResetError, BlockingIOError) as error:
                    data = b"" if isinstance(error, ConnectionResetError) else b"?"
                if data == b"":
                    closed[key.data] = time.monotonic() - opened_at
                    selector.unregister(key.fileobj)
    return [closed.get(index, float("inf")) for index in range(len(connections))]


def test_silent_connections_beyond_the_permits_are_closed_and_a_client_is_served(model_dir: Path) -> None:
    permits = connection_limit(MAX_IN_FLIGHT, workers=1)
    count = permits + EXTRA_CONNECTIONS
    ensure_open_files(count + 256)
    env = {"MODEL_DIR": str(model_dir), "WORKERS": "1", "MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)}
    with start_server(env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        opened_at = time.monotonic()
        silent = open_silent_connections(port, count)
        try:
            started = time.monotonic()
            answer = httpx.get(f"{server.url}/health", timeout=HEADER_READ_SECONDS + 2 * MARGIN_SECONDS)
            served_after = time.monotonic() - started
            closed_after = seconds_until_closed(
                silent, opened_at, 2 * HEADER_READ_SECONDS + 2 * MARGIN_SECONDS
            )
        finally:
            for connection in silent:
                connection.close()
        after = server.client.get("/ready")

    first_wave = sum(seconds <= HEADER_READ_SECONDS + MARGIN_SECONDS for seconds in closed_after)
    record(
        "idle_connections",
        permits=permits,
        silent_connections=count,
        normal_client_status=answer.status_code,
        normal_client_served_after_s=served_after,
        closed_within_deadline=first_wave,
        last_closed_after_s=max(closed_after),
    )
    assert answer.status_code == 200
    assert served_after < HEADER_READ_SECONDS + MARGIN_SECONDS
    # those accepted at once hold the permits and are closed after one deadline; the ones that waited in
    # the backlog are accepted then, and closed one deadline later
    assert first_wave >= permits
    assert max(closed_after) < 2 * HEADER_READ_SECONDS + 2 * MARGIN_SECONDS
    assert after.status_code == 200
