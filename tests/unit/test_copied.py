"""``transport.copied``: the message a server sends instead of a small JPEG (no zero-copy
loan of the caller's buffer, so no wake-up of pyzmq's garbage-collector thread)."""

from __future__ import annotations

import zmq

from netgear.transport import JPEG_COPY_BELOW, copied


def test_the_copy_owns_its_bytes():
    data = bytearray(b"\xff\xd8" + bytes(range(256)) * 400)
    frame = copied(memoryview(data))
    original = bytes(data)
    data[:] = bytes(len(data))  # the caller reuses its buffer at once
    assert isinstance(frame, zmq.Frame)
    assert frame.bytes == original


def test_the_copy_goes_out_whole_on_a_socket():
    ctx = zmq.Context()
    try:
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        for sock in (pull, push):
            sock.setsockopt(zmq.LINGER, 0)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        data = bytearray(JPEG_COPY_BELOW - 1)
        data[::997] = b"\x01" * len(data[::997])
        push.send(copied(data), copy=False)
        expected = bytes(data)
        data[:] = bytes(len(data))
        assert pull.poll(10_000)
        assert pull.recv() == expected
    finally:
        pull.close(0)
        push.close(0)
        ctx.term()
