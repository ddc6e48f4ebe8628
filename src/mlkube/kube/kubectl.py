"""`Kubectl`: the one way mlkube talks to a cluster. Builds argv, prints it, parses `-o json`, and turns
failures into one line: kubectl missing, no cluster, unknown context, object not found."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from mlkube.kube.errors import ClusterUnreachable, KubeError, ObjectNotFound, WrongContext
from mlkube.kube.objects import decode
from mlkube.kube.output import Output
from mlkube.kube.runner import Completed, Runner, shorten

T = TypeVar("T")

INSTALL_HINT = "install it (https://kubernetes.io/docs/tasks/tools/) or use `minikube kubectl --`"
_UNREACHABLE = (
    "connection refused",
    "was refused",
    "unable to connect to the server",
    "dial tcp",
    "i/o timeout",
    "no such host",
    "tls handshake timeout",
    "no route to host",
    "connection reset",
)
_UNKNOWN_CONTEXT = re.compile(
    r"context was not found for specified context: (\S+)|context \"([^\"]+)\" does not exist"
    r"|cannot locate context (\S+)"
)
_NOT_FOUND = re.compile(r"\(NotFound\)")
_NO_CONTEXT = ("current-context is not set", "no configuration has been provided")


@dataclass(frozen=True)
class Target:
    """Which cluster and namespace: `--context`/`--namespace` on every command, or kubectl's defaults."""

    context: str | None = None
    namespace: str | None = None


class Kubectl(Runner):
    def __init__(
        self, out: Output, target: Target | None = None, *, dry_run: bool = False, timeout: float = 30.0
    ) -> None:
        super().__init__("kubectl", out, dry_run=dry_run, timeout=timeout, install_hint=INSTALL_HINT)
        self.target = target or Target()

    def in_namespace(self, namespace: str) -> Kubectl:
        """The same runner aimed at another namespace."""
        target = Target(self.target.context, namespace)
        return Kubectl(self.out, target, dry_run=self.dry_run, timeout=self.timeout)

    def prefix(self) -> list[str]:
        flags: list[str] = []
        if self.target.context:
            flags += ["--context", self.target.context]
        if self.target.namespace:
            flags += ["--namespace", self.target.namespace]
        return flags

    def get(self, kind: type[T], resource: str, *args: str, quiet: bool = False) -> T:
        """`kubectl get <resource> ... -o json`, parsed into `kind`."""
        completed = self.run("get", resource, *args, "-o", "json", quiet=quiet)
        return decode(completed.stdout, kind)

    def find(self, kind: type[T], resource: str, *args: str, quiet: bool = False) -> T | None:
        """Like `get`, but None when the object does not exist (`--ignore-not-found`)."""
        completed = self.run("get", resource, *args, "-o", "json", "--ignore-not-found", quiet=quiet)
        if not completed.stdout.strip():
            return None
        return decode(completed.stdout, kind)

    def current_context(self) -> str:
        """The context commands go to: `--context`, else kubectl's current-context."""
        if self.target.context:
            return self.target.context
        completed = self.run("config", "current-context", quiet=True, check=False)
        name = completed.stdout.strip()
        if completed.returncode != 0 or not name:
            raise ClusterUnreachable(
                "kubectl has no current context: start a cluster (`minikube start`) or pass --context"
            )
        return name

    def pinned(self) -> Kubectl:
        """The same runner with the context and namespace resolved now and passed on every later call, so
        that switching context in another terminal cannot send a step (a rollback!) to another cluster.
        A dry run stays as it is: it talks to no cluster."""
        if self.dry_run or (self.target.context and self.target.namespace):
            return self
        context = self.current_context()
        namespace = self.target.namespace or self.context_namespace(context)
        return Kubectl(self.out, Target(context, namespace), dry_run=self.dry_run, timeout=self.timeout)

    def context_namespace(self, context: str) -> str:
        """The namespace a context defaults to (`default` when it names none)."""
        which = [] if self.target.context else ["--context", context]
        completed = self.run("config", "view", "--minify", *which, "-o", "jsonpath={..namespace}", quiet=True)
        return completed.stdout.strip() or "default"

    def contexts(self) -> list[str]:
        completed = self.run("config", "get-contexts", "-o", "name", quiet=True, check=False)
        return completed.stdout.split()

    def failure(self, completed: Completed) -> KubeError:
        return self.classify(completed)

    def timed_out(self, argv: Sequence[str], seconds: float) -> KubeError:
        return ClusterUnreachable(
            f"`{shorten(self._without_prefix(argv))}` got no answer within {seconds:g}s: "
            f"{self._where()} is not answering (is it running? `minikube status`)"
        )

    def classify(self, completed: Completed) -> KubeError:
        """One line that says what is wrong, from kubectl's stderr."""
        text = completed.stderr.lower()
        line = completed.error_line()
        unknown = _UNKNOWN_CONTEXT.search(completed.stderr)
        if unknown:
            name = unknown.group(1) or unknown.group(2) or unknown.group(3)
            known = ", ".join(self.contexts()) or "none"
            return WrongContext(
                f"kubectl context {name!r} does not exist (contexts in your kubeconfig: {known})"
            )
        if any(marker in text for marker in _NO_CONTEXT):
            return ClusterUnreachable(
                "kubectl has no current context: start a cluster (`minikube start`) or pass --context"
            )
        if any(marker in text for marker in _UNREACHABLE):
            return ClusterUnreachable(
                f"cannot reach {self._where()}: {line} (is it running? `minikube status` / `minikube start`)"
            )
        if _NOT_FOUND.search(completed.stderr):
            return ObjectNotFound(
                f"{line.removeprefix('Error from server (NotFound): ')}{self._in_namespace()}"
            )
        return KubeError(f"`{shorten(self._without_prefix(completed.argv))}` failed: {line}")

    def _where(self) -> str:
        if self.target.context:
            return f"the cluster of context {self.target.context!r}"
        completed = self.run("config", "current-context", quiet=True, check=False)
        name = completed.stdout.strip()
        return f"the cluster of context {name!r}" if name else "a cluster (kubectl has no current context)"

    def _in_namespace(self) -> str:
        return f" in namespace {self.target.namespace!r}" if self.target.namespace else ""

    def _without_prefix(self, argv: Sequence[str]) -> list[str]:
        return [argv[0], *argv[1 + len(self.prefix()) :]]
