"""Faults under load: SIGTERM (a rollout), a worker SIGKILLed (OOM killer), a client that sends slowly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from mlkube.server.app import BODY_SECONDS
from tests.reliability import traffic
from tests.reliability.loadgen import Connection, Reply, Tally, build_request, fixed_rate
from tests.reliability.procs import children, wait_for_children
from tests.reliability.report import record
from tests.support import NOTES_ROW, TIME_FACTOR, RunningServer, start_server

DRAIN_SECONDS = 2.0
GRACE_SECONDS = 5.0
ENDPOINT_REMOVAL_SECONDS = 0.5  # how long a load balancer keeps sending after /ready turns 503
STALL_TIMEOUT = BODY_SECONDS + 5 * TIME_FACTOR  # how long a stalled client waits for the server's 408


def notes_row_head_and_body() -> tuple[bytes, bytes]:
    """The notes' request split into its head (declaring the body's length) and its body."""
    body = json.dumps({"features": NOTES_ROW}).encode()
    request = build_request("POST", "/predict", body, [traffic.JSON_TYPE])
    return request[: -len(body)], body


# --- SIGTERM: drain, finish what was accepted, exit 0 --------------------------------------------------


class Drain:
    """What a rolling update sees: the signal, /ready turning 503, load stopping once the endpoint is gone."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.stop_sending = asyncio.Event()
        self.signalled_at = 0.0
        self.not_ready_after = float("nan")

    async def watch_readiness(self) -> None:
        """Poll /ready every 20 ms; once it says 503, stop the load after the endpoint-removal delay."""
        probe = Connection(self.server.url)
        try:
            while not self.signalled_at:
                await asyncio.sleep(0.02)
            while True:
                reply = await probe.request(build_request("GET", "/ready"))
                if reply.status == 503 and b"shutting down" in reply.body:
                    self.not_ready_after = time.monotonic() - self.signalled_at
                    break
                await asyncio.sleep(0.02)
        finally:
            await probe.close()
        await asyncio.sleep(ENDPOINT_REMOVAL_SECONDS)
        self.stop_sending.set()

    async def signal_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.signalled_at = time.monotonic()
        self.server.process.send_signal(signal.SIGTERM)

    async def long_request(self) -> Reply:
        """A request accepted before the signal whose body arrives only after the drain: it must finish."""
        await asyncio.sleep(0.5)
        connection = Connection(self.server.url)
        try:
            head, body = notes_row_head_and_body()
            return await connection.request_in_parts([head + body[:10], body[10:]], DRAIN_SECONDS + 1.0)
        finally:
            await connection.close()

    async def run(self) -> tuple[Tally, Reply, float]:
        load = fixed_rate(
            self.server.url, 200, 30, lambda _: traffic.notes_row(), connections=8, stop=self.stop_sending
        )
        tally, long_reply, *_ = await asyncio.gather(
            load, self.long_request(), self.watch_readiness(), self.signal_after(1.0)
        )
        await asyncio.to_thread(self.server.process.wait, DRAIN_SECONDS + GRACE_SECONDS + 10)
        return tally, long_reply, time.monotonic() - self.signalled_at


def test_sigterm_under_load_drains_finishes_accepted_requests_and_exits_0(model_dir: Path) -> None:
    env = {
        "MODEL_DIR": str(model_dir),
        "WORKERS": "2",
        "DRAIN_SECONDS": str(DRAIN_SECONDS),
        "GRACE_SECONDS": str(GRACE_SECONDS),
    }
    with start_server(env) as server:
        drain = Drain(server)
        tally, long_reply, exited_after = asyncio.run(drain.run())
        exit_code = server.process.returncode

    failed = tally.failed + (long_reply.status != 200)
    record(
        "sigterm_under_load",
        requests=tally.total + 1,
        failed=failed,
        ready_503_after_ms=drain.not_ready_after * 1000,
        long_request_status=long_reply.status,
        exit_code=exit_code,
        exit_after_s=exited_after,
    )
    assert failed == 0, (tally.errors, tally.unexpected[:5], long_reply)
    assert b'"class_name":"setosa"' in long_reply.body
    # soon enough that a load balancer lets go while the drain still serves (no machine-speed guess)
    assert drain.not_ready_after < DRAIN_SECONDS - ENDPOINT_REMOVAL_SECONDS
    assert exit_code == 0
    assert exited_after < DRAIN_SECONDS + GRACE_SECONDS


# --- SIGKILL of a worker: replaced, ready again, only its in-flight requests lost ---------------------

CONNECTIONS = 16


async def kill_a_worker_under_load(server: RunningServer) -> tuple[Tally, int, float]:
    pid = server.process.pid

    async def kill_and_wait_for_replacement() -> tuple[int, float]:
        await asyncio.sleep(1.5)
        victim = children(pid)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_for_children, pid, 2, 20, frozenset({victim}))
        return victim, time.monotonic() - killed_at

    load = fixed_rate(server.url, 300, 6, lambda _: traffic.notes_row(), connections=CONNECTIONS)
    tally, (victim, replaced_after) = await asyncio.gather(load, kill_and_wait_for_replacement())
    return tally, victim, replaced_after


