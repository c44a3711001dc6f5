"""Servers that die (SIGKILL) or freeze (SIGSTOP), among healthy ones; both patterns.

Default liveness settings (heartbeat 0.5 s, liveness_timeout 1.5 s). The documented bound
for a dead or frozen server to be reported gone is ``liveness_timeout`` + 0.5 s of
detection slack = ``BOUND`` (2.0 s). Servers stream small frames (24x32x3) at ``FPS`` = 30.
"Steady" means: at least 90 % of 30 fps over the window and never more than 200 ms
without a frame (``History.assert_steady``).

test_sigkill_one_of_eight_...
    SIGKILL one of 8 streaming servers: ``left`` event (reason ``disconnected``) and snapshot
    state ``gone`` within BOUND of the kill; the 7 others steady over the 3 s after it, no
    event for them; the hub's netgear threads listed before are all alive after; the hub's
    open file descriptors drop to <= (count with 8 connected) - 1 within 3 s of the kill
    (the victim's connection is closed) and, once every server stopped and the hub closed,
    return to the count before the hub was opened.
test_sigstop_for_10s_...
    SIGSTOP one of 3 streaming servers for 10 s, then SIGCONT: ``left`` within BOUND of the
    SIGSTOP, ``returned`` within 2 s of the SIGCONT, and its frames flow again; exactly
    joined/left/returned for it (checked 1 s after its return), only ``joined`` for the
    others, which stay steady over the whole 10 s and after.
test_servers_killed_one_by_one_...
    4 servers send 5 frames each, then idle (heartbeats only) and are SIGKILLed one by one,
    0.75 s apart, while the test blocks in ``recv_packet()``: each is ``left`` within BOUND
    of its kill; ``recv_packet()`` returns None, the ``ended`` event fires and
    ``snapshot().ended`` holds within BOUND of the last kill, iteration then yields
    nothing; the test process (the hub) uses < 10 % of one core over the blocked wait.

Each server process gets its own stop Event: setting a multiprocessing Event on which a
killed process was waiting would hang.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from helpers import open_hub, wait_alive
from history import History, cpu_seconds, netgear_threads, open_fds, settle
from netgear.options import Options
from procs import CTX, serve, start, stream

pytestmark = pytest.mark.timeout(60)

BOUND = Options().liveness_timeout + 0.5  # documented: gone within liveness_timeout + 0.5 s
BACK = 2.0  # a SIGCONTed server is back within this many seconds
FPS = 30.0
MIN_RATIO = 0.9
MAX_GAP = 0.2
HOLD = 10.0  # SIGSTOP duration
KILL_INTERVAL = 0.75
MAX_CPU_SHARE = 0.10  # of one core, while the hub waits


def start_streams(procs, hub, pattern, stops):
    for k, (port, stop) in enumerate(zip(hub.ports, stops)):
        procs.append(start(stream, port, pattern, stop=stop, fps=FPS, salt=k))
    wait_alive(hub, len(hub.ports), timeout=30)


def end_stream(history, hub, stops):
    """Stop the given (live) servers; the hub ends once the last one said goodbye."""
    for stop in stops:
        stop.set()
    history.run(until=lambda: history.first("ended") is not None, timeout=10, what="the end of the stream")
    assert hub.snapshot().ended


def release(procs):
    """Join and close every server process (their sentinel fds go with them)."""
    for p in procs:
        p.join(10)
        assert not p.is_alive(), f"server process {p.pid} did not exit"
        p.close()
    procs.clear()


@pytest.mark.parametrize("pattern", [1, 2])
def test_sigkill_one_of_eight_is_gone_within_bound_others_steady_no_thread_or_fd_lost(procs, gears, pattern):
    stops = [CTX.Event() for _ in range(8)]
    fds_before_hub = open_fds()
    hub = open_hub(gears, [0] * 8, pattern)
    hub_threads = [t for t in threading.enumerate() if t.name.startswith("netgear")]
    start_streams(procs, hub, pattern, stops)
    history = History(hub)
    history.run(until=lambda: all(history.count(p) >= 10 for p in hub.ports), timeout=20, what="8 streams")
    fds_with_8 = open_fds()

    victim_port, victim = hub.ports[3], procs[3]
    survivors = [p for p in hub.ports if p != victim_port]
    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    history.run(until=lambda: history.first("left", victim_port) is not None, timeout=BOUND + 3, what="left")
    left = history.first("left", victim_port)
    assert left.at - killed_at <= BOUND, f"gone after {left.at - killed_at:.3f}s"
    assert left.reason == "disconnected"  # the kernel closed its connection
    entry = hub.snapshot().server(victim_port)
    assert entry.state == "gone" and entry.reason == "disconnected"
    assert settle(lambda: open_fds() <= fds_with_8 - 1, timeout=3), (
        f"hub fds {open_fds()} after the kill, {fds_with_8} with 8 servers connected"
    )

    fds_after_kill = open_fds()
    history.run_for(killed_at + 3.0 - time.monotonic())
    end = time.monotonic()
    print(f"pattern {pattern}: gone after {left.at - killed_at:.3f}s; survivors min "
          f"{min(history.count(p, killed_at) for p in survivors) / (end - killed_at):.1f} fps, max gap "
          f"{max(history.max_gap(p, killed_at, end) for p in survivors) * 1000:.0f} ms; fds {fds_before_hub} "
          f"before hub, {fds_with_8} with 8, {fds_after_kill} after kill")
    history.assert_steady(survivors, killed_at, end, FPS, MAX_GAP, MIN_RATIO)
    for port in survivors:
        history.assert_in_order(port)
        assert history.kinds(port) == ["joined"], f"port {port}: {history.kinds(port)}"
    assert history.kinds(victim_port) == ["joined", "left"]
    dead = [t.name for t in hub_threads if not t.is_alive()]
    assert not dead, f"hub threads died: {dead}"
    assert netgear_threads() == sorted(t.name for t in hub_threads)

    end_stream(history, hub, [s for k, s in enumerate(stops) if k != 3])  # never touch the victim's Event
    hub.close()
    release(procs)
    assert settle(lambda: open_fds() == fds_before_hub, timeout=3), (
        f"{open_fds()} fds after the hub closed, {fds_before_hub} before it opened"
    )


@pytest.mark.parametrize("pattern", [1, 2])
def test_sigstop_for_10s_is_gone_then_returned_once_after_sigcont_others_steady(procs, gears, pattern):
    stops = [CTX.Event() for _ in range(3)]
    hub = open_hub(gears, [0, 0, 0], pattern)
    start_streams(procs, hub, pattern, stops)
    victim_port, victim = hub.ports[1], procs[1]
    others = [hub.ports[0], hub.ports[2]]
    history = History(hub)
    history.run(until=lambda: all(history.count(p) >= 10 for p in hub.ports), timeout=20, what="3 streams")

    # procs.stream catches up after a pause with a burst of frames (as a camera whose driver
    # buffered frames does): under REQ/REP that burst can fill the window on the connection
    # the hub dropped while the server was frozen
    stopped_at = time.monotonic()
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        history.run_for(HOLD)  # consume while the victim is frozen
    finally:
        continued_at = time.monotonic()
        os.kill(victim.pid, signal.SIGCONT)
    left = history.first("left", victim_port)
    assert left is not None, "a process frozen for 10 s was never reported gone"
    assert left.at - stopped_at <= BOUND, f"gone after {left.at - stopped_at:.3f}s"
    # a frozen process is caught by the hub's silence timer or by ZeroMQ's heartbeats,
    # whichever fires first; both use liveness_timeout
    assert left.reason in ("timeout", "disconnected")
    assert history.first("returned", victim_port) is None, "returned while still frozen"

    history.run(until=lambda: history.first("returned", victim_port) is not None, timeout=BACK + 3, what="returned")
    returned = history.first("returned", victim_port)
    assert returned.at - continued_at <= BACK, f"back after {returned.at - continued_at:.3f}s"
    assert hub.snapshot().server(victim_port).state == "alive"
    history.run_for(1.0)  # long enough for a spurious second left/returned to show
    assert history.count(victim_port, after=returned.at) >= 5, "its frames do not flow again"
    end = time.monotonic()

    print(f"pattern {pattern}: gone after {left.at - stopped_at:.3f}s ({left.reason}), back "
          f"{returned.at - continued_at:.3f}s after SIGCONT; others min "
          f"{min(history.count(p, stopped_at) for p in others) / (end - stopped_at):.1f} fps, max gap "
          f"{max(history.max_gap(p, stopped_at, end) for p in others) * 1000:.0f} ms")
    history.assert_steady(others, stopped_at, end, FPS, MAX_GAP, MIN_RATIO)
    assert history.kinds(victim_port) == ["joined", "left", "returned"]
    for port in others:
        history.assert_in_order(port)
        assert history.kinds(port) == ["joined"], f"port {port}: {history.kinds(port)}"
    end_stream(history, hub, stops)


@pytest.mark.parametrize("pattern", [1, 2])
def test_servers_killed_one_by_one_end_the_stream_within_bound_without_busy_waiting(procs, gears, pattern):
    hub = open_hub(gears, [0] * 4, pattern)
    go, stops = CTX.Event(), [CTX.Event() for _ in range(4)]  # kept: a collected Event vanishes
    for k, (port, stop) in enumerate(zip(hub.ports, stops)):  # 5 frames each, then idle until killed
        procs.append(start(serve, port, pattern, 5, go=go, stop=stop, salt=k))
    wait_alive(hub, 4, timeout=30)
    go.set()
    history = History(hub)
    history.run(until=lambda: all(history.count(p) == 5 for p in hub.ports), timeout=10, what="5 frames each")

    kills = {}

    def killer():
        for port, proc in zip(hub.ports, procs):
            time.sleep(KILL_INTERVAL)  # shapes the sequence of deaths
            kills[port] = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    cpu_before, waiting_from = cpu_seconds(), time.monotonic()
    thread.start()
    try:
        result = hub.recv_packet(timeout=4 * KILL_INTERVAL + BOUND + 5)  # blocks: nothing else is sent
    finally:
        thread.join()
    returned_at = time.monotonic()
    cpu = cpu_seconds() - cpu_before
    waited = returned_at - waiting_from
    history.events += hub.pop_events()

    print(f"pattern {pattern}: end {returned_at - max(kills.values()):.3f}s after the last kill; "
          f"{cpu:.2f}s CPU in {waited:.2f}s of waiting")
    assert result is None, f"got a frame instead of the end: {result}"
    last_kill = max(kills.values())
    assert returned_at - last_kill <= BOUND, f"recv_packet returned None {returned_at - last_kill:.3f}s after the last kill"
    ended = history.first("ended")
    assert ended is not None and ended.at - last_kill <= BOUND
    assert hub.snapshot().ended
    assert list(hub) == [], "iteration went on after the end"
    for port, killed_at in kills.items():
        left = history.first("left", port)
        assert left is not None and 0 <= left.at - killed_at <= BOUND, f"port {port}: {left}"
        assert history.kinds(port) == ["joined", "left"]
    assert cpu < MAX_CPU_SHARE * waited, f"{cpu:.2f}s of CPU in {waited:.2f}s of waiting"
