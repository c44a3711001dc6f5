"""vidgear- and imagezmq-shaped messages that are malformed, from raw ZeroMQ sockets.

The hub recognises the format from the message, then validates it like its own: each bad
message is dropped and counted under its reason (``snapshot().rejected(port)``), a peer
that waits for an answer (vidgear's REQ and PAIR, imagezmq's REQ) still gets one so it
does not hang, nothing is ever unpickled, and the hub goes on delivering good frames.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import Any

import pytest
import zmq
from interop_peers import LOCAL, assert_exact, noise

from netgear import NetGear

pytestmark = pytest.mark.timeout(30)

MAX_MESSAGE = 4096  # the hub's max_message_bytes: a larger JSON message is "oversize"
IMAGE = noise(0, 11, (4, 4, 3))
VIDGEAR_REFUSAL = [b'{"return_type": "NoneType", "data": null}']


def vidgear_parts(server_port: Any, payload: bytes = IMAGE.tobytes(), **changes: Any) -> list[bytes]:
    """A vidgear frame as its NetGear.send() writes it, with ``changes`` to its header."""
    header = {"port": server_port, "terminate_flag": False, "compression": False, "message": None, "pattern": "1",
              "dtype": "uint8", "shape": [4, 4, 3]}
    header.update(changes)
    return [json.dumps({k: v for k, v in header.items() if v is not DROP}).encode(), payload]


def imagezmq_parts(payload: bytes = IMAGE.tobytes(), **changes: Any) -> list[bytes]:
    header = {"msg": "cam", "dtype": "uint8", "shape": [4, 4, 3]}
    header.update(changes)
    return [json.dumps({k: v for k, v in header.items() if v is not DROP}).encode(), payload]


DROP = object()
JPEG = {"dct": True, "ups": False, "colorspace": "BGR"}
DEEP = json.loads("[" * 300 + "]" * 300)  # messages nest at most 256 levels


def vidgear_cases(port: int) -> list[tuple[str, list[bytes]]]:
    return [
        ("bad_dtype", vidgear_parts(port, dtype="object")),  # what would need pickle
        ("bad_dtype", vidgear_parts(port, dtype="|O")),
        ("bad_dtype", vidgear_parts(port, dtype="complex128")),
        ("size_mismatch", vidgear_parts(port, shape=[4, 4, 4])),
        ("bad_shape", vidgear_parts(port, shape=[-1])),
        ("bad_shape", vidgear_parts(port, shape="4x4")),
        ("bad_header", vidgear_parts(port, pattern=DROP)),  # a key missing
        ("bad_header", vidgear_parts(port, pickle="gASVAAAA")),  # an unknown key
        ("bad_header", vidgear_parts(port, terminate_flag="yes")),
        ("bad_header", vidgear_parts(port, port=[1, 2])),
        ("bad_header", vidgear_parts(port, message=DEEP)),  # nested deeper than any message may be
        ("bad_header", [b'{"port": 5, "terminate_flag": fals', IMAGE.tobytes()]),  # not JSON
        ("bad_jpeg", vidgear_parts(port, b"not a JPEG", compression=JPEG, dtype="", shape="")),
        ("bad_codec", vidgear_parts(port, b"\xff\xd8", compression={**JPEG, "colorspace": "CMYK"}, dtype="", shape="")),
        ("bad_parts", vidgear_parts(port) + [b"extra"]),
        ("oversize", vidgear_parts(port, message="x" * (MAX_MESSAGE + 1))),
    ]


def imagezmq_cases() -> list[tuple[str, list[bytes]]]:
    return [
        ("size_mismatch", imagezmq_parts(b"\x00" * 5)),
        ("bad_jpeg", [b'{"msg": "cam"}', b"not a JPEG"]),
        ("bad_dtype", imagezmq_parts(dtype="<U5")),
        ("bad_dtype", imagezmq_parts(dtype="object")),
        ("bad_header", imagezmq_parts(shape=DROP)),
        ("bad_payload", imagezmq_parts(b"\x02", dtype="bool", shape=[1])),
        ("bad_parts", imagezmq_parts()[:1]),
        ("bad_header", [b'{"msg": "cam", "dtype": "uint8", "shape": [4, 4, 3], "msg": "twice"}', IMAGE.tobytes()]),
        ("oversize", imagezmq_parts(msg="y" * (MAX_MESSAGE + 1))),
    ]


def expected(cases: list[tuple[str, list[bytes]]]) -> dict:
    return dict(collections.Counter(reason for reason, _ in cases))


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def request(sock: zmq.Socket, parts: list[bytes]) -> list[bytes]:
    """Send ``parts`` on a REQ socket and return the answer (bounded)."""
    sock.send_multipart(parts)
    assert sock.poll(3000), "no answer: the peer would hang"
    return sock.recv_multipart()


def no_errors(caplog) -> None:
    errors = [r for r in caplog.records if r.name.startswith("netgear") and r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_malformed_reqrep(ctx, gears, caplog):
    """REQ/REP: every refused request is answered the way its sender waits for."""
    caplog.set_level(logging.DEBUG, logger="netgear")
    hub = gears.enter_context(
        NetGear(address=LOCAL, port=[0, 0, 0], pattern=1, multiserver_mode=True, receive_mode=True,
                max_message_bytes=MAX_MESSAGE)
    )
    vid_port, izmq_port, raw_port = hub.ports
    vid = ctx.socket(zmq.REQ)  # vidgear's server socket: REQ with these two options
    vid.setsockopt(zmq.REQ_RELAXED, 1)
    vid.setsockopt(zmq.REQ_CORRELATE, 1)
    vid.setsockopt(zmq.LINGER, 0)
    vid.connect(f"tcp://{LOCAL}:{vid_port}")
    izmq = ctx.socket(zmq.REQ)  # imagezmq's ImageSender socket: a plain REQ
    izmq.setsockopt(zmq.LINGER, 0)
    izmq.connect(f"tcp://{LOCAL}:{izmq_port}")
    raw = ctx.socket(zmq.DEALER)  # no REQ envelope at all
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(f"tcp://{LOCAL}:{raw_port}")

    for reason, parts in vidgear_cases(vid_port):
        assert request(vid, parts) == VIDGEAR_REFUSAL, reason
    for reason, parts in imagezmq_cases():
        assert request(izmq, parts) == [b"OK"], reason
    raw.send_multipart(vidgear_parts(raw_port))  # a vidgear message without the delimiter
    raw.send_multipart([b"", b"{"])  # JSON cut short: native by default, bad magic

    # the hub is still fine: good messages of both formats are delivered
    assert request(vid, vidgear_parts(vid_port, message={"ok": 1})) == VIDGEAR_REFUSAL  # the plain answer
    assert request(izmq, imagezmq_parts()) == [b"OK"]
    packets = [hub.recv_packet(timeout=5), hub.recv_packet(timeout=5)]
    by_port = {p.port: p for p in packets}
    assert by_port[vid_port].message == {"ok": 1} and by_port[vid_port].server_id == f"vidgear:{vid_port}"
    assert by_port[izmq_port].message == "cam" and by_port[izmq_port].server_id == "cam"
    for packet in packets:
        assert_exact(packet.frame, IMAGE, f"port {packet.port}")

    deadline = time.monotonic() + 5
    while dict(hub.snapshot().rejected(raw_port)) != {"bad_parts": 1, "bad_magic": 1}:
        assert time.monotonic() < deadline, dict(hub.snapshot().rejected(raw_port))
        time.sleep(0.01)
    snap = hub.snapshot()
    assert dict(snap.rejected(vid_port)) == expected(vidgear_cases(vid_port))
    assert dict(snap.rejected(izmq_port)) == expected(imagezmq_cases())
    assert snap.server(vid_port, f"vidgear:{vid_port}").frames == 1
    assert snap.server(izmq_port, "cam").frames == 1
    no_errors(caplog)
    for sock in (vid, izmq, raw):
        sock.close(0)


def test_malformed_pubsub(ctx, gears, caplog):
    """PUB/SUB: nothing to answer; everything is counted, in order, and the hub goes on."""
    caplog.set_level(logging.DEBUG, logger="netgear")
    hub = gears.enter_context(
        NetGear(address=LOCAL, port=[0], pattern=2, multiserver_mode=True, receive_mode=True, delivery="fifo",
                max_message_bytes=MAX_MESSAGE)
    )
    (port,) = hub.ports
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://{LOCAL}:{port}")
    deadline = time.monotonic() + 10
    while True:  # until the subscription is up: then nothing more is lost on this connection
        pub.send_multipart(vidgear_parts(port, message="hello"))
        try:
            first = hub.recv_packet(timeout=0.05)
            break
        except TimeoutError:
            assert time.monotonic() < deadline
    assert first.message == "hello"
    cases = vidgear_cases(port) + imagezmq_cases()
    for _, parts in cases:
        pub.send_multipart(parts)
    pub.send_multipart(imagezmq_parts(msg="last"))  # arrives after every bad one

    while (packet := hub.recv_packet(timeout=5)).message != "last":
        assert packet.message == "hello"  # a copy of the first one, sent before it arrived
    assert_exact(packet.frame, IMAGE, "last frame")
    assert dict(hub.snapshot().rejected(port)) == expected(cases)
    no_errors(caplog)
    pub.close(0)


def test_malformed_pair(ctx, gears, caplog):
    """PAIR (vidgear's single-pair default): refused frames are answered, as vidgear waits."""
    caplog.set_level(logging.DEBUG, logger="netgear")
    hub = gears.enter_context(NetGear(address=LOCAL, port=0, pattern=0, receive_mode=True,
                                      max_message_bytes=MAX_MESSAGE))
    (port,) = hub.ports
    pair = ctx.socket(zmq.PAIR)
    pair.setsockopt(zmq.LINGER, 0)
    pair.connect(f"tcp://{LOCAL}:{port}")
    cases = [(reason, [parts[0].replace(b'"port": %d, ' % port, b""), *parts[1:]])  # single pair: no port
             for reason, parts in vidgear_cases(port)]
    for reason, parts in cases:
        assert request(pair, parts) == VIDGEAR_REFUSAL, reason
    good = vidgear_parts(port, message=[1, "two"])
    good[0] = good[0].replace(b'"port": %d, ' % port, b"")
    assert request(pair, good) == VIDGEAR_REFUSAL
    packet = hub.recv_packet(timeout=5)
    assert (packet.port, packet.server_id, packet.message) == (port, "vidgear", [1, "two"])
    assert_exact(packet.frame, IMAGE, "frame")
    assert dict(hub.snapshot().rejected(port)) == expected(cases)
    no_errors(caplog)
    pair.close(0)
