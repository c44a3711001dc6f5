"""imagezmq 1.2 (real ImageSender / ImageHub, own processes) with our hub and our servers.

imagezmq senders into our hub: the sender's name (imagezmq's ``msg``) arrives as the
message *and* as the server id, REQ/REP senders get the answer they wait for (``b"OK"``,
or ``packet.reply(...)`` in bidirectional mode), and PUB/SUB senders, which bind, are
reached with ``connect_to``. imagezmq has no goodbye: a sender that closes is reported gone
(``disconnected``), and the stream ends when all are.

Our servers with ``wire_format="imagezmq"`` into an ImageHub: ``recv_image()`` /
``recv_jpg()`` get our frames, ``send_reply()`` is what our ``send()`` returns.
"""

from __future__ import annotations

import os
import signal
import time

import cv2
import numpy as np
import pytest
from interop_peers import (
    CTX,
    LOCAL,
    assert_close,
    assert_exact,
    free_port,
    imagezmq_hub,
    imagezmq_sender,
    index_of,
    noise,
    smooth,
)

from netgear import NetGear, Packet

pytestmark = pytest.mark.timeout(40)

N = 5
K = 5


def drain(hub: NetGear, timeout: float = 15.0) -> list[Packet]:
    packets: list[Packet] = []
    deadline = time.monotonic() + timeout
    while (packet := hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))) is not None:
        packets.append(packet)
    return packets


# --------------------------------------------------------------------------- senders -> our hub


def test_imagezmq_senders_reqrep_send_image(peers, gears):
    """Two senders share one port (imagezmq's usual layout: one ImageHub port for all),
    a third has its own: names keep the first two apart, ports tag all three."""
    hub = gears.enter_context(NetGear(address=LOCAL, port=[0, 0], pattern=1, multiserver_mode=True, receive_mode=True))
    shared, own = hub.ports
    senders = {"cam-a": (shared, 1), "cam-b": (shared, 2), "cam-c": (own, 3)}
    for name, (port, salt) in senders.items():
        peers.start(imagezmq_sender, name=name, url=f"tcp://{LOCAL}:{port}", count=N, salt=salt, hold=True)

    # A port counts as connected from its first sender on: had cam-a come and gone before
    # cam-b started, the stream would end there. So the senders close together, at the end.
    packets: list[Packet] = []
    deadline = time.monotonic() + 15
    while any(sum(p.server_id == name for p in packets) < N for name in senders):
        packet = hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))
        assert packet is not None, "the stream ended early"
        packets.append(packet)
    peers.stop.set()
    packets += drain(hub)

    for name, (port, salt) in senders.items():
        mine = [p for p in packets if p.server_id == name]
        assert len(mine) == N
        for i, packet in enumerate(mine):
            assert (packet.port, packet.topic, packet.message, packet.has_message) == (port, name, name, True)
            assert_exact(packet.frame, noise(i, salt), f"{name} frame {i}")
            assert packet.frame.flags.writeable and packet.seq == i + 1
    snap = hub.snapshot()
    assert snap.ended
    for name, (port, _) in senders.items():
        stats = snap.server(port, name)
        assert (stats.state, stats.reason) == ("gone", "disconnected"), stats  # imagezmq has no goodbye
        assert (stats.frames, stats.messages) == (N, N)
        assert dict(snap.rejected(port)) == {}
    peers.join()
    for name in senders:  # every send_image() got imagezmq's own answer
        assert [item[3] for item in peers.of("reply", name)] == [b"OK"] * N


def test_imagezmq_sender_reqrep_send_jpg_bidirectional(peers, gears):
    """send_jpg: the JPEG bytes arrive untouched (packet.jpeg) and decoded (packet.frame);
    with bidirectional_mode the sender's send_jpg() returns what packet.reply() gave."""
    hub = gears.enter_context(
        NetGear(address=LOCAL, port=[0], pattern=1, multiserver_mode=True, receive_mode=True, bidirectional_mode=True)
    )
    (port,) = hub.ports
    peers.start(imagezmq_sender, name="jpg-cam", url=f"tcp://{LOCAL}:{port}", jpg=True, count=N, salt=4)

    packets: list[Packet] = []
    deadline = time.monotonic() + 15
    while (packet := hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))) is not None:
        i = len(packets)
        packets.append(packet)
        ok, jpg = cv2.imencode(".jpg", smooth(i, 4))  # what the sender encoded, byte for byte
        assert ok and bytes(packet.jpeg) == jpg.tobytes()
        assert_close(packet.frame, smooth(i, 4), f"frame {i}")
        assert (packet.server_id, packet.message) == ("jpg-cam", "jpg-cam")
        if i % 2 == 0:
            assert packet.reply(f"ack {i}") is True  # str or bytes: the sender gets bytes
        # odd frames are answered b"OK" when the next one is asked for

    assert len(packets) == N
    peers.join()
    replies = [item[3] for item in peers.of("reply", "jpg-cam")]
    assert replies == [f"ack {i}".encode() if i % 2 == 0 else b"OK" for i in range(N)]


