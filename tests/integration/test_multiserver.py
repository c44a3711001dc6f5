"""Several servers (separate processes) into one multiserver hub, REQ/REP and PUB/SUB.

Each server process builds its frames with ``make_frame(i, salt=<its own salt>)``, so a
frame carries proof of which server sent it and which index it was.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from helpers import (
    MESSAGES,
    Inbox,
    assert_frame,
    assert_same,
    message_for,
    open_hub,
    state_of,
    wait_alive,
    wait_until,
)
from netgear import Packet
from procs import CTX, make_frame, serve, start

pytestmark = pytest.mark.timeout(60)

SHAPE = (12, 16, 3)
N = 2 * len(MESSAGES)  # every message twice
LIVENESS = 1.5  # the default liveness_timeout


def pacing(pattern: int) -> float:
    return 0.002 if pattern == 2 else 0.0


def expected_frames(salt: int, count: int = N, shape=SHAPE):
    return [make_frame(i, shape, "uint8", salt) for i in range(count)]


class Tally:
    """Checks, per port, that frames arrive once each and in order, with their messages."""

    def __init__(self, salts, messages=MESSAGES, count=N, shape=SHAPE):
        self.expected = {port: expected_frames(salt, count, shape) for port, salt in salts.items()}
        self.messages = messages
        self.next = {port: 0 for port in salts}
        self.server_ids = {port: set() for port in salts}

    def check(self, port, frame, message, has_message, seq=None, server_id=None):
        assert type(port) is int
        assert port in self.next, f"frame tagged with unknown port {port}"
        i = self.next[port]
        assert i < len(self.expected[port]), f"port {port}: more frames than were sent"
        assert_frame(frame, self.expected[port][i], f"port {port} frame {i}")
        want = message_for(i, self.messages)
        assert has_message is (want is not None), f"port {port} frame {i}: has_message {has_message}"
        if want is not None:
            assert_same(message, want, f"port {port} message {i}")
        else:
            assert message is None
        if seq is not None:
            assert seq == i + 1
        if server_id is not None:
            self.server_ids[port].add(server_id)
        self.next[port] = i + 1

    def check_legacy(self, item):
        """``(port, frame)`` or ``(port, message, frame)``."""
        assert type(item) is tuple, f"recv() gave {type(item)}"
        if len(item) == 2:
            port, frame = item
            self.check(port, frame, None, False)
        else:
            assert len(item) == 3, item
            port, message, frame = item
            self.check(port, frame, message, True)

    def check_packet(self, packet):
        assert isinstance(packet, Packet)
        self.check(packet.port, packet.frame, packet.message, packet.has_message, packet.seq, packet.server_id)

    @property
    def complete(self):
        return all(n == len(self.expected[p]) for p, n in self.next.items())


def start_servers(procs, inbox, ports, pattern, go, stop, salts, count=N, messages=MESSAGES):
    for port in ports:
        procs.append(
            start(serve, port, pattern, count, go=go, stop=stop, results=inbox.queue, salt=salts[port],
                  shape=SHAPE, messages=messages, interval=pacing(pattern))
        )


@pytest.mark.parametrize("api", ["recv", "recv_packet", "iter"])
@pytest.mark.parametrize("pattern", [1, 2])
def test_three_servers_every_frame_once_in_order_with_typed_messages(procs, gears, pattern, api):
    hub = open_hub(gears, [0, 0, 0], pattern)
    ports = hub.ports
    assert len(ports) == 3 and len(set(ports)) == 3 and all(type(p) is int and p > 0 for p in ports)
    salts = {port: 1000 * (k + 1) for k, port in enumerate(ports)}
    tally = Tally(salts)
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    start_servers(procs, inbox, ports, pattern, go, stop, salts)
    wait_alive(hub, 3)
    assert sorted(s.port for s in hub.snapshot().alive()) == sorted(ports)
    go.set()

    if api == "recv":
        while not tally.complete:
            tally.check_legacy(hub.recv(timeout=10))
    elif api == "recv_packet":
        while not tally.complete:
            tally.check_packet(hub.recv_packet(timeout=10))
    if api != "iter":
        inbox.wait("sent", 3)
        stop.set()
        end = hub.recv(timeout=LIVENESS + 5) if api == "recv" else hub.recv_packet(timeout=LIVENESS + 5)
        ended_at = time.time()
        assert end is None, f"a frame after the last one: {end!r}"
    else:
        for packet in hub:
            tally.check_packet(packet)
            if tally.complete:
                stop.set()  # the servers close; the loop must end by itself
        ended_at = time.time()
        assert tally.complete
    # later calls keep saying "end of stream"
    assert hub.recv(timeout=1) is None
    assert hub.recv_packet(timeout=1) is None

    closing = inbox.wait("closing", 3)
    last_close = max(item[2] for item in closing)
    assert ended_at >= last_close, "the stream ended before the last server closed"
    assert ended_at - last_close <= LIVENESS + 1.0

    pids = {item[1]: item[3] for item in inbox.wait("sent", 3)}
    snap = hub.snapshot()
    assert snap.ended is True
    assert len(snap.servers) == 3
    with_message = sum(1 for i in range(N) if message_for(i, MESSAGES) is not None)
    for port in ports:
        entry = snap.server(port)
        assert entry.server_id == f"{socket.gethostname()}:{pids[port]}"
        assert entry.state == "closed" and entry.reason == "closed"
        assert (entry.frames, entry.messages, entry.lost, entry.duplicates, entry.dropped) == (
            N, with_message, 0, 0, 0)
        assert entry.last_seq == N
        assert entry.topic == str(port)
        if api != "recv":
            assert tally.server_ids[port] == {entry.server_id}
        assert snap.rejected(port) == {}
    kinds = [(e.kind, e.port) for e in hub.pop_events()]
    assert sorted(k for k in kinds if k[0] == "joined") == sorted(("joined", p) for p in ports)
    assert sorted(k for k in kinds if k[0] == "left") == sorted(("left", p) for p in ports)
    assert kinds[-1] == ("ended", None) and len(kinds) == 7


@pytest.mark.parametrize("pattern", [1, 2])
def test_server_joining_after_another_left_is_received(procs, gears, caplog, pattern):
    caplog.set_level(logging.INFO, logger="netgear")
    hub = open_hub(gears, [0, 0], pattern)
    a, b = hub.ports
    count = 20
    salts = {a: 7, b: 8}
    tally = Tally(salts, messages=[None, "m"], count=count)
    go_a, go_b, inbox = CTX.Event(), CTX.Event(), Inbox()
    procs.append(start(serve, a, pattern, count, go=go_a, results=inbox.queue, salt=7, shape=SHAPE,
                       messages=[None, "m"], interval=pacing(pattern)))
    wait_alive(hub, 1)
    go_a.set()
    for _ in range(count):
        tally.check_legacy(hub.recv(timeout=10))
    wait_until(lambda: state_of(hub, a) == "closed", 10, "server A closed")
    # B's port is still expected (inside the startup grace): the stream goes on
    snap = hub.snapshot()
    assert snap.ended is False
    assert snap.server(b).state == "expected" and snap.server(b).server_id is None
    procs.append(start(serve, b, pattern, count, go=go_b, results=inbox.queue, salt=8, shape=SHAPE,
                       messages=[None, "m"], interval=pacing(pattern)))
    wait_until(lambda: state_of(hub, b) == "alive", 20, "server B alive")
    assert hub.snapshot().ended is False
    go_b.set()
    for _ in range(count):
        tally.check_legacy(hub.recv(timeout=10))
    assert tally.complete
    assert hub.recv(timeout=LIVENESS + 5) is None
    ended_at = time.time()
    (closing_b,) = inbox.wait("closing", 1, port=b)
    assert 0 <= ended_at - closing_b[2] <= LIVENESS + 1.0
    events = hub.pop_events()
    assert [(e.kind, e.port) for e in events] == [("joined", a), ("left", a), ("joined", b), ("left", b), ("ended", None)]
    # the same events were logged at INFO
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    for e in events[:-1]:
        line = f"port {e.port}: server {e.server_id} {e.kind}" + (" (closed)" if e.kind == "left" else "")
        assert line in logged, (line, logged)
    assert "every server is gone: end of stream" in logged


def test_reqrep_server_that_connects_and_closes_without_sending_stalls_nobody(procs, gears):
    pattern = 1
    hub = open_hub(gears, [0, 0, 0], pattern)
    a, b, quiet = hub.ports
    salts = {a: 1, b: 2}
    tally = Tally(salts)
    go, stop, stop_quiet, inbox = CTX.Event(), CTX.Event(), CTX.Event(), Inbox()
    start_servers(procs, inbox, [a, b], pattern, go, stop, salts)
    procs.append(start(serve, quiet, pattern, 0, stop=stop_quiet, results=inbox.queue))
    # a raw TCP connection that never even speaks ZMTP must not get in the way either
    raw = gears.enter_context(socket.create_connection(("127.0.0.1", quiet), timeout=5))
    wait_alive(hub, 3)
    go.set()
    stop_quiet.set()  # the quiet one leaves while the others stream
    while not tally.complete:
        tally.check_legacy(hub.recv(timeout=10))
    wait_until(lambda: state_of(hub, quiet) == "closed", 10, "quiet server closed")
    inbox.wait("sent", 2)
    snap = hub.snapshot()
    quiet_entry = snap.server(quiet)
    assert quiet_entry.state == "closed" and quiet_entry.reason == "closed"
    assert quiet_entry.frames == 0
    for port in (a, b):
        assert snap.server(port).state == "alive"
        assert snap.server(port).frames == N
    raw.close()
    stop.set()
    assert hub.recv(timeout=LIVENESS + 5) is None


@pytest.mark.parametrize("pattern", [1, 2])
def test_two_servers_on_one_port_are_kept_apart_and_reported(procs, gears, caplog, pattern):
    caplog.set_level(logging.WARNING, logger="netgear")
    hub = open_hub(gears, [0], pattern)
    (port,) = hub.ports
    count = 10
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    for sid, salt in (("cam-a", 1), ("cam-b", 2)):
        procs.append(start(serve, port, pattern, count, go=go, stop=stop, results=inbox.queue, salt=salt,
                           shape=(4, 4), messages=[sid], interval=pacing(pattern),
                           options={"server_id": sid}))
    wait_alive(hub, 2)
    go.set()
    got = {"cam-a": [], "cam-b": []}
    for _ in range(2 * count):
        packet = hub.recv_packet(timeout=10)
        assert packet.port == port
        assert packet.message == packet.server_id
        got[packet.server_id].append(packet)
    for sid, salt in (("cam-a", 1), ("cam-b", 2)):
        assert [p.seq for p in got[sid]] == list(range(1, count + 1))
        for i, p in enumerate(got[sid]):
            assert_frame(p.frame, make_frame(i, (4, 4), "uint8", salt))
    events = hub.pop_events()
    dups = [e for e in events if e.kind == "duplicate"]
    assert len(dups) == 1
    assert dups[0].port == port and {dups[0].server_id, dups[0].other_id} == {"cam-a", "cam-b"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "two servers" in r.getMessage()]
    assert len(warnings) == 1
    assert str(port) in warnings[0].getMessage()
    assert "cam-a" in warnings[0].getMessage() and "cam-b" in warnings[0].getMessage()
    snap = hub.snapshot()
    assert sorted((s.server_id, s.state, s.frames) for s in snap.servers) == [
        ("cam-a", "alive", count), ("cam-b", "alive", count)]
    stop.set()
    assert hub.recv(timeout=LIVENESS + 5) is None


@pytest.mark.parametrize("pattern", [1, 2])
def test_restarted_server_comes_back_alive(procs, gears, pattern):
    hub = open_hub(gears, [0, 0], pattern)
    port, other = hub.ports
    count = 5
    first_go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    # another server keeps the stream going meanwhile
    procs.append(start(serve, other, pattern, 0, stop=stop, results=inbox.queue))
    # first incarnation of "cam": sends, then dies without a goodbye. (It gets events of
    # its own: setting a multiprocessing Event a killed waiter was sleeping on hangs.)
    first_stop = CTX.Event()
    first = start(serve, port, pattern, count, go=first_go, stop=first_stop, results=inbox.queue,
                  salt=1, shape=(4, 4), interval=pacing(pattern), options={"server_id": "cam"})
    procs.append(first)
    wait_alive(hub, 2)
    first_go.set()
    for i in range(count):
        got_port, frame = hub.recv(timeout=10)
        assert got_port == port
        assert_frame(frame, make_frame(i, (4, 4), "uint8", 1))
    inbox.wait("sent", 1, port=port)
    first.kill()
    wait_until(lambda: state_of(hub, port, "cam") == "gone", 5, "first incarnation gone")
    second_go = CTX.Event()
    procs.append(start(serve, port, pattern, count, go=second_go, stop=stop, results=inbox.queue,
                       salt=2, shape=(4, 4), interval=pacing(pattern), options={"server_id": "cam"}))
    wait_until(lambda: state_of(hub, port, "cam") == "alive", 20, "restarted server alive")
    second_go.set()
    for i in range(count):
        packet = hub.recv_packet(timeout=10)
        assert (packet.port, packet.server_id, packet.seq) == (port, "cam", i + 1)
        assert_frame(packet.frame, make_frame(i, (4, 4), "uint8", 2))
    events = [(e.kind, e.reason) for e in hub.pop_events() if e.server_id == "cam"]
    assert events == [("joined", None), ("left", "disconnected"), ("returned", None)]
    snap = hub.snapshot()
    entry = snap.server(port, "cam")
    assert entry.state == "alive" and entry.frames == 2 * count and entry.lost == 0
    assert len(snap.servers) == 2 and snap.ended is False
    stop.set()
    assert hub.recv(timeout=LIVENESS + 5) is None
