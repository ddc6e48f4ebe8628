"""What the kernel knows about a server's processes: its worker PIDs and their resident memory (/proc)."""

from __future__ import annotations

import time
from pathlib import Path

_PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (granian's workers are children of the server process)."""
    found: list[int] = []
    for task in (_PROC / str(pid) / "task").iterdir():
        text = (task / "children").read_text()
        found += [int(child) for child in text.split()]
    return sorted(found)


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS line


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a server: the process and all its workers, added up."""
    total = 0
    for member in tree(pid):
        try:
            total += rss_bytes(member)
        except FileNotFoundError:
            continue  # exited between listing and reading
    return total


def wait_for_children(
    pid: int, count: int, timeout: float = 30, exclude: frozenset[int] = frozenset()
) -> list[int]:
    """Poll until `pid` has `count` children none of which is in `exclude`; return them."""
    deadline = time.monotonic() + timeout
    while True:
        current = children(pid)
        if len(current) == count and not exclude.intersection(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} has children {current}, wanted {count} new ones")
        time.sleep(0.05)
