"""The kernel send buffer of a server's connection to the hub (``send_buffer``), read back
from the kernel's own TCP socket: 512 KiB under REQ/REP and 128 KiB under PUB/SUB by
default, the OS's autotuning for PAIR and with ``send_buffer=0``. Under PUB/SUB the default
grows with the frames sent, on the live connection and on the next ones: to half the
largest frame, up to 256 KiB.

Linux reports twice the size asked for (the other half is its bookkeeping), and at least
its own minimum; an autotuned socket starts from ``net.ipv4.tcp_wmem``'s middle value.
"""

from __future__ import annotations

import os
import socket
import sys

import numpy as np
import pytest

from helpers import open_hub, open_server, wait_alive, wait_until

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp"),
]


def send_buffers_towards(port: int) -> list:
    """SO_SNDBUF of this process's TCP sockets connected to 127.0.0.1:``port``."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == port:  # ESTABLISHED
                inodes.add(inode)
    sizes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            dup = socket.socket(fileno=os.dup(int(fd)))
            try:
                sizes.append(dup.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
            finally:
                dup.close()
    return sizes


def autotuned_start() -> int:
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[1])


@pytest.mark.parametrize(
    "pattern, options, expected",
    [
        (1, {}, 2 * 512 * 1024),
        (2, {}, 2 * 128 * 1024),
        (1, {"send_buffer": 256 * 1024}, 2 * 256 * 1024),
        (2, {"send_buffer": 1024 * 1024}, 2 * 1024 * 1024),
        (1, {"send_buffer": 0}, None),
        (0, {}, None),
    ],
    ids=["reqrep-default", "pubsub-default", "reqrep-set", "pubsub-set", "reqrep-autotuned", "pair-autotuned"],
)
def test_a_servers_connection_has_the_send_buffer_asked_for(gears, pattern, options, expected):
    multiserver = pattern != 0  # (PAIR is the single-pair mode)
    hub = open_hub(gears, [0] if multiserver else 0, pattern)
    port = hub.ports[0]
    open_server(gears, port, pattern, multiserver_mode=multiserver, **options)
    wait_alive(hub, 1)
    sizes = send_buffers_towards(port)
    assert len(sizes) == 1, sizes  # the server's one connection (the hub's end has a local port)
    if expected is None:
        assert sizes[0] >= autotuned_start(), sizes  # left to the kernel: its starting size or more
        assert sizes[0] not in (2 * 128 * 1024, 2 * 512 * 1024)
    else:
        assert sizes == [expected]


def one_send_buffer_towards(port: int) -> int:
    sizes = send_buffers_towards(port)
    assert len(sizes) == 1, sizes
    return sizes[0]


def frame_of(nbytes: int) -> np.ndarray:
    return np.zeros((nbytes // 3, 3), np.uint8)


@pytest.mark.parametrize(
    "frame_bytes, expected",
    [
        (120_000, 2 * 128 * 1024),  # a compressed-size frame: the buffer stays at 128 KiB
        (400_002, 400_002),  # half of it, which the kernel doubles
        (921_600, 2 * 256 * 1024),  # 640x480x3: capped at 256 KiB
    ],
    ids=["small", "larger", "vga-capped"],
)
def test_a_pubsub_servers_buffer_grows_to_its_frames(gears, frame_bytes, expected):
    hub = open_hub(gears, [0], 2)
    port = hub.ports[0]
    server = open_server(gears, port, 2, multiserver_mode=True)
    wait_alive(hub, 1)
    assert one_send_buffer_towards(port) == 2 * 128 * 1024
    frame = frame_of(frame_bytes)
    server.send(frame)
    assert hub.recv_packet(timeout=10).frame.nbytes == frame.nbytes
    assert one_send_buffer_towards(port) == expected
    server.send(frame_of(frame_bytes // 4))  # a smaller frame later never shrinks it
    assert one_send_buffer_towards(port) == expected


def test_a_pubsub_servers_grown_buffer_carries_over_to_its_next_connection(gears):
    hub = open_hub(gears, [0], 2)
    port = hub.ports[0]
    server = open_server(gears, port, 2, multiserver_mode=True)
    wait_alive(hub, 1)
    server.send(frame_of(400_002))
    assert hub.recv_packet(timeout=10) is not None
    assert one_send_buffer_towards(port) == 400_002
    hub.close()  # the connection drops; a hub comes back on the same port
    wait_until(lambda: not send_buffers_towards(port), what="the connection to drop")
    hub = open_hub(gears, [port], 2)
    wait_alive(hub, 1)
    # the new connection starts with the grown buffer, before any frame goes out on it
    assert one_send_buffer_towards(port) == 400_002


def test_a_pubsub_send_buffer_set_by_the_user_never_changes(gears):
    hub = open_hub(gears, [0], 2)
    port = hub.ports[0]
    server = open_server(gears, port, 2, multiserver_mode=True, send_buffer=64 * 1024)
    wait_alive(hub, 1)
    server.send(frame_of(921_600))
    assert hub.recv_packet(timeout=10) is not None
    assert one_send_buffer_towards(port) == 2 * 64 * 1024
