"""`mlkube release --image IMAGE --canary PERCENT`: a canary release on plain Kubernetes, judged by the pods'
own metrics, with no mesh and no Prometheus.

A second Deployment, `ml-model-canary`, runs the new image beside the stable `ml-model-deployment`. Its pods
carry the same `app: ml-model` label, so the Service sends them their share of the traffic by pod count,
plus `track: canary`, which only its own selector uses. The stable Deployment is not changed at all until
the promotion: its selector is immutable, and adding a `track: stable` label to its pod template would
itself roll every stable pod. Its pods are told apart by the `pod-template-hash` of its current
ReplicaSet, as the smoke test of a release does.

Each step sizes the canary from the stable Deployment's replicas, waits for it to roll out, then checks
every `interval`: each stable and canary pod's `/metrics` read through the API server's pod proxy, the
counts since the last check compared (success ratio, p99 latency, class shares). Too few requests hold the
step; `max_failures` failed checks abort. At the end the stable Deployment gets the image through the
normal release path (rollout, smoke test of each new pod, undo on failure). Whatever happens, an error, an
abort, Ctrl-C or SIGTERM, the canary Deployment is deleted before the command returns."""

from __future__ import annotations

import copy
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from mlkube.errors import ConfigError
from mlkube.kube import names
from mlkube.kube.errors import ClusterUnreachable, KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, ObjectList, Pod, decode
from mlkube.kube.pin import PinnedConfig, checked_digest, pin_config
from mlkube.kube.podmetrics import (
    MAX_METRICS_BYTES,
    Counts,
    increase,
    parse_counts,
    population_stability,
    total,
)
from mlkube.kube.release import Checks, release, version_from_image
from mlkube.kube.rollout import wait_for_rollout
from mlkube.kube.verify import current_template_hash, serving_pods

CANARY = "ml-model-canary"
TRACK = "track"
DEFAULT_STEPS = (10.0, 25.0, 50.0)


class CanaryAborted(KubeError):
    """The canary was judged worse than the stable pods (or never got traffic); it is removed."""


@dataclass(frozen=True)
class Thresholds:
    """When a check fails (Flagger's built-in checks and Argo Rollouts' analysis as defaults)."""

    min_success: float = 0.99
    max_p99: float = 0.5
    max_p99_ratio: float = 1.5
    latency_floor: float = 0.05
    """Below this p99 the ratio to the stable pods is not judged: at a few milliseconds the histogram's
    buckets and the scheduler's noise are as large as any difference."""
    max_psi: float = 0.2
    min_requests: int = 20


@dataclass(frozen=True)
class CanaryOptions:
    percent: float
    steps: tuple[float, ...] = DEFAULT_STEPS
    analysis: float | None = None
    """How long each step is judged; default: one check."""
    interval: float = 60.0
    max_failures: int = 2
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def checks_per_step(self) -> int:
        return max(1, round((self.analysis or self.interval) / self.interval))


@dataclass(frozen=True)
class Step:
    percent: float
    replicas: int
    stable: int

    @property
    def share(self) -> float:
        return self.replicas / (self.replicas + self.stable)


def canary_replicas(percent: float, stable: int) -> int:
    """Pods that give the canary `percent` of all pods beside `stable` ones, at least one."""
    return max(1, round(stable * percent / (100.0 - percent)))


def plan_steps(options: CanaryOptions, stable: int) -> list[Step]:
    """The steps up to `percent`, one per distinct canary pod count (two percentages that need the same
    number of pods are one step, named after the larger)."""
    if not 0 < options.percent < 100:
        raise ConfigError(f"--canary {options.percent:g}: the canary's share must be between 0 and 100 %")
    if stable < 1:
        raise KubeError(f"{names.DEPLOYMENT} runs no pod: a canary needs stable pods to be compared with")
    wanted = sorted({p for p in options.steps if 0 < p < options.percent} | {options.percent})
    steps: list[Step] = []
    for percent in wanted:
        replicas = canary_replicas(percent, stable)
        if steps and replicas == steps[-1].replicas:
            steps[-1] = Step(percent, replicas, stable)
        else:
            steps.append(Step(percent, replicas, stable))
    return steps


# --- judging one check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "pass", "fail" or "hold"
    reasons: tuple[str, ...]
    row: tuple[str, ...]


