"""Network partitions: camera hosts in a network namespace of their own are cut off from the
hub (blackhole routes on both sides, see ``netns.py``), then the network heals.

test_partition_of_5s_then_heal (REQ/REP and PUB/SUB, default liveness settings):
- 3 servers in the namespace at 30 fps, cut for 5 s: each is reported gone (``left``)
  within the documented bound, liveness_timeout + 0.5 s = 2.0 s after the cut;
- after healing, each one's frames resume within 1 s;
- the first frame of each after healing is fresh: its ``sent_at`` is no earlier than the
  heal moment - 0.1 s (no backlog queued during the partition is replayed).
The heal moment is stamped just before the routes are removed (nothing crosses before).
A fourth server on the hub's own side of the veth pair keeps streaming throughout (it keeps
the stream from ending, and shows that the cut is scoped to the namespace's addresses).

test_20_flapping_partitions (one REQ/REP hub and one PUB/SUB hub side by side, each with a
namespace server and a local one; liveness_timeout 0.75 s, heartbeat_interval 0.15 s, so
a cycle takes about 1-1.5 s): each cycle cuts until both hubs report their namespace server
gone, then heals until both report it back and frames sent after the heal arrive; afterwards
- each namespace server's events strictly alternate left/returned, 20 of each;
- the test process's open file descriptors are back to their pre-flapping count within 3 s
  of the last heal;
- its RSS (after gc.collect()) grew by less than 10 MB.
"""

from __future__ import annotations

import gc
import time

import pytest

from helpers import hub_options
from history import History, open_fds, rss_bytes, settle
from netgear import NetGear
from netns import VethNamespace, start_server, stop_servers

pytestmark = pytest.mark.timeout(60)

FPS = 30.0
CUT_FOR = 5.0
GONE_BOUND = 1.5 + 0.5  # default liveness_timeout + detection slack
RESUME_BOUND = 1.0
FRESH_SLACK = 0.1

CYCLES = 20
FLAP = {"liveness_timeout": 0.75, "heartbeat_interval": 0.15}
FLAP_SERVER = {"reqrep": {**FLAP, "request_timeout": 0.3}, "pubsub": FLAP}
FD_SETTLE = 3.0
MAX_GROWTH = 10 << 20


def open_hub_on(gears, address, ports, pattern, **options):
    return gears.enter_context(NetGear(address=address, port=ports, pattern=pattern, receive_mode=True,
                                       multiserver_mode=True, **hub_options(pattern, **options)))


@pytest.mark.parametrize("pattern", [1, 2])
def test_partition_of_5s_then_heal(gears, pattern):
    ns = gears.enter_context(VethNamespace())
    servers = []
    gears.callback(stop_servers, servers)
    hub = open_hub_on(gears, ns.hub_ip, [0, 0, 0, 0], pattern)
    cut_ports, local_port = hub.ports[:3], hub.ports[3]
    for port in cut_ports:
        servers.append(start_server(ns.hub_ip, port, pattern, fps=FPS, ns=ns))
    servers.append(start_server(ns.hub_ip, local_port, pattern, fps=FPS))
    history = History(hub)
    history.run(lambda: all(history.count(p) >= 5 for p in hub.ports), 20, "frames from all 4 servers")

    cut_at = time.monotonic()
    try:
        ns.cut()
        history.run(lambda: all(history.first("left", p, cut_at) for p in cut_ports), GONE_BOUND + 3,
                    "the cut servers reported gone")
        history.run_for(cut_at + CUT_FOR - time.monotonic())  # hold the partition
    finally:
        # the heal moment: stamped before the routes go, as nothing can cross until then
        healed_at, healed_wall = time.monotonic(), time.time()
        ns.heal()
    history.run(lambda: all(history.first_frame(p, healed_at) for p in cut_ports), RESUME_BOUND + 5,
                "frames from the healed servers")
    history.run_for(0.3)  # a few more frames, to show what follows the first

    report = []
    for port in cut_ports:
        left = history.first("left", port, cut_at)
        first = history.first_frame(port, healed_at)
        stale = [s for s in history.frames[port] if s.at >= healed_at and s.sent_at < healed_wall - FRESH_SLACK]
        report.append(f"port {port}: gone after {left.at - cut_at:.3f}s ({left.reason}), first frame "
                      f"{first.at - healed_at:.3f}s after the heal, sent {healed_wall - first.sent_at:.3f}s "
                      f"before it; {len(stale)} frames sent during the partition delivered after it")
        # the fault itself: nothing crossed the cut
        assert not [s for s in history.frames[port] if left.at < s.at < healed_at], report[-1]
    print("\n".join(report))
    for port, line in zip(cut_ports, report):
        left = history.first("left", port, cut_at)
        assert left.at - cut_at <= GONE_BOUND, line
        first = history.first_frame(port, healed_at)
        assert first.at - healed_at <= RESUME_BOUND, line
        assert first.sent_at >= healed_wall - FRESH_SLACK, line
    assert history.first("left", local_port) is None, "the server outside the namespace was cut too"
    assert history.count(local_port, cut_at) > 0