def test_imagezmq_senders_pubsub_connect_to(peers, gears):
    """PUB/SUB: each ImageSender binds ``tcp://*:P``; our hub connects to them (no port of
    its own) and tags their frames with P."""
    ports = [free_port(), free_port()]
    for name, port, salt in (("pub-a", ports[0], 5), ("pub-b", ports[1], 6)):
        peers.start(imagezmq_sender, name=name, url=f"tcp://*:{port}", reqrep=False, salt=salt)
    hub = gears.enter_context(
        NetGear(pattern=2, multiserver_mode=True, receive_mode=True, delivery="fifo",
                connect_to=[f"tcp://{LOCAL}:{port}" for port in ports])
    )
    assert hub.ports == ports

    packets: list[Packet] = []
    deadline = time.monotonic() + 15
    while any(sum(p.port == port for p in packets) < K for port in ports):
        packet = hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))
        assert packet is not None
        packets.append(packet)
    peers.stop.set()  # the senders close: their connections drop
    packets += drain(hub)

    for name, port, salt in (("pub-a", ports[0], 5), ("pub-b", ports[1], 6)):
        mine = [p for p in packets if p.port == port]
        assert {(p.server_id, p.message) for p in mine} == {(name, name)}
        indices = [index_of(p.frame, salt, False) for p in mine]
        assert indices == sorted(set(indices)) and len(indices) >= K
    snap = hub.snapshot()
    assert snap.ended
    assert [(s.port, s.state, s.reason) for s in snap.servers] == [(p, "gone", "disconnected") for p in sorted(ports)]
    peers.join()


def test_imagezmq_senders_pubsub_same_port_two_hosts(peers):
    """Two cameras that both bind port P (imagezmq's default layout), on two addresses: one
    port tag, kept apart by name; and the hub still closes at once."""
    port = free_port()
    hosts = {"cam-1": "127.0.0.1", "cam-2": "127.0.0.2"}  # two loopback addresses, one port
    for name, host in hosts.items():
        peers.start(imagezmq_sender, name=name, url=f"tcp://{host}:{port}", reqrep=False, salt=7)
    hub = NetGear(pattern=2, multiserver_mode=True, receive_mode=True, delivery="fifo",
                  connect_to=[f"tcp://{host}:{port}" for host in hosts.values()])
    try:
        assert hub.ports == [port, port]
        packets: list[Packet] = []
        deadline = time.monotonic() + 15
        while any(sum(p.server_id == name for p in packets) < K for name in hosts):
            packet = hub.recv_packet(timeout=max(0.01, deadline - time.monotonic()))
            assert packet is not None
            packets.append(packet)
        peers.stop.set()
        packets += drain(hub)
        assert {(p.port, p.server_id) for p in packets} == {(port, "cam-1"), (port, "cam-2")}
        assert sorted((s.server_id, s.state) for s in hub.snapshot().servers) == [("cam-1", "gone"), ("cam-2", "gone")]
    finally:
        began = time.monotonic()
        hub.close()
        assert time.monotonic() - began < 1.0
    peers.join()


def test_imagezmq_senders_liveness_is_their_connection(peers, gears):
    """Foreign senders never heartbeat: an idle one stays alive however long it is quiet;
    a frozen one (SIGSTOP) is dropped by ZeroMQ's own heartbeats within liveness_timeout."""
    liveness = 0.6
    hub = gears.enter_context(NetGear(address=LOCAL, port=[0, 0], pattern=1, multiserver_mode=True,
                                      receive_mode=True, liveness_timeout=liveness))
    idle_port, frozen_port = hub.ports
    peers.start(imagezmq_sender, name="idle", url=f"tcp://{LOCAL}:{idle_port}", count=1, hold=True)
    peers.start(imagezmq_sender, stop=CTX.Event(), name="frozen", url=f"tcp://{LOCAL}:{frozen_port}", count=1,
                hold=True)  # never stopped: frozen, then killed at teardown
    packets = [hub.recv_packet(timeout=15), hub.recv_packet(timeout=15)]
    assert sorted(p.server_id for p in packets) == ["frozen", "idle"]
    peers.wait("sent", 2)
    (frozen_pid,) = [item[2] for item in peers.of("ready", "frozen")]

    stopped = time.monotonic()
    os.kill(frozen_pid, signal.SIGSTOP)
    deadline = stopped + 10 * liveness
    while hub.snapshot().server(frozen_port, "frozen").state != "gone":
        assert time.monotonic() < deadline, hub.snapshot()
        time.sleep(0.02)
    assert hub.snapshot().server(frozen_port, "frozen").reason == "disconnected"
    while time.monotonic() < stopped + 3 * liveness:  # quiet for three timeouts: still alive
        assert hub.snapshot().server(idle_port, "idle").state == "alive"
        time.sleep(0.05)
    assert not hub.snapshot().ended

    peers.stop.set()  # the idle sender closes: nobody is left
    assert hub.recv_packet(timeout=15) is None
    assert sorted((s.server_id, s.state) for s in hub.snapshot().servers) == [("frozen", "gone"), ("idle", "gone")]


