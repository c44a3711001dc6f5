"""A recorded history of what a hub saw, and the checks the fault tests run on it.

Every fault test consumes its hub through :class:`History`, which records each frame
(port, server id, sequence number, sender timestamp, hub arrival on the monotonic clock)
and each liveness event, then asserts the issue's numbers from that record.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional

from netgear import RecvTimeout


@dataclass(frozen=True)
class Seen:
    port: int
    server_id: str
    seq: int
    sent_at: float  # sender's wall clock
    received_at: float  # hub's wall clock
    at: float  # hub-side monotonic arrival
    index: Optional[int]  # the "i" of the message, when the server sends one


class History:
    """Consumes ``hub`` (``run``) and records frames and liveness events."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.frames: Dict[int, List[Seen]] = defaultdict(list)
        self.events: list = []

    # ------------------------------------------------------------------ recording
    def poll(self, timeout: float = 0.05) -> None:
        try:
            packet = self.hub.recv_packet(timeout=timeout)
        except RecvTimeout:
            packet = None
        if packet is not None:
            message = packet.message if isinstance(packet.message, dict) else {}
            self.frames[packet.port].append(Seen(packet.port, packet.server_id, packet.seq, packet.sent_at,
                                                 packet.received_at, time.monotonic(), message.get("i")))
        self.events += self.hub.pop_events()

    def run(self, until: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
        """Consume until ``until()`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.poll()

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.run(lambda: time.monotonic() >= end, seconds + 5, f"{seconds}s of streaming")

    # ------------------------------------------------------------------ queries
    def count(self, port: int, after: float = 0.0) -> int:
        return sum(1 for s in self.frames[port] if s.at >= after)

    def first_frame(self, port: int, after: float = 0.0) -> Optional[Seen]:
        return next((s for s in self.frames[port] if s.at >= after), None)

    def first(self, kind: str, port: Optional[int] = None, after: float = 0.0):
        return next((e for e in self.events if e.kind == kind and (port is None or e.port == port) and e.at >= after), None)

    def kinds(self, port: int) -> List[str]:
        return [e.kind for e in self.events if e.port == port]

    # ------------------------------------------------------------------ checks
    def max_gap(self, port: int, start: float, end: float) -> float:
        """The longest time without a frame from ``port`` in [start, end] (edges included)."""
        times = [s.at for s in self.frames[port] if start <= s.at <= end]
        marks = [start, *times, end]
        return max(b - a for a, b in zip(marks, marks[1:]))

    def assert_steady(self, ports: Iterable[int], start: float, end: float, fps: float, max_gap: float,
                      min_ratio: float = 0.9) -> None:
        """Each port delivered ≥ ``min_ratio`` of ``fps`` over [start, end], never silent > ``max_gap``."""
        for port in ports:
            got = sum(1 for s in self.frames[port] if start <= s.at <= end)
            want = (end - start) * fps * min_ratio
            assert got >= want, f"port {port}: {got} frames in {end - start:.1f}s, want ≥ {want:.0f}"
            gap = self.max_gap(port, start, end)
            assert gap <= max_gap, f"port {port}: {gap * 1000:.0f} ms without a frame (bound {max_gap * 1000:.0f} ms)"

    def assert_in_order(self, port: int) -> None:
        """Sequence numbers of one server session only grow (no replay, no reordering)."""
        by_session: Dict[str, List[int]] = defaultdict(list)
        for s in self.frames[port]:
            by_session[s.server_id].append(s.seq)
        for sid, seqs in by_session.items():
            assert all(a < b for a, b in zip(seqs, seqs[1:])), f"port {port} ({sid}): sequence went backwards"

    def assert_alternating(self, port: int, cycles: Optional[int] = None) -> None:
        """After ``joined``, the port's events strictly alternate ``left``/``returned``."""
        kinds = [k for k in self.kinds(port) if k in ("joined", "left", "returned")]
        assert kinds and kinds[0] == "joined", f"port {port}: events {kinds}"
        rest = kinds[1:]
        want = ["left" if i % 2 == 0 else "returned" for i in range(len(rest))]
        assert rest == want, f"port {port}: events {kinds}"
        if cycles is not None:
            detail = [(e.kind, e.reason, round(e.at, 3)) for e in self.events if e.port == port]
            assert rest.count("left") == cycles and rest.count("returned") == cycles, f"port {port}: events {detail}"


class Reports:
    """What the processes put on their queue, by kind and name (an "error" report fails)."""

    def __init__(self, queue) -> None:
        self.queue = queue
        self.items: dict = {}

    def wait(self, kind: str, name: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while (kind, name) not in self.items:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {kind!r} report from {name} within {timeout}s"
            try:
                item = self.queue.get(timeout=min(remaining, 0.5))
            except Exception:
                continue
            assert item[0] != "error", f"process failed: {item}"
            self.items[item[:2]] = item[2:]
        return self.items[(kind, name)]


# ---------------------------------------------------------------------- process state


def open_fds(pid: Optional[int] = None) -> int:
    return len(os.listdir(f"/proc/{pid or os.getpid()}/fd"))


def rss_bytes(pid: Optional[int] = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: Optional[int] = None) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid or os.getpid()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def netgear_threads() -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("netgear"))


def settle(predicate: Callable[[], bool], timeout: float) -> bool:
    """True once ``predicate()`` holds (polling), False if it never did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
