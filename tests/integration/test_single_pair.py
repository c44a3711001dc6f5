"""One server, one hub, every pattern: frames of every dtype and layout arrive bit-exact.

The server lives in the test process (one server only); sockets are real ZeroMQ TCP on
127.0.0.1 with a kernel-chosen port (and ipc for one test).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import assert_frame, assert_same, open_hub, open_server, wait_alive
from netgear import NetGear
from procs import make_frame

pytestmark = pytest.mark.timeout(60)

PATTERNS = [0, 1, 2]
DTYPES = [
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "float16",
    "float32",
    "float64",
    "int64",
    "uint64",
    "bool",
    ">i4",  # byte order is part of the dtype and survives the trip
    ">f8",
]
SHAPES = [(7,), (5, 3), (4, 6, 3), (2, 3, 4, 2)]


def cases(dtype: str):
    """(name, array) pairs: contiguous frames of 1..4 dims and non-contiguous views."""
    out = [(f"contiguous{shape}", make_frame(i, shape, dtype, salt=11)) for i, shape in enumerate(SHAPES)]
    base = make_frame(99, (6, 8, 3), dtype, salt=12)
    out += [
        ("slice", base[::2, 1:7:3]),
        ("transposed", base.transpose(1, 0, 2)),
        ("reversed", base[:, ::-1, ::-1]),
        ("fortran", np.asfortranarray(base[:, :, 0])),
        ("column", base[:, 2, 1]),
        ("4d-view", make_frame(5, (3, 4, 5, 2), dtype, salt=13)[1:, ::2, :, ::-1]),
    ]
    assert any(not a.flags.c_contiguous for _, a in out)
    return out


def connect_pair(gears, pattern):
    hub = open_hub(gears, 0, pattern)
    (port,) = hub.ports
    assert type(port) is int and port > 0
    server = open_server(gears, port, pattern)
    if pattern == 2:
        wait_alive(hub, 1)  # its heartbeat arrived: the subscription is in place
    return hub, server


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_dtype_and_layout_arrives_bit_exact_and_writable(gears, pattern, dtype):
    hub, server = connect_pair(gears, pattern)
    for j, (name, frame) in enumerate(cases(dtype)):
        expected = frame.copy()  # what the hub must see, whatever happens to `frame`
        message = None if j % 2 == 0 else {"case": name, "j": j, "swapped": np.arange(3, dtype=">u2")}
        assert server.send(frame, message=message) is None
        got = hub.recv(timeout=10)
        if message is None:
            # legacy single-pair shape: the bare frame
            assert isinstance(got, np.ndarray), f"{name}: {type(got)}"
            received = got
        else:
            assert type(got) is tuple and len(got) == 2, f"{name}: {got!r}"
            assert_same(got[0], message, f"{name} message")
            received = got[1]
        assert_frame(received, expected, name)
        assert received.flags.c_contiguous
        # writable in fact, not just flagged so
        received[...] = np.zeros_like(received)
        assert np.count_nonzero(received) == 0
        assert np.array_equal(frame, expected), "the sender's array was modified"
    snap = hub.snapshot()
    (entry,) = snap.servers
    assert entry.state == "alive"
    assert entry.frames == len(cases(dtype))
    assert entry.messages == len(cases(dtype)) // 2
    assert entry.lost == 0 and entry.duplicates == 0 and entry.dropped == 0


@pytest.mark.parametrize("pattern", PATTERNS)
def test_large_frame_and_packet_fields(gears, pattern):
    hub, server = connect_pair(gears, pattern)
    frame = make_frame(3, (480, 640, 3), "uint8", salt=5)
    server.send(frame, message=("big", 1))
    packet = hub.recv_packet(timeout=10)
    assert_frame(packet.frame, frame)
    assert_same(packet.message, ("big", 1))
    assert packet.has_message is True
    assert packet.port == hub.ports[0] and type(packet.port) is int
    assert packet.server_id == server.server_id
    assert packet.topic == str(hub.ports[0])
    assert packet.seq == 1
    assert 0 <= packet.latency < 5
    server.send(frame[::2, ::2])
    packet = hub.recv_packet(timeout=10)
    assert_frame(packet.frame, frame[::2, ::2])
    assert packet.has_message is False and packet.message is None
    assert packet.seq == 2


@pytest.mark.parametrize("pattern", PATTERNS)
def test_ipc_single_pair(gears, tmp_path, pattern):
    hub = gears.enter_context(
        NetGear(address=str(tmp_path), port=5566, protocol="ipc", pattern=pattern, receive_mode=True,
                **({"delivery": "fifo"} if pattern == 2 else {}))
    )
    assert hub.ports == [5566]
    assert (tmp_path / "netgear-5566.sock").exists()
    server = gears.enter_context(NetGear(address=str(tmp_path), port=5566, protocol="ipc", pattern=pattern))
    if pattern == 2:
        wait_alive(hub, 1)
    frames = [make_frame(i, (9, 11), "int16", salt=3) for i in range(5)]
    for i, frame in enumerate(frames):
        server.send(frame, message=i)
    for i, frame in enumerate(frames):
        message, got = hub.recv(timeout=10)
        assert_same(message, i)
        assert_frame(got, frame)
    server.close()
    assert hub.recv(timeout=5) is None
