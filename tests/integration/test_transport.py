"""The hub's transport on its own, with raw pyzmq peers on loopback: connection events.

The hub watches each connection monitor by its descriptor (ZMQ_FD) rather than as a ZeroMQ
socket. libzmq signals that descriptor only for a message that arrives in a queue a read
last found empty, so these tests make connections come and go with no message on the data
socket (nothing else would read the monitor) and check that every one is reported by a
poll that was asleep when it happened.
"""

from __future__ import annotations

import time

import pytest
import zmq

from helpers import LOCAL
from netgear.options import Endpoint, Options
from netgear.transport import Disconnected, HubTransport

pytestmark = pytest.mark.timeout(60)

PEER = {1: zmq.DEALER, 2: zmq.PUB}


def handshake(peer: zmq.Socket, connect: str = "", timeout: float = 5.0) -> None:
    """Connect ``peer`` (if ``connect``) and wait until a ZMTP handshake completed on it."""
    monitor = peer.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        if connect:
            peer.connect(connect)
        assert monitor.poll(int(timeout * 1000)), "no handshake"
        monitor.recv_multipart()
    finally:
        peer.disable_monitor()
        monitor.close(0)


def poll_until_disconnected(transport: HubTransport, timeout: float = 3.0) -> list:
    """Poll (each call may sleep up to 0.5 s) until a ``Disconnected`` comes; every
    observation made on the way, or an assertion error after ``timeout``."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while not any(isinstance(o, Disconnected) for o in seen):
        assert time.monotonic() < deadline, f"only {seen} after {timeout}s"
        seen += transport.poll(0.5)[0]
    return seen


@pytest.mark.parametrize("pattern", [1, 2])
def test_a_silent_peer_that_leaves_is_reported_every_time(pattern):
    """Three peers in turn connect, say nothing and close: each disconnect wakes the poll."""
    transport = HubTransport(pattern, [Endpoint("tcp", LOCAL, 0)], Options())
    ctx = zmq.Context()
    try:
        (port,) = transport.ports
        for _ in range(3):
            peer = ctx.socket(PEER[pattern])
            handshake(peer, f"tcp://{LOCAL}:{port}")
            began = time.monotonic()
            peer.close(0)
            seen = poll_until_disconnected(transport)
            assert time.monotonic() - began < 1.5
            assert [(type(o), o.port) for o in seen] == [(Disconnected, port)]
    finally:
        transport.close()
        ctx.term()


def test_two_endpoints_on_one_port_number_each_report_their_own_disconnects():
    """``connect_to`` two publishers that bind the same port number on two addresses (the
    imagezmq layout): the hub's two sockets share a port tag, and a publisher leaving
    before it sent anything is still reported, for each of them."""
    ctx = zmq.Context()
    first = ctx.socket(zmq.PUB)
    port = first.bind_to_random_port("tcp://127.0.0.1")
    second = ctx.socket(zmq.PUB)
    second.bind(f"tcp://127.0.0.2:{port}")
    publishers = [first, second]
    transport = None
    try:
        watched = []
        for pub in publishers:  # (the monitors watch the handshakes the hub will start)
            watched.append(pub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED))
        opts = Options(connect_to=[f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.2:{port}"])
        transport = HubTransport(2, [], opts)
        assert transport.ports == [port, port]
        for pub, monitor in zip(publishers, watched):
            assert monitor.poll(5000), "the hub did not connect"
            pub.disable_monitor()
            monitor.close(0)
        for pub in publishers:
            pub.close(0)
            seen = poll_until_disconnected(transport)
            assert [(type(o), o.port) for o in seen] == [(Disconnected, port)]
    finally:
        if transport is not None:
            transport.close()
        for pub in publishers:
            pub.close(0)
        ctx.term()
