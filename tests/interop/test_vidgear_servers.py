"""Camera hosts that still run vidgear's NetGear (real class, own process) into our hub.

"Keep your camera hosts, replace the hub": vidgear 0.3.x servers, REQ/REP and PUB/SUB,
multi-server and single pair, raw and JPEG (vidgear's default), with and without messages,
alone or beside our own servers on one hub.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from interop_peers import (
    LOCAL,
    assert_frame,
    index_of,
    message,
    netgear_server,
    vidgear_server,
)

from netgear import NetGear, Packet

pytestmark = pytest.mark.timeout(40)

N = 5  # frames per REQ/REP or PAIR server
K = 5  # frames a PUB/SUB test waits for from every server before stopping them
#: what a vidgear server's close() becomes on our hub. Its goodbye arrives under REQ/REP and
#: PAIR; under PUB/SUB it is sent as the socket closes with linger 0 and is often lost:
#: then the dropped connection reports it gone.
PUBSUB_ENDINGS = {("closed", "closed"), ("gone", "disconnected")}


def hub_of(gears, ports: Any, pattern: int, **options: Any) -> NetGear:
    if isinstance(ports, list):
        options["multiserver_mode"] = True
    if pattern == 2:
        options.setdefault("delivery", "fifo")  # every frame that arrives, in order
    return gears.enter_context(NetGear(address=LOCAL, port=ports, pattern=pattern, receive_mode=True, **options))


def drain(hub: NetGear, packets: list[Packet], timeout: float = 15.0) -> None:
    """Receive until the end of the stream (bounded: RecvTimeout otherwise)."""
    deadline = time.monotonic() + timeout
    while (packet := hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))) is not None:
        packets.append(packet)


def stream_until(hub: NetGear, peers, counts: dict[int, int], timeout: float = 15.0) -> list[Packet]:
    """PUB/SUB: receive until every port in ``counts`` delivered that many frames, then
    stop the peers and receive the rest until the end of the stream."""
    packets: list[Packet] = []
    deadline = time.monotonic() + timeout
    while any(sum(p.port == port for p in packets) < n for port, n in counts.items()):
        packet = hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))
        assert packet is not None, "the stream ended early"
        packets.append(packet)
    peers.stop.set()
    drain(hub, packets)
    return packets


def check_stream(packets: list[Packet], port: int, name: str, salt: int, jpeg: bool, messages: bool) -> int:
    """Frames of one PUB/SUB server: each one sent, in order, with its message; returns the count."""
    mine = [p for p in packets if p.port == port]
    last = -1
    for packet in mine:
        if messages:
            assert packet.has_message and packet.message["from"] == name
            index = packet.message["i"]
            assert packet.message == message(name, index)
            assert_frame(packet.frame, index, salt, jpeg, f"{name} frame {index}")
            assert index > last, f"{name}: frame {index} after {last}"
            last = index
        else:
            assert not packet.has_message and packet.message is None
            index = index_of(packet.frame, salt, jpeg)
            if not jpeg:  # JPEG indices are only known modulo 80
                assert index > last, f"{name}: frame {index} after {last}"
                last = index
    return len(mine)


@pytest.mark.parametrize("jpeg", [False, True], ids=["raw", "jpeg"])
def test_vidgear_servers_reqrep(peers, gears, jpeg):
    hub = hub_of(gears, [0, 0], 1)
    a, b = hub.ports
    peers.start(vidgear_server, name="a", port=a, pattern=1, jpeg=jpeg, messages=True, count=N, salt=1)
    peers.start(vidgear_server, name="b", port=b, pattern=1, jpeg=jpeg, messages=False, count=N, salt=2)

    got: dict[int, list[tuple]] = {a: [], b: []}
    deadline = time.monotonic() + 20
    while True:
        data = hub.recv(timeout=max(0.01, deadline - time.monotonic()))  # vidgear's shapes
        if data is None:
            break
        assert type(data[0]) is int
        got[data[0]].append(data[1:])

    assert len(got[a]) == N and len(got[b]) == N
    for i, (msg, frame) in enumerate(got[a]):  # (port, message, frame)
        assert msg == message("a", i)
        assert_frame(frame, i, 1, jpeg, f"a frame {i}")
    for i, item in enumerate(got[b]):  # (port, frame): no message
        assert len(item) == 1
        assert_frame(item[0], i, 2, jpeg, f"b frame {i}")
        assert item[0].flags.writeable

    snap = hub.snapshot()
    assert snap.ended
    for port, messages in ((a, N), (b, 0)):
        stats = snap.server(port, f"vidgear:{port}")
        assert stats is not None, snap
        assert (stats.state, stats.reason) == ("closed", "closed")
        assert (stats.frames, stats.messages, stats.topic) == (N, messages, str(port))
        assert stats.bytes > 0 and stats.dropped == 0
        assert dict(snap.rejected(port)) == {}
    assert sorted(s.server_id for s in snap.servers) == sorted([f"vidgear:{a}", f"vidgear:{b}"])
    events = [(e.kind, e.port, e.reason) for e in hub.pop_events()]
    assert sorted(events[:-1], key=str) == sorted(
        [("joined", a, None), ("joined", b, None), ("left", a, "closed"), ("left", b, "closed")], key=str
    )
    assert events[-1] == ("ended", None, None)
    peers.join()
    # our hub answered each goodbye: vidgear's close() waits 0.8 s for that answer otherwise
    assert all(item[2] < 0.75 for item in peers.of("closed")), peers.of("closed")


@pytest.mark.parametrize("jpeg", [False, True], ids=["raw", "jpeg"])
def test_vidgear_servers_pubsub(peers, gears, jpeg):
    hub = hub_of(gears, [0, 0], 2)
    a, b = hub.ports
    peers.start(vidgear_server, name="a", port=a, pattern=2, jpeg=jpeg, messages=True, salt=1)
    peers.start(vidgear_server, name="b", port=b, pattern=2, jpeg=jpeg, messages=False, salt=2)

    packets = stream_until(hub, peers, {a: K, b: K})

    counts = {a: check_stream(packets, a, "a", 1, jpeg, True), b: check_stream(packets, b, "b", 2, jpeg, False)}
    snap = hub.snapshot()
    assert snap.ended
    for port in (a, b):
        stats = snap.server(port, f"vidgear:{port}")
        assert (stats.state, stats.reason) in PUBSUB_ENDINGS, stats
        assert stats.frames == counts[port] + stats.dropped and counts[port] >= K
        assert stats.messages == (stats.frames if port == a else 0)
        assert dict(snap.rejected(port)) == {}
    peers.join()


@pytest.mark.parametrize("pattern", [1, 2])
def test_mixed_hub_ours_and_vidgear(peers, gears, pattern):
    """One hub, one port fed by our server, one by vidgear's: both tagged, counted, ended."""
    hub = hub_of(gears, [0, 0], pattern)
    ours, theirs = hub.ports
    count = N if pattern == 1 else None
    peers.start(netgear_server, name="ours", port=ours, pattern=pattern, count=count, salt=3, messages=True,
                options={"multiserver_mode": True, "server_id": "ours"})
    peers.start(vidgear_server, name="theirs", port=theirs, pattern=pattern, jpeg=False, count=count, salt=4,
                messages=True)

    if pattern == 1:
        packets: list[Packet] = []
        drain(hub, packets)
    else:
        packets = stream_until(hub, peers, {ours: K, theirs: K})

    assert {p.server_id for p in packets if p.port == ours} == {"ours"}
    assert {p.server_id for p in packets if p.port == theirs} == {f"vidgear:{theirs}"}
    seen = {port: check_stream(packets, port, name, salt, False, True)
            for port, name, salt in ((ours, "ours", 3), (theirs, "theirs", 4))}
    ours_seqs = [p.seq for p in packets if p.port == ours]
    theirs_seqs = [p.seq for p in packets if p.port == theirs]
    assert ours_seqs == sorted(ours_seqs) and theirs_seqs == sorted(theirs_seqs)
    if pattern == 1:
        assert seen == {ours: N, theirs: N}
        assert theirs_seqs == list(range(1, N + 1))  # the hub numbers foreign frames itself
    snap = hub.snapshot()
    assert snap.ended
    assert (snap.server(ours, "ours").state, snap.server(ours, "ours").reason) == ("closed", "closed")
    theirs_stats = snap.server(theirs, f"vidgear:{theirs}")
    ending = (theirs_stats.state, theirs_stats.reason)
    assert ending in ({("closed", "closed")} if pattern == 1 else PUBSUB_ENDINGS), theirs_stats
    assert [snap.server(port).frames - snap.server(port).dropped for port in (ours, theirs)] == [seen[ours], seen[theirs]]
    peers.join()


