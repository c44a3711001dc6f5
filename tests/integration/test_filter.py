"""The hub's ``filter`` option: by port (int or str), by topic, by a list; exact matching.

A port filter names the hub's own ports, so these hubs bind ports picked just before
(``free_ports``) instead of port 0.
"""

from __future__ import annotations

import time

import pytest

from helpers import Inbox, assert_frame, free_ports, open_hub, state_of, wait_alive, wait_until
from netgear import TransportError
from procs import CTX, make_frame, serve, start, stream

pytestmark = pytest.mark.timeout(60)

COUNT = 25
SHAPE = (6, 8)
LIVENESS = 1.5


def hub_on_free_ports(gears, count, pattern, make_filter):
    """A hub on ``count`` just-free ports, ``filter=make_filter(ports)``; retried if one got taken."""
    for _ in range(5):
        ports = free_ports(count)
        try:
            return open_hub(gears, ports, pattern, filter=make_filter(ports))
        except TransportError:  # another process took one of them meanwhile
            continue
    raise AssertionError("could not bind free ports")


def start_server(procs, inbox, port, pattern, go, stop, salt, topic=None):
    options = {"topic": topic} if topic is not None else None
    procs.append(start(serve, port, pattern, COUNT, go=go, stop=stop, results=inbox.queue, salt=salt,
                       shape=SHAPE, messages=[topic or str(port)], interval=0.002 if pattern == 2 else 0.0,
                       options=options))


def receive_all(hub, expected):
    """Receive exactly the frames in ``expected`` ({port: salt}), in order per port; nothing else."""
    nxt = {port: 0 for port in expected}
    while any(n < COUNT for n in nxt.values()):
        packet = hub.recv_packet(timeout=10)
        assert packet.port in expected, f"frame from filtered-out port {packet.port} (topic {packet.topic!r})"
        i = nxt[packet.port]
        assert_frame(packet.frame, make_frame(i, SHAPE, "uint8", expected[packet.port]))
        assert packet.seq == i + 1
        nxt[packet.port] = i + 1
    return nxt


def settle(hub, ports, count):
    """Wait until the hub has seen ``count`` frames (filtered or delivered) from each port.

    A REQ/REP send() may return with its frame still in flight (``max_inflight``), so
    the servers' "sent" reports can run slightly ahead of the hub's counters.
    """
    def seen():
        snap = hub.snapshot()
        return all(snap.server(p).frames + snap.server(p).filtered == count for p in ports)

    wait_until(seen, 10, f"{count} frames seen from each of {ports}")


def finish(hub, inbox, stop, servers):
    """Every server completed its sends; nothing more is delivered; the stream ends."""
    inbox.wait("sent", servers)
    stop.set()
    assert hub.recv_packet(timeout=LIVENESS + 5) is None


@pytest.mark.parametrize("form", [int, str])
@pytest.mark.parametrize("pattern", [1, 2])
def test_port_filter_delivers_only_that_port(procs, gears, pattern, form):
    hub = hub_on_free_ports(gears, 2, pattern, lambda ports: form(ports[1]))
    a, b = hub.ports
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    start_server(procs, inbox, a, pattern, go, stop, salt=1)
    start_server(procs, inbox, b, pattern, go, stop, salt=2)
    wait_alive(hub, 2)  # the filtered-out server is tracked too
    go.set()
    receive_all(hub, {b: 2})
    # the filtered server was never stalled: it completed every send
    sent = {item[1]: item[2] for item in inbox.wait("sent", 2)}
    assert sent == {a: COUNT, b: COUNT}
    settle(hub, [a, b] if pattern == 1 else [b], COUNT)
    snap = hub.snapshot()
    entry_a, entry_b = snap.server(a), snap.server(b)
    assert entry_a.state == "alive" and entry_b.state == "alive"
    assert (entry_b.frames, entry_b.filtered) == (COUNT, 0)
    if pattern == 1:
        # REQ/REP: the hub saw and acknowledged each filtered frame without delivering it
        assert (entry_a.frames, entry_a.filtered) == (0, COUNT)
    else:
        # PUB/SUB: the subscription keeps them from ever reaching the hub
        assert (entry_a.frames, entry_a.filtered) == (0, 0)
    finish(hub, inbox, stop, 2)


@pytest.mark.parametrize("pattern", [1, 2])
def test_topic_list_filter_with_exact_matching(procs, gears, pattern):
    # ports: A topic "front", B topic "back", C its port (default), D and E topics that
    # extend / shorten C's port number; filter = ["front", C]
    hub = hub_on_free_ports(gears, 5, pattern, lambda ports: ["front", ports[2]])
    a, b, c, d, e = hub.ports
    topics = {a: "front", b: "back", c: None, d: f"{c}0", e: str(c)[:-1]}
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    for salt, port in enumerate(hub.ports, start=1):
        start_server(procs, inbox, port, pattern, go, stop, salt=salt, topic=topics[port])
    wait_alive(hub, 5)
    go.set()
    receive_all(hub, {a: 1, c: 3})
    inbox.wait("sent", 5)
    settle(hub, hub.ports if pattern == 1 else [a, c], COUNT)
    snap = hub.snapshot()
    for port in hub.ports:
        assert snap.server(port).state == "alive", port
        assert snap.server(port).topic == (topics[port] or str(port))
    assert [snap.server(p).frames for p in (a, c)] == [COUNT, COUNT]
    assert [snap.server(p).frames for p in (b, d, e)] == [0, 0, 0]
    want_filtered = COUNT if pattern == 1 else 0
    assert [snap.server(p).filtered for p in (a, b, c, d, e)] == [0, want_filtered, 0, want_filtered, want_filtered]
    finish(hub, inbox, stop, 5)


def test_pubsub_filtered_server_streaming_stays_alive(procs, gears):
    """A PUB/SUB server busy sending frames the hub filters out is still seen alive.

    Its frames never reach the hub (ZeroMQ drops them at the PUB socket), so only its
    heartbeats can: they must go out even while frames flow.
    """
    hub = hub_on_free_ports(gears, 2, 2, lambda ports: ports[1])
    a, b = hub.ports
    stop = CTX.Event()
    procs.append(start(stream, a, 2, stop=stop, fps=100.0, salt=1))
    wait_until(lambda: state_of(hub, a) == "alive", 20, "streaming server alive")
    start_at = time.monotonic()
    # three liveness timeouts of continuous streaming: it must never be reported gone
    while time.monotonic() - start_at < 2 * LIVENESS:
        assert state_of(hub, a) == "alive"
        with pytest.raises(TimeoutError):
            hub.recv_packet(timeout=0.05)
    assert [e.kind for e in hub.pop_events()] == ["joined"]
    entry = hub.snapshot().server(a)
    assert (entry.frames, entry.filtered) == (0, 0)
    stop.set()
    wait_until(lambda: state_of(hub, a) == "closed", 10, "streaming server closed")
