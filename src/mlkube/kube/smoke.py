"""The smoke test: /ready, the notes' /predict payload, a batch; shapes and the reported version checked.

Works against any URL (a NodePort, a port-forward, a local `mlkube serve`); the exit code tells success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from mlkube.api.simple import BatchPrediction, Prediction, Readiness
from mlkube.kube.errors import SmokeFailed
from mlkube.kube.httpclient import HttpClient, Reply, TransportError, key_headers
from mlkube.kube.output import Output

NOTES_ROW = [5.1, 3.5, 1.4, 0.2]
"""The notes' curl payload (Quick Reference, step 4)."""
BATCH = [NOTES_ROW, [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeReport:
    url: str
    checks: list[Check] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)

    @property
    def transient(self) -> bool:
        """Failed only for want of an answer (no connection, 503 while starting or draining): worth
        asking again. A wrong answer (version, shape, 401) is not."""
        failed = [c for c in self.checks if not c.ok]
        return bool(failed) and all(
            c.detail.startswith(("no answer from", "503")) or c.detail == _NO_VERSION for c in failed
        )


def run_smoke(
    url: str, *, api_key: str | None = None, expect_version: str | None = None, timeout: float = 5.0
) -> SmokeReport:
    """Run every check (each independent of the others) and collect the versions the server reported."""
    report = SmokeReport(url)
    with HttpClient(url, timeout=timeout, headers=key_headers(api_key)) as client:
        report.checks.append(_check_ready(client, report))
        report.checks.append(_check_single(client, report))
        report.checks.append(_check_batch(client, report))
    report.checks.append(_check_version(report, expect_version))
    return report


def print_report(out: Output, report: SmokeReport) -> None:
    out.info(f"smoke test against {report.url}")
    for check in report.checks:
        (out.ok if check.ok else out.fail)(f"{check.name}: {check.detail}")


def smoke(
    out: Output,
    url: str,
    *,
    api_key: str | None = None,
    expect_version: str | None = None,
    timeout: float = 5.0,
) -> SmokeReport:
    """Run, print, and raise SmokeFailed naming the failed checks."""
    report = run_smoke(url, api_key=api_key, expect_version=expect_version, timeout=timeout)
    print_report(out, report)
    if not report.ok:
        raise SmokeFailed(f"smoke test failed against {url}: {report.failures()}")
    return report


def wait_until_answers(
    url: str, *, api_key: str | None, expect_version: str | None, deadline: float, poll: float = 1.0
) -> SmokeReport:
    """Repeat the smoke test while it fails for want of an answer, until `deadline` seconds pass; the last
    report either way (a wrong answer is returned at once)."""
    started = time.monotonic()
    while True:
        report = run_smoke(url, api_key=api_key, expect_version=expect_version)
        if report.ok or not report.transient or time.monotonic() - started >= deadline:
            return report
        time.sleep(poll)


def _check_ready(client: HttpClient, report: SmokeReport) -> Check:
    name = "GET /ready"
    reply = _call(client, "GET", "/ready", None)
    if isinstance(reply, str):
        return Check(name, False, reply)
    try:
        body = msgspec.json.decode(reply.body, type=Readiness)
    except msgspec.DecodeError:
        return Check(name, False, f"{reply.status}, not the readiness JSON: {reply.text()!r}")
    if reply.status != 200 or body.status != "ready":
        return Check(name, False, f"{reply.status} {body.status}: {body.reason or 'no reason given'}")
    if body.version:
        report.versions.add(body.version)
    return Check(name, True, f"ready: model {body.model} {body.version} ({body.runtime})")


def _check_single(client: HttpClient, report: SmokeReport) -> Check:
    name = "POST /predict (the notes' row)"
    reply = _call(client, "POST", "/predict", {"features": NOTES_ROW})
    if isinstance(reply, str):
        return Check(name, False, reply)
    try:
        answer = msgspec.json.decode(reply.body, type=Prediction)
    except msgspec.DecodeError as error:
        return Check(name, False, f"wrong answer shape ({error}): {reply.text()!r}")
    shape = _shape_problem(answer)
    if shape:
        return Check(name, False, shape)
    report.versions.add(answer.version)
    return Check(name, True, f"{answer.class_name} ({answer.prediction}), confidence {answer.confidence:.2f}")


def _check_batch(client: HttpClient, report: SmokeReport) -> Check:
    name = f"POST /predict (batch of {len(BATCH)})"
    reply = _call(client, "POST", "/predict", {"instances": BATCH})
    if isinstance(reply, str):
        return Check(name, False, reply)
    try:
        answer = msgspec.json.decode(reply.body, type=BatchPrediction)
    except msgspec.DecodeError as error:
        return Check(name, False, f"wrong answer shape ({error}): {reply.text()!r}")
    if len(answer.predictions) != len(BATCH):
        return Check(name, False, f"{len(answer.predictions)} predictions for {len(BATCH)} rows")
    shapes = [problem for item in answer.predictions if (problem := _shape_problem(item))]
    if shapes:
        return Check(name, False, shapes[0])
    report.versions.update(item.version for item in answer.predictions)
    return Check(name, True, ", ".join(item.class_name for item in answer.predictions))


_NO_VERSION = "no answer reported a version"


def _check_version(report: SmokeReport, expected: str | None) -> Check:
    name = "reported version"
    seen = sorted(report.versions)
    if not seen:
        return Check(name, False, _NO_VERSION)
    if len(seen) > 1:
        return Check(name, False, f"answers report different versions: {', '.join(seen)}")
    if expected is not None and seen[0] != expected:
        return Check(name, False, f"{seen[0]!r}, expected {expected!r}")
    return Check(name, True, seen[0] + ("" if expected is None else " as expected"))


def _call(client: HttpClient, method: str, path: str, payload: object) -> Reply | str:
    """The reply, or what went wrong in words. /ready's 503 is a reply: its body says why."""
    try:
        reply = client.get(path) if method == "GET" else client.post_json(path, payload)
    except TransportError as error:
        return f"no answer from {client.base_url}: {error or type(error).__name__}"
    if reply.status == 401:
        return "401: the service wants an API key (pass --api-key-file FILE or set MLKUBE_API_KEY)"
    if reply.status != 200 and path != "/ready":
        return f"{reply.status}: {reply.text()}"
    return reply


def _shape_problem(answer: Prediction) -> str | None:
    if not 0.0 <= answer.confidence <= 1.0:
        return f"confidence {answer.confidence} is outside [0, 1]"
    if not answer.class_name:
        return "empty class_name"
    if not answer.version:
        return "empty version"
    return None