def judge(stable: Counts, canary: Counts, limits: Thresholds) -> Verdict:
    """Compare what the stable and the canary pods counted since the last check."""
    stable_success, canary_success = stable.success_ratio(), canary.success_ratio()
    stable_p99, canary_p99 = stable.p99(), canary.p99()
    psi = population_stability(stable.classes, canary.classes)
    row = (
        f"{stable.requests:.0f}/{canary.requests:.0f}",
        f"{_percent(stable_success)}/{_percent(canary_success)}",
        f"{_seconds(stable_p99)}/{_seconds(canary_p99)}",
        "-" if psi is None else f"{psi:.3f}",
    )
    if min(stable.requests, canary.requests) < limits.min_requests:
        few = f"fewer than {limits.min_requests} prediction requests on a side"
        return Verdict("hold", (few,), row)
    reasons: list[str] = []
    if canary_success is not None and canary_success < limits.min_success:
        reasons.append(f"success ratio {_percent(canary_success)} < {_percent(limits.min_success)}")
    if canary_p99 is not None and canary_p99 > limits.max_p99:
        reasons.append(f"p99 latency {_seconds(canary_p99)} > {_seconds(limits.max_p99)}")
    if (
        canary_p99 is not None
        and stable_p99 is not None
        and canary_p99 > limits.max_p99_ratio * max(stable_p99, limits.latency_floor)
    ):
        reasons.append(
            f"p99 latency {_seconds(canary_p99)} > {limits.max_p99_ratio:g}x the stable pods' "
            f"{_seconds(stable_p99)}"
        )
    if psi is not None and psi > limits.max_psi:
        reasons.append(
            f"prediction distribution shift: PSI {psi:.3f} > {limits.max_psi:g} "
            f"(class shares stable {_shares(stable.classes)}, canary {_shares(canary.classes)})"
        )
    return Verdict("fail" if reasons else "pass", tuple(reasons), row)


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def _shares(classes: dict[str, float]) -> str:
    whole = sum(classes.values()) or 1.0
    return " ".join(f"{name} {100 * count / whole:.0f}%" for name, count in sorted(classes.items()))


# --- reading the pods -------------------------------------------------------------------------------


