"""Hostile input: malformed and oversized messages are dropped and counted, nothing else.

A raw pyzmq socket in the test (DEALER to the REQ/REP hub's ROUTER, XPUB to the PUB/SUB
hub's SUB) sends garbage to one port while a good server streams to another; then the
raw socket sends one good frame, which must arrive.
"""

from __future__ import annotations

import collections
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from helpers import Inbox, assert_frame, assert_same, open_hub, open_server, wait_alive
from netgear import MessageTooLarge
from netgear.transport import topic_frame
from netgear.wire import Limits, native
from procs import CTX, make_frame, serve, start

pytestmark = pytest.mark.timeout(60)

MAX_FRAME = 64 * 1024
MAX_MESSAGE = 4096
ROUNDS = 4
GOOD_COUNT = 60
PREFIX = native.MAGIC + bytes([native.VERSION])
BIG = Limits(1 << 20, 1 << 24)


def header(fields, prefix=PREFIX):
    return prefix + msgpack.packb(fields, use_bin_type=True)


def garbage(topic):
    """(reason, parts) pairs: every way a message can be wrong, and what it is counted as."""
    common = dict(k=0, q=1, t=time.time_ns(), id="raw", s=7, tp=topic)

    def frame_header(codec="raw", dtype="|u1", shape=(4, 4), **extra):
        return header({**common, "f": [codec, dtype, list(shape)], **extra})

    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    noise = b"\x00" + noise[1:]  # never starts with the magic
    good = native.encode_frame(seq=1, sent_ns=1, server_id="raw", session=7, topic=topic,
                               frame=np.zeros((4, 4), np.uint8), limits=BIG)
    return [
        ("bad_magic", [noise]),
        ("bad_parts", []),
        ("bad_parts", [good[0], good[1], b"extra"]),
        ("bad_parts", [good[0]]),  # frame announced, payload missing
        ("bad_magic", [b"XNG\x01" + good[0][4:], good[1]]),
        ("bad_magic", [b""]),
        ("bad_version", [native.MAGIC + b"\x03" + good[0][4:], good[1]]),
        ("bad_version", [native.MAGIC]),
        ("bad_header", [PREFIX + msgpack.packb([1, 2, 3])]),
        ("bad_header", [header({k: v for k, v in common.items() if k != "id"})]),
        ("bad_header", [header({**common, "zz": 1})]),
        ("bad_header", [header({**common, "q": "one"})]),
        ("bad_header", [header(common) + b"\x00"]),
        ("bad_header", [PREFIX + b"\x86\xa1k"]),  # truncated
        ("bad_kind", [header({**common, "k": 9})]),
        ("bad_kind", native.encode_ack(1, "hi", limits=BIG)),
        ("bad_codec", [frame_header(codec="webp"), bytes(16)]),
        ("bad_dtype", [frame_header(dtype="<c16", shape=(2,)), bytes(32)]),
        ("bad_dtype", [frame_header(dtype="|O", shape=(2,)), bytes(16)]),
        ("bad_shape", [frame_header(shape=(2, -1)), bytes(2)]),
        ("bad_shape", [frame_header(shape=(1, 1, 1, 1, 16)), bytes(16)]),
        ("size_mismatch", [frame_header(shape=(4, 4)), bytes(15)]),
        ("size_mismatch", [frame_header(dtype="<u2", shape=(4, 4)), bytes(16)]),
        ("bad_payload", [frame_header(dtype="|b1", shape=(4,)), b"\x00\x01\x02\x00"]),
        ("bad_message", [header({**common, "m": b"\xc1"})]),
        # a frame over the hub's max_frame_bytes (but under 2x: it reaches the codec)
        ("oversize", [frame_header(shape=(100 * 1024,)), bytes(100 * 1024)]),
        # messages over the hub's max_message_bytes: in the header's slack, and past it
        ("oversize", native.encode_frame(seq=1, sent_ns=1, server_id="raw", session=7, topic=topic,
                                         frame=None, message=b"x" * 6000, limits=BIG)),
        ("oversize", native.encode_frame(seq=1, sent_ns=1, server_id="raw", session=7, topic=topic,
                                         frame=None, message="y" * 20000, limits=BIG)),
    ]