def test_20_flapping_partitions(gears):
    ns = gears.enter_context(VethNamespace())
    servers = []
    gears.callback(stop_servers, servers)
    hubs = {name: open_hub_on(gears, ns.hub_ip, [0, 0], pattern, **FLAP)
            for name, pattern in (("reqrep", 1), ("pubsub", 2))}
    for name, hub in hubs.items():
        pattern = 1 if name == "reqrep" else 2
        servers.append(start_server(ns.hub_ip, hub.ports[0], pattern, fps=FPS, ns=ns, options=FLAP_SERVER[name]))
        servers.append(start_server(ns.hub_ip, hub.ports[1], pattern, fps=FPS, options=FLAP_SERVER[name]))
    histories = {name: History(hub) for name, hub in hubs.items()}

    since = {"cycle": 0, "heal": time.monotonic()}  # for the failure messages

    def story(history) -> str:
        """The namespace server's events since the previous heal, in seconds after it."""
        port = history.hub.ports[0]
        return ", ".join(f"{e.kind}{f'({e.reason})' if e.reason else ''} {e.at - since['heal']:+.2f}s"
                         for e in history.events if e.port == port and e.at >= since["heal"]) or "none"

    def run(until, timeout, what):
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"cycle {since['cycle']}: timed out after {timeout}s waiting for {what}; events "
                                     "since the previous heal: "
                                     + "; ".join(f"{n}: {story(h)}" for n, h in histories.items()))
            for history in histories.values():
                history.poll(0.01)

    def flapped(kind, after):
        return lambda: all(h.first(kind, h.hub.ports[0], after) for h in histories.values())

    def fresh(after_wall):
        return lambda: all(any(s.sent_at >= after_wall for s in h.frames[h.hub.ports[0]][-5:])
                           for h in histories.values())

    run(lambda: all(h.count(p) >= 5 for h in histories.values() for p in h.hub.ports), 20, "frames from all servers")
    gc.collect()
    fds_before, rss_before = open_fds(), rss_bytes()
    cycle_times, gone_after, back_after = [], [], []
    began = time.monotonic()
    for cycle in range(CYCLES):
        since["cycle"] = cycle
        cut_at = time.monotonic()
        try:
            ns.cut()
            run(flapped("left", cut_at), 5, "both namespace servers gone")
        finally:
            healed_at, healed_wall = time.monotonic(), time.time()
            ns.heal()
        # back: a returned event, and frames sent after the heal arriving
        run(flapped("returned", healed_at), 5, "both namespace servers back")
        run(fresh(healed_wall), 5, "fresh frames from both namespace servers")
        since["heal"] = healed_at
        gone_after.append(max(h.first("left", h.hub.ports[0], cut_at).at for h in histories.values()) - cut_at)
        back_after.append(max(h.first("returned", h.hub.ports[0], healed_at).at for h in histories.values()) - healed_at)
        cycle_times.append(time.monotonic() - cut_at)
    last_heal = time.monotonic()
    run(lambda: time.monotonic() > last_heal + 0.2, 1, "a moment of streaming")
    fds_back = settle(lambda: open_fds() == fds_before, FD_SETTLE - (time.monotonic() - last_heal))
    fds_after = open_fds()
    gc.collect()
    growth = rss_bytes() - rss_before
    print(f"{CYCLES} cycles in {time.monotonic() - began:.1f}s (longest {max(cycle_times):.2f}s); gone after "
          f"≤ {max(gone_after):.3f}s, back after ≤ {max(back_after):.3f}s; fds {fds_before} -> {fds_after}; "
          f"RSS +{growth / 1e6:.2f} MB")

    for name, history in histories.items():
        history.assert_alternating(history.hub.ports[0], cycles=CYCLES)
        assert history.first("left", history.hub.ports[1]) is None, f"{name}: the local server was cut too"
    assert fds_back, f"open descriptors {fds_after}, {fds_before} before flapping"
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 1e6:.1f} MB"
