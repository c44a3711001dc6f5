"""200 open/close cycles of a hub on fixed ports, with live servers and a blocked recv().

3 servers (separate processes, REQ/REP, 30 fps) keep streaming to 3 fixed ports and
reconnect to each new hub. Each cycle opens a hub on those ports, waits until a server is
alive on it (every 10th cycle: all 3 alive and a frame delivered to the consumer), starts a
consumer thread looping on ``hub.recv()`` without a timeout, waits until that thread is
blocked in it, then calls ``close()``. The API promises that close() wakes a waiting recv(),
which returns None. The test checks:
- every close() returns in < 1 s;
- every consumer thread ends (within 1 s of close()), its last recv() returned None (no
  exception);
- after the 200 cycles, the test process's Python threads, OS threads and open file
  descriptors are back to their counts before the cycles (taken after one uncounted
  warm-up cycle: first use of every code path);
- its RSS (after gc.collect()) grew by less than 10 MB over the 200 cycles.
"""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from helpers import LOCAL, blocked_in_recv, free_ports, wait_until
from history import open_fds, rss_bytes, settle
from netgear import NetGear
from netns import start_server, stop_servers

pytestmark = pytest.mark.timeout(90)

CYCLES = 200
FULL_EVERY = 10
FPS = 30.0
CLOSE_BOUND = 1.0
MAX_GROWTH = 10 << 20
SETTLE = 3.0


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


class Consumer(threading.Thread):
    """Loops on ``hub.recv()`` (no timeout) until it returns None or raises."""

    def __init__(self, hub, cycle: int) -> None:
        super().__init__(name=f"consumer-{cycle}", daemon=True)
        self.hub = hub
        self.frames = 0
        self.outcome: object = "running"

    def run(self) -> None:
        try:
            while self.hub.recv() is not None:
                self.frames += 1
            self.outcome = None
        except BaseException as exc:  # reported by the test
            self.outcome = exc


def test_200_open_close_cycles_with_live_servers_and_a_blocked_recv(gears):
    servers = []
    gears.callback(stop_servers, servers)
    ports = free_ports(3)
    for port in ports:
        servers.append(start_server(LOCAL, port, 1, fps=FPS))

    closes, waits, full_cycles = [], [], 0
    failures = []
    baseline = None
    began = time.monotonic()
    for cycle in range(CYCLES + 1):  # cycle 0 warms up (first use of every code path)
        if cycle == 1:
            gc.collect()
            baseline = (threading.active_count(), os_threads(), open_fds(), rss_bytes())
            began = time.monotonic()
        opened = time.monotonic()
        hub = NetGear(address=LOCAL, port=ports, pattern=1, receive_mode=True, multiserver_mode=True)
        consumer = Consumer(hub, cycle)
        try:
            full = cycle % FULL_EVERY == 0
            wait_until(lambda: len(hub.snapshot().alive()) >= (3 if full else 1), 10,
                       f"cycle {cycle}: servers alive on the new hub")
            consumer.start()
            if full:
                wait_until(lambda: consumer.frames > 0, 5, f"cycle {cycle}: a frame")
                full_cycles += cycle > 0
            wait_until(lambda: blocked_in_recv(consumer), 5, f"cycle {cycle}: recv() blocked")
            waits.append(time.monotonic() - opened)
        finally:
            closing = time.monotonic()
            hub.close()
            closes.append(time.monotonic() - closing)
            if consumer.ident is not None:
                consumer.join(CLOSE_BOUND)
        if consumer.is_alive() or consumer.outcome is not None:
            failures.append((cycle, consumer.is_alive(), consumer.outcome))
    elapsed = time.monotonic() - began
    closes, waits = closes[1:], waits[1:]

    threads_back = settle(lambda: (threading.active_count(), os_threads(), open_fds()) == baseline[:3], SETTLE)
    gc.collect()
    after = (threading.active_count(), os_threads(), open_fds(), rss_bytes())
    growth = after[3] - baseline[3]
    print(f"{CYCLES} cycles in {elapsed:.1f}s ({full_cycles} full); open until blocked recv: median "
          f"{sorted(waits)[len(waits) // 2] * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms; close(): max "
          f"{max(closes) * 1000:.1f} ms; threads/OS threads/fds {baseline[:3]} -> {after[:3]}; "
          f"RSS +{growth / 1e6:.2f} MB")

    assert max(closes) < CLOSE_BOUND, f"slowest close() {max(closes):.3f}s"
    assert not failures, f"consumers still blocked or failed (cycle, alive, outcome): {failures[:5]}"
    assert threads_back, f"threads, OS threads, descriptors {after[:3]}, before the cycles {baseline[:3]}"
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 1e6:.1f} MB"