@pytest.mark.parametrize(
    "pattern,jpeg,messages",
    [(0, True, True), (1, False, False), (2, False, True)],
    ids=["pair-jpeg-messages", "reqrep-raw", "pubsub-raw-messages"],
)
def test_vidgear_single_pair(peers, gears, pattern, jpeg, messages):
    """vidgear's default mode (no multiserver_mode; pattern 0 PAIR by default) into our
    single-pair hub: the same pattern number on both sides."""
    hub = hub_of(gears, 0, pattern)
    (port,) = hub.ports
    count = N if pattern != 2 else None
    peers.start(vidgear_server, name="solo", port=port, pattern=pattern, multiserver=False, jpeg=jpeg,
                messages=messages, count=count, salt=5)

    if pattern == 2:
        packets = stream_until(hub, peers, {port: K})
        check_stream(packets, port, "solo", 5, jpeg, messages)
    else:
        got: list[Any] = []
        deadline = time.monotonic() + 20
        while (data := hub.recv(timeout=max(0.01, deadline - time.monotonic()))) is not None:
            got.append(data)  # single pair: frame, or (message, frame)
        assert len(got) == N
        for i, data in enumerate(got):
            if messages:
                assert data[0] == message("solo", i)
                data = data[1]
            assert_frame(data, i, 5, jpeg, f"frame {i}")
    snap = hub.snapshot()
    stats = snap.server(port, "vidgear")
    assert stats is not None and stats.topic == "vidgear", snap
    assert snap.ended
    ending = (stats.state, stats.reason)
    assert ending in ({("closed", "closed")} if pattern != 2 else PUBSUB_ENDINGS), stats
    assert dict(snap.rejected(port)) == {}
    peers.join()


def test_vidgear_bidirectional_server(peers, gears):
    """vidgear's bidirectional_mode: packet.reply(data) is what the vidgear server's send() returns."""
    hub = hub_of(gears, [0], 1, bidirectional_mode=True)
    (port,) = hub.ports
    peers.start(vidgear_server, name="bi", port=port, pattern=1, messages=True, count=N, salt=6, bidirectional=True)
    deadline = time.monotonic() + 20
    delivered = 0
    for packet in iter(lambda: hub.recv_packet(timeout=max(0.01, deadline - time.monotonic())), None):
        assert_frame(packet.frame, delivered, 6, False, f"frame {delivered}")
        assert packet.reply({"seen": packet.message["i"], "ok": True}) is True
        delivered += 1
    assert delivered == N
    peers.join()
    replies = [item[3] for item in peers.of("reply", "bi")]
    assert replies == [{"seen": i, "ok": True} for i in range(N)]