class PodReader:
    """Each pod's counts through `kubectl get --raw .../pods/NAME:5000/proxy/metrics`, and what each
    pod counted since it was last read."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.namespace = kubectl.target.namespace or "default"
        self._last: dict[str, Counts] = {}
        self._shown = False

    def path(self, pod: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{names.PORT}/proxy/metrics"

    def since_last(self, pods: list[str]) -> Counts:
        """The sum of what `pods` counted since their last read (nothing for a pod read the first time)."""
        counted: list[Counts] = []
        for pod in pods:
            current = self._read(pod)
            if current is None:
                continue
            counted.append(increase(self._last.get(pod), current))
            self._last[pod] = current
        return total(counted)

    def _read(self, pod: str) -> Counts | None:
        note = None
        if not self._shown:
            self._shown = True
            note = "each pod's own metrics through the API server (RBAC: get pods/proxy), every check"
        try:
            completed = self.kubectl.run("get", "--raw", self.path(pod), quiet=note is None, note=note)
        except ClusterUnreachable:
            raise
        except KubeError as error:  # this pod went away, or its proxy failed: the others still count
            self.kubectl.out.warn(f"pod {pod}: metrics not read this time: {error}")
            return None
        if len(completed.stdout) > MAX_METRICS_BYTES:
            self.kubectl.out.warn(f"pod {pod}: metrics over {MAX_METRICS_BYTES} bytes, not read")
            return None
        try:
            return parse_counts(completed.stdout)
        except ValueError as error:
            self.kubectl.out.warn(f"pod {pod}: not Prometheus text ({error})")
            return None


# --- the run ----------------------------------------------------------------------------------------


def release_canary(
    kubectl: Kubectl, image: str, model_version: str | None, checks: Checks, options: CanaryOptions
) -> None:
    """Canary steps with analysis, then the normal release of `image` to the stable Deployment; or abort
    (CanaryAborted) with the stable Deployment untouched. The canary is deleted in every case."""
    version = model_version or version_from_image(image)
    if not version:
        raise ConfigError(f"cannot tell the model version from {image!r} (no tag): pass --model-version")
    kubectl = kubectl.pinned()
    out = kubectl.out
    if kubectl.dry_run:
        _dry_run(kubectl, image, version, options)
        return
    described = kubectl.run("get", f"deployment/{names.DEPLOYMENT}", "-o", "json").stdout
    stable_json, stable = decode(described, dict[str, Any]), decode(described, Deployment)
    if kubectl.find(Deployment, f"deployment/{CANARY}", quiet=True) is not None:
        raise KubeError(
            f"a canary Deployment {CANARY} exists already (another release in progress, or one killed): "
            f"remove it with `kubectl delete deployment/{CANARY}`"
        )
    steps = plan_steps(options, stable.desired)
    out.info(
        f"canary release of {image} (model {version}) beside {stable.desired} stable pod(s): "
        + " -> ".join(f"{s.replicas} pod(s) ({100 * s.share:.0f}%)" for s in steps)
        + f"; a check every {options.interval:g}s, {options.checks_per_step} passing check(s) per step"
    )
    run = _Run(image)
    with _always_removed(kubectl, run):
        manifest = canary_manifest(stable_json, image, version, steps[0].replicas)
        if checks.model_sha256:
            _pin(manifest, pin_config(kubectl, stable, checked_digest(checks.model_sha256)))
        _apply_canary(kubectl, manifest)
        failures = _Failures(options.max_failures)
        for number, step in enumerate(steps, start=1):
            if number > 1:
                kubectl.run("scale", f"deployment/{CANARY}", f"--replicas={step.replicas}")
            wait_for_rollout(kubectl, deadline=checks.deadline, poll=checks.poll, name=CANARY)
            out.info(
                f"step {number}/{len(steps)}: {step.replicas} canary pod(s) beside {step.stable} stable: "
                f"{100 * step.share:.0f}% of the pods, so of the Service's traffic (asked {step.percent:g}%)"
            )
            _analyse(kubectl, stable, options, failures)
        out.ok(f"the canary passed every step: promoting {image} to {names.DEPLOYMENT}")
        run.promoting = True
        release(kubectl, image, version, checks)


def canary_manifest(stable: dict[str, Any], image: str, version: str, replicas: int) -> dict[str, Any]:
    """The stable Deployment's spec (same config, key, probes, resources) with the new image, `replicas`
    pods and the `track: canary` label in its own selector and pod template."""
    spec = copy.deepcopy(stable["spec"])
    spec["replicas"] = replicas
    spec.pop("paused", None)
    selector = dict(spec.get("selector", {}).get("matchLabels", {}))
    spec["selector"] = {"matchLabels": {**selector, TRACK: "canary"}}
    template = spec.setdefault("template", {})
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**meta.get("labels", {}), TRACK: "canary"}
    for container in template.get("spec", {}).get("containers", []):
        if container.get("name") == names.CONTAINER:
            container["image"] = image
    labels = {**stable.get("metadata", {}).get("labels", {}), TRACK: "canary"}
    annotations = {
        names.MODEL_VERSION_ANNOTATION: version,
        names.CHANGE_CAUSE: f"mlkube release {image} (model {version}) --canary",
    }
    metadata = {"name": CANARY, "labels": labels, "annotations": annotations}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def _pin(manifest: dict[str, Any], pinned: PinnedConfig) -> None:
    """Point the canary at the pinned copy of the ConfigMap, as the promotion will the stable pods."""
    container = manifest["spec"]["template"]["spec"]["containers"][pinned.container]
    container["envFrom"][pinned.env_from]["configMapRef"]["name"] = pinned.name


def _apply_canary(kubectl: Kubectl, manifest: dict[str, Any]) -> None:
    replicas = manifest["spec"]["replicas"]
    note = f"{CANARY}: the stable spec, the new image, {replicas} pod(s), label {TRACK}=canary"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest), stdin_note=note)


@dataclass
class _Run:
    image: str
    promoting: bool = False

    def interrupted(self) -> str:
        said = f"interrupted: the canary {CANARY} is removed"
        if not self.promoting:
            return said + f"; {names.DEPLOYMENT} was not changed"
        return (
            f"{said}, but {names.DEPLOYMENT} may be rolling out {self.image} "
            "(`mlkube status`; `mlkube rollback` to undo)"
        )


@contextmanager
def _always_removed(kubectl: Kubectl, run: _Run) -> Iterator[None]:
    """Delete the canary however the block ends; SIGTERM ends it like Ctrl-C, and neither interrupts the
    deletion itself."""
    previous = signal.getsignal(signal.SIGTERM)
    handled = _on_main_thread()
    if handled:
        signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        kubectl.out.fail("interrupted")
    finally:
        with _signals_ignored(handled):
            _remove(kubectl)
        if handled:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if interrupted:
        raise CanaryAborted(run.interrupted())


def _remove(kubectl: Kubectl) -> None:
    try:
        kubectl.run(
            "delete",
            f"deployment/{CANARY}",
            "--ignore-not-found",
            "--wait=false",
            note="the canary goes, whatever happened",
        )
    except KubeError as error:
        kubectl.out.fail(f"the canary could not be removed: {error}: `kubectl delete deployment/{CANARY}`")
    else:
        kubectl.out.ok(f"the canary {CANARY} is removed")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _signals_ignored(handled: bool) -> Iterator[None]:
    if not handled:
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


class _Failures:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


def _analyse(kubectl: Kubectl, stable: Deployment, options: CanaryOptions, failures: _Failures) -> None:
    """Checks until the step has its passing checks; CanaryAborted at the failure limit, or when checks
    keep holding for want of traffic."""
    out = kubectl.out
    reader = PodReader(kubectl)
    needed = options.checks_per_step
    holds_allowed = max(3, 2 * needed)
    passed = held = 0
    noted = False
    _pods(kubectl, stable, reader)  # the baseline: each pod's counts so far
    out.info("  " + _ROW.format("check", "requests s/c", "success s/c", "p99 s/c", "PSI", "result"))
    number = 0
    while passed < needed:
        number += 1
        time.sleep(options.interval)
        stable_counts, canary_counts = _pods(kubectl, stable, reader)
        verdict = judge(stable_counts, canary_counts, options.thresholds)
        result = verdict.outcome + (f": {'; '.join(verdict.reasons)}" if verdict.outcome != "pass" else "")
        out.info("  " + _ROW.format(str(number), *verdict.row, result))
        if verdict.outcome != "hold" and not (stable_counts.classes or canary_counts.classes) and not noted:
            noted = True
            out.info(
                "  (no class counts on either side, as from a regressor: mlkube's metrics carry no "
                "quantiles of predicted values, so the prediction distribution is not compared)"
            )
        if verdict.outcome == "pass":
            passed += 1
        elif verdict.outcome == "hold":
            held += 1
            if held >= holds_allowed:
                raise CanaryAborted(
                    f"no data: {held} checks with {verdict.reasons[0]} (is traffic reaching the Service?); "
                    f"{names.DEPLOYMENT} was not changed"
                )
        else:
            failures.count += 1
            if failures.count >= failures.limit:
                raise CanaryAborted(
                    f"canary aborted after {failures.count} failed checks: {'; '.join(verdict.reasons)}; "
                    f"{names.DEPLOYMENT} was not changed"
                )


_ROW = "{:<6} {:<13} {:<14} {:<18} {:<6} {}"


def _pods(kubectl: Kubectl, stable: Deployment, reader: PodReader) -> tuple[Counts, Counts]:
    """What the stable pods (the current ReplicaSet's, by pod-template-hash) and the canary pods counted
    since the last read."""
    template_hash = current_template_hash(kubectl, stable)
    stable_pods = serving_pods(kubectl, stable.spec.selector.as_arg(), template_hash)
    canary_selector = ",".join(
        f"{k}={v}" for k, v in sorted({**stable.spec.selector.match_labels, TRACK: "canary"}.items())
    )
    listed = kubectl.get(ObjectList[Pod], "pods", "-l", canary_selector, quiet=True).items
    canary_pods = [p.metadata.name for p in listed if p.ready and not p.terminating]
    return reader.since_last(stable_pods), reader.since_last(canary_pods)


def _dry_run(kubectl: Kubectl, image: str, version: str, options: CanaryOptions) -> None:
    out = kubectl.out
    kubectl.run("get", f"deployment/{names.DEPLOYMENT}", "-o", "json")
    manifest = canary_manifest(
        {"spec": {"selector": {"matchLabels": {"app": "ml-model"}}}}, image, version, 1
    )
    _apply_canary(kubectl, manifest)
    wait_for_rollout(kubectl, deadline=180, name=CANARY)
    out.info(
        f"(dry run) then: each step's check every {options.interval:g}s on every pod's metrics "
        f"(kubectl get --raw /api/v1/namespaces/NS/pods/POD:{names.PORT}/proxy/metrics), "
        f"then `mlkube release --image {image}` and `kubectl delete deployment/{CANARY}`"
    )