def ready_on_fresh_connections(server: RunningServer, count: int) -> int:
    """/ready over `count` new connections (the kernel spreads them over both workers); how many said 200."""
    return sum(
        server.client.get("/ready", headers={"connection": "close"}).status_code == 200 for _ in range(count)
    )


def test_a_sigkilled_worker_is_replaced_and_only_its_in_flight_requests_fail(model_dir: Path) -> None:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2"}) as server:
        tally, victim, replaced_after = asyncio.run(kill_a_worker_under_load(server))
        workers = children(server.process.pid)
        ready = ready_on_fresh_connections(server, 20)

    record(
        "worker_sigkill_under_load",
        requests=tally.total,
        failed=tally.failed,
        failed_by_kind=dict(tally.errors),
        new_worker_after_s=replaced_after,
        ready_probes_ok=f"{ready}/20",
    )
    assert victim not in workers
    assert len(workers) == 2
    assert ready == 20
    assert tally.unexpected == []
    assert tally.failed <= CONNECTIONS, "more requests failed than could have been in flight on one worker"
    assert tally.statuses[200] >= tally.total - CONNECTIONS


# --- a slow client does not hold up the others ---------------------------------------------------------


async def trickle_while_others_are_served(url: str) -> tuple[Reply, Tally]:
    head, body = notes_row_head_and_body()
    parts = [head] + [body[i : i + 1] for i in range(len(body))]
    interval = 3.0 / len(body)  # the whole body over ~3 s
    slow = Connection(url)
    try:
        others = fixed_rate(url, 50, 3.0, lambda _: traffic.notes_row(), connections=2)
        slow_reply, tally = await asyncio.gather(slow.request_in_parts(parts, interval), others)
    finally:
        await slow.close()
    return slow_reply, tally


def test_a_client_trickling_its_body_does_not_block_other_clients(model_dir: Path) -> None:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as server:
        slow_reply, others = asyncio.run(trickle_while_others_are_served(server.url))

    worst = max(others.latencies[200]) if 200 in others.latencies else float("nan")
    record(
        "slow_client",
        slow_request_s=slow_reply.seconds,
        slow_status=slow_reply.status,
        others=others.total,
        others_failed=others.failed,
        others_max_ms=worst * 1000,
    )
    assert slow_reply.status == 200
    assert slow_reply.seconds > 2.5
    assert others.failed == 0
    assert others.statuses[200] == 150
    # a request held up by the trickle would wait for the rest of it: up to its whole length
    assert worst < slow_reply.seconds / 2


# --- a client that stops sending its body is cut off, and its slot freed -------------------------------


async def stall_then_probe(url: str, stalled: int) -> tuple[list[int], list[Reply], float]:
    """`stalled` clients send headers and part of a body, then nothing; meanwhile /predict is tried."""
    head, body = notes_row_head_and_body()
    connections = [Connection(url) for _ in range(stalled)]
    started = time.monotonic()
    cut_off = [
        asyncio.create_task(connection.request_in_parts([head + body[:10]], 0.0, timeout=STALL_TIMEOUT))
        for connection in connections
    ]
    await asyncio.sleep(0.5)
    probe = Connection(url)
    statuses = []
    try:
        while time.monotonic() - started < STALL_TIMEOUT:
            statuses.append((await probe.request(traffic.notes_row().raw)).status)
            if statuses[-1] == 200:
                break
            await asyncio.sleep(0.5)
        replies = await asyncio.gather(*cut_off)
    finally:
        for connection in [*connections, probe]:
            await connection.close()
    return statuses, list(replies), time.monotonic() - started


def test_clients_that_stop_sending_their_body_are_cut_off_and_free_their_slots(model_dir: Path) -> None:
    max_in_flight = 3
    env = {"MODEL_DIR": str(model_dir), "WORKERS": "1", "MAX_IN_FLIGHT": str(max_in_flight)}
    with start_server(env) as server:
        statuses, replies, seconds = asyncio.run(stall_then_probe(server.url, max_in_flight))

    record(
        "stalled_body",
        stalled_clients=max_in_flight,
        cut_off_statuses=sorted({reply.status for reply in replies}),
        cut_off_after_s=max(reply.seconds for reply in replies),
        predict_statuses_meanwhile=sorted(set(statuses)),
        served_again_after_s=seconds,
    )
    assert statuses[0] == 503, "the stalled clients should hold every slot at first"
    assert statuses[-1] == 200
    # 408 is the server's cut-off: past STALL_TIMEOUT the client would have given up without one
    assert {reply.status for reply in replies} == {408}
    assert all(BODY_SECONDS <= reply.seconds < STALL_TIMEOUT for reply in replies)
