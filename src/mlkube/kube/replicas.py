"""Follow the Deployment's replica count (and the HPA's view) while load runs, printing each change."""

from __future__ import annotations

import threading
import time

from mlkube.kube import names
from mlkube.kube.errors import KubeError
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, HorizontalPodAutoscaler


class ReplicaWatch:
    """`start()` checks once (printing the commands) and returns False without a cluster; then a thread
    polls every `every` seconds and prints `replicas 2 -> 3` lines. `counts` keeps the sequence."""

    def __init__(self, kubectl: Kubectl, every: float = 5.0) -> None:
        self.kubectl = kubectl
        self.every = every
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._last: tuple[int, int] | None = None

    def start(self) -> bool:
        note = f"every {self.every:g}s while the load runs"
        try:
            self._poll(note=note)
        except KubeError as error:
            self.kubectl.out.warn(f"replica count not followed: {error}")
            return False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.kubectl.timeout + 1)

    def summary(self) -> str:
        if not self.counts:
            return "replicas: not followed"
        return "replicas: " + " -> ".join(str(count) for count in self.counts)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._poll()
            except KubeError as error:
                self.kubectl.out.warn(f"replica poll failed: {error}")

    def _poll(self, note: str | None = None) -> None:
        quiet = note is None
        deployment = self.kubectl.get(Deployment, f"deployment/{names.DEPLOYMENT}", quiet=quiet)
        hpa = self.kubectl.find(HorizontalPodAutoscaler, f"hpa/{names.HPA}", quiet=quiet)
        if note:
            self.kubectl.out.info(f"  (polled {note})")
        state = (deployment.desired, deployment.status.ready_replicas)
        if state == self._last:
            return
        elapsed = time.monotonic() - self._started
        previous = f"{self._last[0]} -> " if self._last else ""
        self._last = state
        if not self.counts or self.counts[-1] != state[0]:
            self.counts.append(state[0])
        self.kubectl.out.info(
            f"  {elapsed:5.0f}s  replicas {previous}{state[0]} ({state[1]} ready){_hpa(hpa)}"
        )


def _hpa(hpa: HorizontalPodAutoscaler | None) -> str:
    if hpa is None:
        return ""
    current = hpa.cpu_current()
    cpu = f"{current}%" if current is not None else "<unknown>"
    return f"; HPA CPU {cpu} of {hpa.cpu_target()}%, desired {hpa.status.desired_replicas}"
