"""1,000 malformed requests of every kind, interleaved with good ones, on one 2-worker server.

Every bad request gets its own 4xx and a JSON error, every good one its 200, and no worker is restarted
(their PIDs are the same before and after). The kinds: every bad body of the API tests, plus the limits,
media type, routing, method and auth failures of the core contract.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.reliability import traffic
from tests.reliability.loadgen import Planned, build_request, fixed_rate
from tests.reliability.procs import children
from tests.reliability.report import record
from tests.support import BAD_BODIES, NOTES_ROW, start_server

KEY = "reliability-key-7Tq"
BAD_REQUESTS = 1000
LIMITS = {"MAX_BODY_BYTES": "4096", "MAX_BATCH_SIZE": "10"}


def chunked(path: str, chunks: list[bytes], key: str) -> bytes:
    head = build_request("POST", path, headers=[traffic.JSON_TYPE, ("X-API-Key", key)])
    head = head.replace(b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n")
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks) + b"0\r\n\r\n"
    return head + body


def bad_kinds() -> list[Planned]:
    """Every malformed request of the core contract, each with the status and message it must get."""
    kinds = [
        traffic.predict(body, status, message.encode(), str(param.id), KEY)
        for param in BAD_BODIES
        for body, status, message in [param.values]
        if isinstance(body, bytes) and isinstance(status, int) and isinstance(message, str)
    ]
    eleven_rows = json.dumps({"instances": [NOTES_ROW] * 11}).encode()
    key = [("X-API-Key", KEY)]
    kinds += [
        traffic.predict(eleven_rows, 422, b"MAX_BATCH_SIZE=10", "batch-over-limit", KEY),
        traffic.predict(b" " * 5000, 413, b"MAX_BODY_BYTES=4096", "body-over-limit", KEY),
        Planned(
            chunked("/predict", [b" " * 2000] * 3, KEY), 413, b"MAX_BODY_BYTES=4096", "chunked-over-limit"
        ),
        Planned(
            build_request("POST", "/predict", b"features=1,2,3,4", [("Content-Type", "text/plain"), *key]),
            415,
            b"application/json",
            "wrong-media-type",
        ),
        Planned(
            build_request("POST", "/predictions", b"{}", key), 404, b"no route POST /predictions", "no-route"
        ),
        Planned(build_request("GET", "/predict", headers=key), 405, b"not allowed", "wrong-method"),
        Planned(build_request("DELETE", "/health"), 405, b"not allowed", "delete-health"),
        traffic.predict(json.dumps({"features": NOTES_ROW}).encode(), 401, b"missing API key", "no-key"),
        traffic.predict(
            json.dumps({"features": NOTES_ROW}).encode(), 401, b"invalid API key", "wrong-key", "x"
        ),
    ]
    assert len(kinds) == len(BAD_BODIES) + 9
    return kinds


def test_a_thousand_malformed_requests_get_their_4xx_and_restart_no_worker(model_dir: Path) -> None:
    kinds = bad_kinds()
    good = traffic.notes_row(KEY)

    def plan(ticket: int) -> Planned:
        return kinds[(ticket // 2) % len(kinds)] if ticket % 2 else good

    env = {"MODEL_DIR": str(model_dir), "WORKERS": "2", "API_KEY": KEY, **LIMITS}
    with start_server(env) as server:
        workers = children(server.process.pid)
        tally = asyncio.run(fixed_rate(server.url, 1000, 2 * BAD_REQUESTS / 1000, plan, connections=4))
        replaced = sorted(set(workers) - set(children(server.process.pid)))
        assert server.client.get("/ready").status_code == 200
        errors = [line for line in server.log_lines() if '"level":"ERROR"' in line or "Traceback" in line]

    bad = sum(count for status, count in tally.statuses.items() if 400 <= status < 500)
    record(
        "malformed",
        kinds=len(kinds),
        bad_requests=bad,
        good_requests=tally.statuses[200],
        statuses=dict(sorted(tally.statuses.items())),
        failed=tally.failed,
        workers_replaced=len(replaced),
    )
    assert tally.failed == 0, (tally.errors, tally.unexpected[:5])
    assert bad == BAD_REQUESTS
    assert tally.statuses[200] == BAD_REQUESTS
    assert replaced == [], f"workers {replaced} were restarted"
    assert errors == []
