"""FakeKubectl: a test double for kubectl (and, scripted the same way, docker, podman, minikube and kind).

Two halves in one file:
- run as a program (`python fake_kubectl.py <tool> <args...>`, through a wrapper named like the tool that a
  fixture puts first on PATH), it records the call as a JSON line and plays back the first scripted reply
  whose words appear, in order, in its argv. Replies are scripted per cluster "phase"; a rule may move the
  cluster to another phase (e.g. `rollout undo` → "undone"), so a scenario reads like a story.
- imported by the tests, `FakeKubectl` writes the scenario, installs the wrappers and reads the calls back.

A reply may also `forward_to` a host:port: the fake then behaves like `kubectl port-forward`, listening on
the local port from its argv and relaying bytes to that address (a real server in the tests) until killed.
A reply may instead `proxy_to` a host:port: the fake then answers `kubectl get --raw
/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH` as the API server's pod proxy does, with the body of a GET
of PATH on that address (a real server in the tests).
Only the standard library is imported: every call is a new process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_DIR = "FAKE_KUBECTL_DIR"
_RECORDED_ENV = ("DOCKER_", "MINIKUBE_", "KUBECONFIG")
_GLOBAL_FLAGS = ("--context", "--namespace")


# ------------------------------------------------------------------------------------------------
# The test side


@dataclass(frozen=True)
class Call:
    tool: str
    argv: list[str]
    stdin: str
    phase: str
    env: dict[str, str]

    @property
    def line(self) -> str:
        return " ".join([self.tool, *self.argv])

    @property
    def command(self) -> list[str]:
        """argv without kubectl's leading global flags (--context X, --namespace X): `get pods ...`."""
        args = list(self.argv)
        while len(args) >= 2 and args[0] in _GLOBAL_FLAGS:
            args = args[2:]
        return args


class FakeKubectl:
    """Scenario writer and call reader for one test. `on(...)` adds a rule; `calls()` reads the log."""

    def __init__(self, folder: Path, tools: Sequence[str] = ("kubectl",)) -> None:
        self.folder = folder
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.rules: list[dict[str, Any]] = []
        self.start_phase = "start"
        for tool in tools:
            self.install(tool)
        self._save()

    def install(self, tool: str) -> None:
        wrapper = self.bin / tool
        wrapper.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {tool} "$@"\n', encoding="utf-8"
        )
        wrapper.chmod(0o755)

    def on(
        self,
        *words: str,
        reply: dict[str, Any] | None = None,
        replies: list[dict[str, Any]] | None = None,
        phase: str | None = None,
        then: str | None = None,
        tool: str = "kubectl",
    ) -> FakeKubectl:
        """When a `tool` call's argv contains `words` in order (in `phase`, or any phase), answer with the
        next of `replies` (the last one repeats) and move to phase `then`."""
        scripted = replies if replies is not None else [reply or {}]
        self.rules.append(
            {"tool": tool, "words": list(words), "phase": phase, "replies": scripted, "then": then}
        )
        self._save()
        return self

    def calls(self, tool: str | None = None) -> list[Call]:
        log = self.folder / "calls.jsonl"
        if not log.exists():
            return []
        found = [Call(**json.loads(line)) for line in log.read_text(encoding="utf-8").splitlines()]
        return [call for call in found if tool is None or call.tool == tool]

    def lines(self, tool: str | None = None) -> list[str]:
        return [call.line for call in self.calls(tool)]

    def environ(self) -> dict[str, str]:
        """PATH with the fakes first and the scenario folder, for a subprocess or monkeypatch."""
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", ENV_DIR: str(self.folder)}

    def _save(self) -> None:
        scenario = {"phase": self.start_phase, "rules": self.rules}
        (self.folder / "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")


def reply_json(obj: object, **extra: Any) -> dict[str, Any]:
    return {"stdout": json.dumps(obj), **extra}


# ------------------------------------------------------------------------------------------------
# The program side


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _matches(words: list[str], argv: list[str]) -> bool:
    position = 0
    for word in words:
        try:
            position = argv.index(word, position) + 1
        except ValueError:
            return False
    return True


def _choose(folder: Path, tool: str, argv: list[str], stdin: str) -> dict[str, Any]:
    with _locked(folder):
        scenario = json.loads((folder / "scenario.json").read_text(encoding="utf-8"))
        state_path = folder / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {"phase": scenario["phase"]}
        phase = state["phase"]
        env = {k: v for k, v in os.environ.items() if k.startswith(_RECORDED_ENV)}
        call = {"tool": tool, "argv": argv, "stdin": stdin, "phase": phase, "env": env}
        with (folder / "calls.jsonl").open("a", encoding="utf-8") as log:
            log.write(json.dumps(call) + "\n")
        for index, rule in enumerate(scenario["rules"]):
            if (
                rule["tool"] != tool
                or rule["phase"] not in (None, phase)
                or not _matches(rule["words"], argv)
            ):
                continue
            seen = int(state.setdefault("counts", {}).get(str(index), 0))
            state["counts"][str(index)] = seen + 1
            if rule["then"]:
                state["phase"] = rule["then"]
            state_path.write_text(json.dumps(state))
            replies: list[dict[str, Any]] = rule["replies"]
            chosen: dict[str, Any] = replies[min(seen, len(replies) - 1)]
            return chosen
    return {
        "stderr": f"FakeKubectl: no scripted reply for `{tool} {' '.join(argv)}` in phase {phase!r}\n",
        "exit": 97,
    }


def _relay(source: Any, target: Any) -> None:
    import socket

    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _forward(argv: list[str], forward_to: str) -> int:
    """Act like `kubectl port-forward TARGET LOCAL:REMOTE`: relay 127.0.0.1:LOCAL to `forward_to`."""
    import signal
    import socket
    import threading

    local = next(int(word.split(":")[0]) for word in argv if ":" in word and word.split(":")[0].isdigit())
    host, port = forward_to.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", local))
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"Forwarding from 127.0.0.1:{local} -> {port}", flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection((host, int(port)))
        threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_relay, args=(upstream, client), daemon=True).start()


def _proxy(argv: list[str], proxy_to: str) -> int:
    """Act like the API server's pod proxy behind `kubectl get --raw .../proxy/PATH`: GET PATH there."""
    import urllib.error
    import urllib.request

    raw = argv[argv.index("--raw") + 1]
    path = raw.split("/proxy", 1)[1] or "/"
    try:
        with urllib.request.urlopen(f"http://{proxy_to}{path}", timeout=10) as answer:
            sys.stdout.write(answer.read().decode("utf-8"))
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"Error from server (ServiceUnavailable): the pod proxy failed: {error}\n")
        return 1
    return 0


def main(argv: list[str]) -> int:
    folder = Path(os.environ[ENV_DIR])
    tool, args = argv[0], argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    reply = _choose(folder, tool, args, stdin)
    time.sleep(float(reply.get("sleep", 0)))
    if "forward_to" in reply:
        return _forward(args, str(reply["forward_to"]))
    if "proxy_to" in reply:
        return _proxy(args, str(reply["proxy_to"]))
    sys.stdout.write(str(reply.get("stdout", "")))
    sys.stderr.write(str(reply.get("stderr", "")))
    return int(reply.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
