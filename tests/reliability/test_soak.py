"""Soak: a steady, modest load on one server with 2 workers for over a minute.

Every request must get its right answer, and the resident memory of the server and its workers must not
creep: it grows by less than 10% from the 10-second mark (warm) to the end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.reliability import traffic
from tests.reliability.loadgen import Planned, Tally, fixed_rate
from tests.reliability.procs import children, tree_rss_bytes
from tests.reliability.report import record
from tests.support import start_server

SOAK_SECONDS = 65.0
RATE = 400.0  # requests a second: steady, well under capacity, light on a shared 2-core machine
WARM_SECONDS = 10.0
MAX_GROWTH = 0.10


def soak_plan(ticket: int) -> Planned:
    """Mostly the notes' single row, with batches, probes and the odd scrape mixed in."""
    if ticket % 200 == 0:
        return traffic.METRICS
    return {1: traffic.batch(10), 2: traffic.HEALTH, 3: traffic.READY}.get(ticket % 10, traffic.notes_row())


async def soak(url: str, pid: int) -> tuple[Tally, list[tuple[float, int]]]:
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    done = asyncio.Event()

    async def sample_memory() -> None:
        while not done.is_set():
            samples.append((time.monotonic() - started, tree_rss_bytes(pid)))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_memory())
    tally = await fixed_rate(url, RATE, SOAK_SECONDS, soak_plan, connections=8)
    samples.append((time.monotonic() - started, tree_rss_bytes(pid)))
    done.set()
    await sampler
    return tally, samples


def test_soak_serves_every_request_and_memory_stays_flat(model_dir: Path) -> None:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "2"}) as server:
        workers = children(server.process.pid)
        assert len(workers) == 2
        tally, samples = asyncio.run(soak(server.url, server.process.pid))
        assert children(server.process.pid) == workers, "a worker was restarted during the soak"

    warm = next(rss for seconds, rss in samples if seconds >= WARM_SECONDS)
    end = samples[-1][1]
    growth = (end - warm) / warm
    record(
        "soak",
        seconds=SOAK_SECONDS,
        requests=tally.total,
        rate_per_s=tally.total / SOAK_SECONDS,
        failed=tally.failed,
        rss_at_10s_mib=warm / 2**20,
        rss_end_mib=end / 2**20,
        rss_max_mib=max(rss for _, rss in samples) / 2**20,
        rss_growth_pct=growth * 100,
        p50_ms=tally.percentile(200, 0.50) * 1000,
        p99_ms=tally.percentile(200, 0.99) * 1000,
    )
    assert tally.total == int(RATE * SOAK_SECONDS)
    assert tally.failed == 0, (tally.errors, tally.unexpected[:5])
    assert set(tally.statuses) == {200}
    assert growth < MAX_GROWTH, f"RSS grew {growth:.1%} from {warm} to {end} bytes"