# --------------------------------------------------------------------------- our servers -> ImageHub


def test_our_servers_into_image_hub_reqrep(peers, gears):
    port = free_port()
    peers.start(imagezmq_hub, name="hub", url=f"tcp://{LOCAL}:{port}", count=2 * N)
    peers.wait("ready", name="hub")
    quiet = gears.enter_context(NetGear(address=LOCAL, port=port, pattern=1, wire_format="imagezmq", server_id="cam-a"))
    talky = gears.enter_context(NetGear(address=LOCAL, port=port, pattern=1, wire_format="imagezmq", server_id="cam-b"))
    floats = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

    replies = []
    for i in range(N):
        replies.append(quiet.send(noise(i, 1)))  # no message: imagezmq's msg is the server id
        replies.append(talky.send(floats + i, message={"i": i, "note": "any JSON value"}))
    peers.wait("end", name="hub")
    quiet.close()
    talky.close()
    peers.join()

    assert replies == [b"got %d" % n for n in range(2 * N)]  # ImageHub.send_reply(), as sent
    got = peers.of("frame", "hub")
    assert len(got) == 2 * N
    for i in range(N):
        (_, _, msg_a, image_a), (_, _, msg_b, image_b) = got[2 * i], got[2 * i + 1]
        assert msg_a == "cam-a"
        assert_exact(image_a, noise(i, 1), f"cam-a frame {i}")
        assert msg_b == {"i": i, "note": "any JSON value"}
        assert_exact(image_b, floats + i, f"cam-b frame {i}")


def test_our_server_into_image_hub_recv_jpg(peers, gears):
    """jpeg_compression=True frames and send_jpeg() bytes both reach ImageHub.recv_jpg()."""
    port = free_port()
    peers.start(imagezmq_hub, name="hub", url=f"tcp://{LOCAL}:{port}", jpg=True, count=2 * N)
    peers.wait("ready", name="hub")
    gear = gears.enter_context(
        NetGear(address=LOCAL, port=port, pattern=1, wire_format="imagezmq", server_id="jpeg-cam", jpeg_compression=True)
    )
    camera_jpegs = [cv2.imencode(".jpg", smooth(i, 9))[1].tobytes() for i in range(N)]
    for i in range(N):
        assert gear.send(smooth(i, 8)) == b"got %d" % (2 * i)
        assert gear.send_jpeg(camera_jpegs[i], message="mjpeg") == b"got %d" % (2 * i + 1)
    peers.wait("end", name="hub")
    gear.close()
    peers.join()

    got = peers.of("frame", "hub")
    assert len(got) == 2 * N
    for i in range(N):
        (_, _, msg, encoded), (_, _, msg_raw, passed) = got[2 * i], got[2 * i + 1]
        assert msg == "jpeg-cam"
        decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
        assert_close(decoded, smooth(i, 8), f"frame {i}")
        assert msg_raw == "mjpeg" and passed == camera_jpegs[i]  # untouched


def test_our_server_into_image_hub_pubsub(peers, gears):
    """PUB/SUB: our server binds (as an ImageSender does), the ImageHub connects."""
    port = free_port()
    gear = gears.enter_context(NetGear(address=LOCAL, port=port, pattern=2, wire_format="imagezmq", server_id="pub-cam"))
    peers.start(imagezmq_hub, name="hub", url=f"tcp://{LOCAL}:{port}", reqrep=False, count=K)
    peers.wait("ready", name="hub")
    deadline = time.monotonic() + 15
    index = 0
    while not peers.of("end", "hub"):  # early frames are lost until the hub's subscription is up
        assert time.monotonic() < deadline, "the ImageHub did not get its frames"
        assert gear.send(noise(index, 10)) is None
        index += 1
        time.sleep(0.01)
        peers.drain()
    gear.close()
    peers.join()

    got = peers.of("frame", "hub")
    assert len(got) == K
    indices = [index_of(image, 10, False) for _, _, _, image in got]
    assert indices == sorted(set(indices))
    assert {msg for _, _, msg, _ in got} == {"pub-cam"}
