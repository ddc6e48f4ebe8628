"""Servers as process trees: start, wait until ready, read CPU time and memory from /proc, stop.

CPU time is utime+stime of every live process in the tree (ticks of SC_CLK_TCK); memory is the sum of
`Rss` and `Pss` from each process's /proc/<pid>/smaps_rollup. Linux only, as the machine is.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    rss_mib: float
    pss_mib: float
    processes: int


def _stat_fields(pid: int, thread: int | None = None) -> list[str] | None:
    """Fields of /proc/<pid>/stat (or of one thread's, task/<thread>/stat) after the command name (which
    may hold spaces and parentheses)."""
    path = _PROC / str(pid) if thread is None else _PROC / str(pid) / "task" / str(thread)
    try:
        text = (path / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants, root first."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def tree_cpu_ticks(root: int) -> dict[int, int]:
    """utime+stime per live process of the tree, in clock ticks."""
    return _cpu_ticks(root, main_thread_only=False)


def main_thread_ticks(root: int) -> dict[int, int]:
    """utime+stime of each process's main thread (its task whose id is the pid), in clock ticks.

    In a granian worker the main thread runs Python: the event loop and the app. Its other threads are
    granian's (HTTP parsing and socket I/O in Rust), so the tree's CPU minus this is the server's own.
    """
    return _cpu_ticks(root, main_thread_only=True)


def _cpu_ticks(root: int, main_thread_only: bool) -> dict[int, int]:
    ticks: dict[int, int] = {}
    for pid in tree_pids(root):
        fields = _stat_fields(pid, pid if main_thread_only else None)
        if fields is not None:  # field 14/15 of stat are index 11/12 after the name
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_seconds(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, float]:
    """CPU seconds each process spent between two snapshots (processes present in `after`)."""
    return {pid: (ticks - before.get(pid, 0)) / CLOCK_TICKS for pid, ticks in after.items()}


def tree_memory(root: int) -> Memory:
    rss_kib = pss_kib = 0
    processes = 0
    for pid in tree_pids(root):
        try:
            lines = (_PROC / str(pid) / "smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        processes += 1
        for line in lines:
            key, _, rest = line.partition(":")
            if key == "Rss":
                rss_kib += int(rest.split()[0])
            elif key == "Pss":
                pss_kib += int(rest.split()[0])
    return Memory(rss_kib / 1024, pss_kib / 1024, processes)


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of established TCP connections whose local end is `port` (IPv4 and IPv6)."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(int(fields[9]))
    return inodes


def connections_per_process(root: int, port: int) -> dict[int, int]:
    """How many client connections on `port` each process of the tree holds open right now."""
    inodes = _established_inodes(port)
    counts: dict[int, int] = {}
    for pid in tree_pids(root):
        held = sum(
            1 for target in _fd_targets(pid) if target.startswith("socket:[") and int(target[8:-1]) in inodes
        )
        if held:
            counts[pid] = held
    return counts


def _fd_targets(pid: int) -> list[str]:
    targets = []
    try:
        descriptors = list((_PROC / str(pid) / "fd").iterdir())
    except OSError:
        return []
    for descriptor in descriptors:
        try:
            targets.append(str(descriptor.readlink()))
        except OSError:  # closed meanwhile
            continue
    return targets


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    values = [int(v) for v in (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal, steal


def busy_cores(seconds: float) -> float:
    """CPUs busy machine-wide over the next `seconds` (all of it someone else's while we only sleep)."""
    before, _ = machine_busy_ticks()
    started = time.perf_counter()
    time.sleep(seconds)
    after, _ = machine_busy_ticks()
    return (after - before) / CLOCK_TICKS / (time.perf_counter() - started)


def wait_until_quiet(limit_cores: float, max_wait: float) -> tuple[float, float]:
    """Wait (at most `max_wait` s) until other work keeps less than `limit_cores` busy for a second.

    Returns (the last busy reading, seconds waited). Other helpers' test runs share this machine.
    """
    started = time.perf_counter()
    while True:
        busy = busy_cores(1.0)
        waited = time.perf_counter() - started
        if busy <= limit_cores or waited >= max_wait:
            return busy, waited


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children (wrk runs as one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Drain(threading.Thread):
    """Reads a server's output pipe as a container runtime would: counts lines, keeps the last few."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = 0
        self.tail: deque[bytes] = deque(maxlen=20)
        self._partial = b""

    def run(self) -> None:
        read = self.stream.read1 if hasattr(self.stream, "read1") else self.stream.read
        while chunk := read(65536):
            self.lines += chunk.count(b"\n")
            pieces = (self._partial + chunk).split(b"\n")
            self._partial = pieces.pop()[-4096:]
            self.tail.extend(piece[-2000:] for piece in pieces[-20:])


class ServerProcess:
    """One server started in its own session, so that stopping it reaches every process it forked."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.command = list(command)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdout = _Drain(self.process.stdout)
        self.stderr = _Drain(self.process.stderr)
        self.stdout.start()
        self.stderr.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output_lines(self) -> int:
        return self.stdout.lines + self.stderr.lines

    def last_output(self) -> str:
        lines = [*self.stdout.tail, *self.stderr.tail]
        return "\n".join(line.decode(errors="replace") for line in lines[-20:])

    def wait_ready(self, port: int, path: str, timeout: float) -> float:
        """Seconds from spawn until GET `path` answers 200; raises if the server dies or times out."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command[0]} exited with {self.process.returncode} before it was ready:\n"
                    + self.last_output()
                )
            if _answers_200(port, path):
                return time.perf_counter() - self.started
            time.sleep(0.005)
        raise RuntimeError(f"not ready after {timeout:.0f} s: GET {path}\n" + self.last_output())

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for a graceful exit; SIGKILL this session's processes if it does not come."""
        session = self.process.pid
        forked = tree_pids(session)[1:]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(session, signal.SIGKILL)  # the leader is not reaped yet: the group is ours
        for pid in forked:  # children left behind by a leader that exited
            try:
                if os.getpgid(pid) == session:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        self.process.wait()
        self.stdout.join(5)
        self.stderr.join(5)
        return self.process.returncode


def _answers_200(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
