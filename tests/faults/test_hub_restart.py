"""The hub killed (SIGKILL) and restarted 10 s later on the same ports; both patterns.

Three servers, each in its own process, stream small frames (24x32x3) at 30 fps into a hub
that runs in its own process on fixed ports (``free_ports``). The hub is SIGKILLed; ``DOWN``
= 10 s later a new hub process binds the same ports (it was started and imported
beforehand and waits for a go, so "restart" is the instant the go is given). Servers use
the default options (request_timeout 2 s, max_retries 3). Every server reports each
``send()`` (start, end, exception type) and the new hub reports each port's first frame.

Checked, for every server:

- it delivers to the new hub within ``RESTART_BOUND`` = 3 s of the restart;
- its RSS grows by less than ``RSS_GROWTH`` = 20 MB while the hub is down (sampled every
  0.1 s from /proc, against its RSS just before the kill);
- REQ/REP: ``send()`` raises ``netgear.RequestTimeout`` (and nothing else) within
  ``TIMEOUT_BOUND`` = request_timeout x (max_retries + 1) + 1 s of slack = 9 s after the
  kill; its send loop keeps running: it calls ``send()`` again after the timeout, no
  stretch from the kill to 3 s after the restart passes without a ``send()`` returning or
  raising for longer than ``TIMEOUT_BOUND``, and sends succeed again after the restart;
- PUB/SUB: sends never block while the hub is down: none raises, >= 95 % return within
  ``FAST_SEND`` = 5 ms (a send that waits for room, ``publish_wait`` = 20 ms, takes at least
  20 ms), none takes longer than ``MAX_PUB_SEND`` = 0.1 s, and the loop keeps >= 90 % of its
  30 fps meanwhile.
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from helpers import Inbox, free_ports
from history import rss_bytes
from netgear import RequestTimeout
from netgear.options import Options
from procs import CTX, hub_process, start, stream_reporting

pytestmark = pytest.mark.timeout(60)

SERVERS = 3
FPS = 30.0
DOWN = 10.0
RESTART_BOUND = 3.0
RSS_GROWTH = 20 * 2**20
_DEFAULTS = Options()
TIMEOUT_BOUND = _DEFAULTS.request_timeout * (_DEFAULTS.max_retries + 1) + 1.0
FAST_SEND = 0.005  # a send that waits for room (publish_wait, 20 ms) takes at least 20 ms
FAST_SHARE = 0.95
MAX_PUB_SEND = 0.1  # none, even on a loaded machine
MIN_RATIO = 0.9
REQUEST_TIMEOUT = f"{RequestTimeout.__module__}.{RequestTimeout.__qualname__}"


def drain(inbox: Inbox) -> None:
    while inbox.pump(0):
        pass


def longest_silence(ends, start, end):
    marks = [start, *sorted(t for t in ends if start <= t <= end), end]
    return max(b - a for a, b in zip(marks, marks[1:]))


@pytest.mark.parametrize("pattern", [1, 2])
def test_hub_killed_and_restarted_after_10s_servers_deliver_again_within_3s(procs, pattern):
    ports = free_ports(SERVERS)
    old_reports, new_reports, sent = Inbox(), Inbox(), Inbox()
    old_go, new_go, old_stop, new_stop = (CTX.Event() for _ in range(4))
    stops = [CTX.Event() for _ in ports]  # one each; the killed hub's Event is never touched
    old_go.set()
    old_hub = start(hub_process, ports, pattern, go=old_go, stop=old_stop, results=old_reports.queue)
    new_hub = start(hub_process, ports, pattern, go=new_go, stop=new_stop, results=new_reports.queue)
    procs.extend([old_hub, new_hub])
    old_reports.wait("listening", 1, timeout=30)
    servers = [start(stream_reporting, port, pattern, stop=stop, results=sent.queue, fps=FPS, salt=k)
               for k, (port, stop) in enumerate(zip(ports, stops))]
    procs.extend(servers)
    old_reports.wait("first", SERVERS, timeout=30)
    for port in ports:  # a second of streaming before the memory baseline
        sent.wait("send", int(FPS), port, timeout=30)

    baseline = {s.pid: rss_bytes(s.pid) for s in servers}
    peak = dict(baseline)
    killed_at = time.monotonic()
    os.kill(old_hub.pid, signal.SIGKILL)
    while time.monotonic() < killed_at + DOWN:
        for s in servers:
            peak[s.pid] = max(peak[s.pid], rss_bytes(s.pid))
        drain(sent)
        time.sleep(0.1)  # the sampling period, while the fault is held
    restarted_at = time.monotonic()
    new_go.set()

    new_reports.wait("first", SERVERS, timeout=RESTART_BOUND + 10)
    window_end = restarted_at + RESTART_BOUND
    deadline = time.monotonic() + 10
    while not all(any(r[4] is None and r[2] >= restarted_at for r in sent.of("send", p)) for p in ports) \
            or time.monotonic() < window_end:
        assert time.monotonic() < deadline, "the servers' sends do not go through after the restart"
        sent.pump(0.1)
    for stop in stops:
        stop.set()
    new_stop.set()
    for p in [*servers, new_hub]:
        p.join(10)
    drain(sent)

    listening = new_reports.of("listening")[0][2]
    firsts = {r[1]: r[2] for r in new_reports.of("first")}
    print(f"pattern {pattern}: new hub bound {listening - restarted_at:.3f}s after the go; first frames "
          + ", ".join(f"{firsts[p] - restarted_at:.2f}s" for p in ports)
          + "; RSS growth " + ", ".join(f"{(peak[s.pid] - baseline[s.pid]) / 2**20:.2f} MB" for s in servers))
    for port in ports:
        assert firsts[port] - restarted_at <= RESTART_BOUND, f"port {port}: back after {firsts[port] - restarted_at:.2f}s"
    for s in servers:
        growth = peak[s.pid] - baseline[s.pid]
        assert growth < RSS_GROWTH, f"server {s.pid}: RSS grew {growth / 2**20:.1f} MB while the hub was down"

    for port in ports:
        sends = sent.of("send", port)
        errors = [r for r in sends if r[4] is not None]
        during = [r for r in sends if killed_at <= r[2] <= restarted_at]
        if pattern == 1:
            assert {r[4] for r in errors} == {REQUEST_TIMEOUT}, f"port {port}: raised {sorted({r[4] for r in errors})}"
            timed_out = min(r[3] for r in errors)
            silence = longest_silence([r[3] for r in sends], killed_at, window_end)
            print(f"  port {port}: RequestTimeout {timed_out - killed_at:.2f}s after the kill ({len(errors)} in all); "
                  f"longest send() silence {silence:.2f}s")
            assert killed_at <= timed_out <= killed_at + TIMEOUT_BOUND, (
                f"port {port}: RequestTimeout {timed_out - killed_at:.2f}s after the kill (bound {TIMEOUT_BOUND:g}s)"
            )
            assert any(r[2] >= timed_out for r in sends), f"port {port}: no send() after the RequestTimeout"
            assert silence <= TIMEOUT_BOUND, f"port {port}: send() silent for {silence:.2f}s"
        else:
            durations = [r[3] - r[2] for r in during]
            fast = sum(d < FAST_SEND for d in durations) / len(durations)
            print(f"  port {port}: {len(during)} sends while the hub was down, {fast:.0%} under "
                  f"{FAST_SEND * 1000:g} ms, median {statistics.median(durations) * 1000:.2f} ms, "
                  f"longest {max(durations) * 1000:.1f} ms")
            assert not errors, f"port {port}: raised {sorted({r[4] for r in errors})}"
            assert fast >= FAST_SHARE, (
                f"port {port}: only {fast:.0%} of the sends with no hub returned within {FAST_SEND * 1000:g} ms "
                f"(median {statistics.median(durations) * 1000:.1f} ms)"
            )
            assert max(durations) < MAX_PUB_SEND, f"port {port}: a send() took {max(durations) * 1000:.0f} ms with no hub"
            assert len(during) >= MIN_RATIO * FPS * DOWN, f"port {port}: {len(during)} sends in {DOWN:g}s"
