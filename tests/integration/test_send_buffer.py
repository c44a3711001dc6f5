"""The kernel send buffer of a server's connection to the hub (``send_buffer``), read back
from the kernel's own TCP socket: 512 KiB under REQ/REP and 128 KiB under PUB/SUB by
default, the OS's autotuning for PAIR and with ``send_buffer=0``.

Linux reports twice the size asked for (the other half is its bookkeeping), and at least
its own minimum; an autotuned socket starts from ``net.ipv4.tcp_wmem``'s middle value.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest

from helpers import open_hub, open_server, wait_alive

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
