"""Run one external tool (kubectl, docker, minikube...): print the command, honour --dry-run, time it out.

Commands are argv lists, never shell strings; secrets travel on stdin, never in argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlkube.kube.errors import KubeError, ToolMissing
from mlkube.kube.output import Output

_KLOG = re.compile(r"^[IWEF]\d{4} \d")


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The line of stderr that says what went wrong (Go's klog noise such as `E1128 ...` skipped)."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        plain = [line for line in lines if not _KLOG.match(line)]
        if plain:
            return plain[-1]
        return lines[-1] if lines else f"exit status {self.returncode}"


class Runner:
    """One tool. `prefix` goes after the tool name on every call (kubectl's --context/--namespace)."""

    def __init__(
        self,
        tool: str,
        out: Output,
        *,
        dry_run: bool = False,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        install_hint: str = "",
    ) -> None:
        self.tool = tool
        self.out = out
        self.dry_run = dry_run
        self.timeout = timeout
        self.env = dict(env) if env is not None else None
        self.install_hint = install_hint

    def prefix(self) -> list[str]:
        return []

    def argv(self, *args: str) -> list[str]:
        """The command as printed and run (the tool by name; PATH resolves it)."""
        return [self.tool, *self.prefix(), *args]

    def available(self) -> bool:
        return shutil.which(self.tool, path=self._environ().get("PATH")) is not None

    def executable(self) -> str:
        found = shutil.which(self.tool, path=self._environ().get("PATH"))
        if found is None:
            hint = f": {self.install_hint}" if self.install_hint else ""
            raise ToolMissing(f"{self.tool} not found on PATH{hint}")
        return found

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        stdin_note: str | None = None,
        timeout: float | None = None,
        quiet: bool = False,
        check: bool = True,
        note: str | None = None,
    ) -> Completed:
        """Run and capture. `stdin_note` is what the printed command shows for `stdin` (never the data)."""
        argv = self.argv(*args)
        if self.dry_run:
            self.out.dry_run_notice()
        if not quiet or self.dry_run:
            self.out.command(argv, stdin=stdin_note if stdin is not None else None, note=note)
        if self.dry_run:
            return Completed(argv, 0, "", "")
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.run(
                [self.executable(), *argv[1:]],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,  # never wait on a prompt
                capture_output=True,
                text=True,
                timeout=limit,
                env=self._environ(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise self.timed_out(argv, limit) from None
        completed = Completed(argv, proc.returncode, proc.stdout, proc.stderr)
        if check and completed.returncode != 0:
            raise self.failure(completed)
        return completed

    def stream(self, *args: str, note: str | None = None) -> None:
        """Run with the tool's own output on the terminal (a build's progress); fail on non-zero exit."""
        argv = self.argv(*args)
        if self.dry_run:
            self.out.dry_run_notice()
        self.out.command(argv, note=note)
        if self.dry_run:
            return
        executable = self.executable()
        code = subprocess.run(
            [executable, *argv[1:]], stdin=subprocess.DEVNULL, env=self._environ(), check=False
        ).returncode
        if code != 0:
            raise KubeError(f"`{' '.join(argv[:2])}` failed with exit status {code}: see its output above")

    def popen(
        self, *args: str, stderr_path: str, capture_stdout: bool = False, note: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running command (port-forward); stderr goes to a file, stdout to a pipe or nowhere."""
        argv = self.argv(*args)
        self.out.command(argv, note=note)
        executable = self.executable()
        with open(stderr_path, "wb") as errors:  # noqa: PTH123 - the child keeps its own descriptor
            return subprocess.Popen(
                [executable, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                stderr=errors,
                env=self._environ(),
            )

    def failure(self, completed: Completed) -> KubeError:
        return KubeError(f"`{shorten(completed.argv)}` failed: {completed.error_line()}")

    def timed_out(self, argv: Sequence[str], seconds: float) -> KubeError:
        return KubeError(f"`{shorten(argv)}` did not finish within {seconds:g}s")

    def _environ(self) -> dict[str, str]:
        return {**os.environ, **(self.env or {})}


def shorten(argv: Sequence[str], words: int = 4) -> str:
    """`kubectl get deployment ml-model-deployment ...`: enough to recognise the command."""
    shown = " ".join(argv[:words])
    return shown + (" ..." if len(argv) > words else "")