class RawSender:
    """A raw socket speaking to one hub port, with the pattern's envelope."""

    def __init__(self, gears, pattern, port):
        self.pattern = pattern
        ctx = gears.enter_context(zmq.Context())
        kind = zmq.DEALER if pattern == 1 else zmq.XPUB
        self.sock = ctx.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        gears.callback(self.sock.close, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.topic = topic_frame(str(port))
        if pattern == 2:
            # the hub's SUB sends its subscription as soon as the connection is up
            assert self.sock.poll(10_000, zmq.POLLIN), "no subscription from the hub"
            assert self.sock.recv() == b"\x01"  # subscribe to everything (no filter)

    def send(self, parts):
        envelope = [b""] if self.pattern == 1 else [self.topic]
        self.sock.send_multipart([*envelope, *parts])


@pytest.mark.parametrize("pattern", [1, 2])
def test_malformed_messages_are_dropped_and_counted_while_others_deliver(procs, gears, pattern):
    hub = open_hub(gears, [0, 0], pattern, max_frame_bytes=MAX_FRAME, max_message_bytes=MAX_MESSAGE,
                   queue_size=1000)  # a consumer slowed by a loaded machine must not lose frames here
    raw_port, good_port = hub.ports
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    procs.append(start(serve, good_port, pattern, GOOD_COUNT, go=go, stop=stop, results=inbox.queue, salt=3,
                       shape=(8, 8), messages=["ok", None], interval=0.005,
                       options={"send_hwm": 1000}))  # PUB/SUB may drop under load: not what is tested here
    wait_alive(hub, 1)
    raw = RawSender(gears, pattern, raw_port)
    cases = garbage(str(raw_port))
    expected = collections.Counter()
    if pattern == 1:
        # REQ/REP only: a message without the REQ delimiter frame
        cases.append(("bad_parts", None))
    else:
        # PUB/SUB: a lone topic frame is not "no parts" there (publishers of foreign wire
        # formats send no topic frame, so it is read as the header); leave it out
        cases = [(reason, parts) for reason, parts in cases if parts != []]

    received, errors = [], []

    def consume():
        try:
            for _ in range(GOOD_COUNT):
                received.append(hub.recv_packet(timeout=10))
        except Exception as exc:  # reported below
            errors.append(exc)

    consumer = threading.Thread(target=consume, name="consumer", daemon=True)
    go.set()
    consumer.start()
    try:
        for _ in range(ROUNDS):
            for reason, parts in cases:
                if parts is None:
                    raw.sock.send_multipart([garbage(str(raw_port))[0][1][0]])  # no delimiter
                else:
                    raw.send(parts)
                expected[reason] += 1
            time.sleep(0.02)  # spread the rounds over the good server's stream
    finally:
        consumer.join(30)
    assert not consumer.is_alive()
    assert errors == []

    # the good server delivered everything, in order, meanwhile
    assert [p.port for p in received] == [good_port] * GOOD_COUNT
    for i, packet in enumerate(received):
        assert packet.seq == i + 1
        assert_frame(packet.frame, make_frame(i, (8, 8), "uint8", 3))
        assert packet.message == (["ok", None][i % 2])

    # the loop still works: a good frame from the same raw socket arrives after the garbage
    good = native.encode_frame(seq=1, sent_ns=time.time_ns(), server_id="raw", session=7,
                               topic=str(raw_port), frame=np.arange(12, dtype=np.int32).reshape(3, 4),
                               message={"after": "garbage"}, limits=BIG)
    raw.send(good)
    packet = hub.recv_packet(timeout=10)
    assert (packet.port, packet.server_id, packet.seq) == (raw_port, "raw", 1)
    assert_frame(packet.frame, np.arange(12, dtype=np.int32).reshape(3, 4))
    assert_same(packet.message, {"after": "garbage"})

    snap = hub.snapshot()
    assert dict(snap.rejected(raw_port)) == dict(expected)
    assert set(expected) <= set(native.REASONS)  # each one a documented reason
    assert snap.rejected(good_port) == {}
    assert next(p for p in snap.ports if p.port == raw_port).rejected_total == sum(expected.values())
    assert snap.server(raw_port, "raw").frames == 1
    assert snap.server(good_port).frames == GOOD_COUNT
    stop.set()


@pytest.mark.parametrize("pattern", [0, 1, 2])
def test_sender_refuses_what_the_limits_and_codec_refuse(gears, pattern):
    hub = open_hub(gears, 0, pattern)
    (port,) = hub.ports
    server = open_server(gears, port, pattern, max_message_bytes=4096, max_frame_bytes=4096)
    if pattern == 2:
        wait_alive(hub, 1)
    frame = np.zeros((4, 4), np.uint8)
    with pytest.raises(MessageTooLarge) as err:
        server.send(frame, message=b"x" * 5000)
    assert "max_message_bytes" in str(err.value)
    with pytest.raises(MessageTooLarge) as err:
        server.send(np.zeros(4097, np.uint8))
    assert "max_frame_bytes" in str(err.value)
    for bad, name in (({1, 2}, "set"), (1j, "complex"), ([object()], "object"), ({"k": range(3)}, "range")):
        with pytest.raises(TypeError) as err:
            server.send(frame, message=bad)
        assert name in str(err.value), str(err.value)
    with pytest.raises(TypeError) as err:
        server.send(np.zeros(3, np.complex64))
    assert "complex64" in str(err.value)
    with pytest.raises(TypeError) as err:
        server.send([[1, 2]])
    assert "list" in str(err.value)
    # none of that reached the hub, and the next good frame is number 1 (nothing "lost")
    server.send(frame, message="fine")
    message, got = hub.recv(timeout=10)
    assert message == "fine"
    assert_frame(got, frame)
    entry = hub.snapshot().server(port)
    assert (entry.frames, entry.last_seq, entry.lost) == (1, 1, 0)


def test_hub_drops_a_frame_whose_message_is_over_its_limit(gears):
    """A real server with a larger limit than the hub's: the hub drops it, the next one arrives."""
    hub = open_hub(gears, [0], 1, max_message_bytes=MAX_MESSAGE)
    (port,) = hub.ports
    server = open_server(gears, port, 1, multiserver_mode=True, request_timeout=0.3, max_retries=0, max_inflight=1)
    with pytest.raises(TimeoutError):  # dropped, so never acknowledged
        server.send(np.zeros(2, np.uint8), message=b"z" * 6000)
    server.send(np.ones(2, np.uint8), message=b"z" * 100)
    got_port, message, frame = hub.recv(timeout=10)
    assert (got_port, message) == (port, b"z" * 100)
    assert_frame(frame, np.ones(2, np.uint8))
    assert dict(hub.snapshot().rejected(port)) == {"oversize": 1}
