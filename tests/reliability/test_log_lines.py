"""Access-log lines stay whole on a shared pipe (issue 13 #9).

Two workers write their lines to the same stdout, a pipe in a container. A write of at most PIPE_BUF
(4,096 bytes) to a pipe is atomic; a longer one may be split and interleaved with the other worker's. With
60 KB paths each line was 60 KB, and 8 of 209 lines were spliced at 4,096 bytes. Now a client-chosen field
is cut (`logs.MAX_PATH_CHARS`), so every line is under PIPE_BUF and arrives whole.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.reliability.loadgen import Connection, build_request
from tests.reliability.report import record
from tests.support import free_port, server_env

PIPE_BUF = 4096
PATH_BYTES = 60_000
CLIENTS = 8
REQUESTS_PER_CLIENT = 40


def pipe_reader(stream: object, lines: list[bytes]) -> threading.Thread:
    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


async def long_paths(url: str, seed: int) -> int:
    rng = random.Random(seed)
    connection = Connection(url)
    answered = 0
    try:
        for _ in range(REQUESTS_PER_CLIENT):
            path = "/" + "".join(rng.choices(string.ascii_letters + '%"\\', k=PATH_BYTES))
            reply = await connection.request(build_request("GET", path))
            answered += reply.status == 404
    finally:
        await connection.close()
    return answered


async def all_clients(url: str) -> int:
    return sum(await asyncio.gather(*(long_paths(url, seed) for seed in range(CLIENTS))))


def wait_for_health(port: int, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not answer")


def test_every_access_line_arrives_whole_through_a_pipe(model_dir: Path) -> None:
    port = free_port()
    env = server_env({"MODEL_DIR": str(model_dir), "WORKERS": "2", "PORT": str(port)})
    process = subprocess.Popen(
        [sys.executable, "-m", "mlkube.server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[bytes] = []
    reader = pipe_reader(process.stdout, lines)
    try:
        wait_for_health(port, process)
        answered = asyncio.run(all_clients(f"http://127.0.0.1:{port}"))
        time.sleep(0.5)  # the workers flush their buffers every 0.1 s
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()

    parsed = []
    for line in lines:
        assert len(line) <= PIPE_BUF, f"a line of {len(line)} bytes"
        parsed.append(json.loads(line))  # a spliced line is not JSON
    access = [line for line in parsed if line.get("logger") == "mlkube.access" and line["status"] == 404]
    record(
        "log_lines", requests=CLIENTS * REQUESTS_PER_CLIENT, lines=len(lines), longest=max(map(len, lines))
    )
    assert answered == CLIENTS * REQUESTS_PER_CLIENT
    assert len(access) == answered
