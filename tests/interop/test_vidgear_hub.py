"""Our servers with ``wire_format="vidgear"`` into a real vidgear NetGear hub (own process).

The reverse migration: netgear camera hosts feeding a hub that still runs vidgear 0.3.x.
Multi-server and single pair, REQ/REP, PUB/SUB and PAIR, raw and JPEG, with messages; our
``close()`` is vidgear's goodbye, which ends the vidgear hub's stream (its ``recv()``
returns None) once every server said it.

A vidgear hub drops what is still queued when the last goodbye arrives, so every test
first waits until the hub reported the frames it checks, then closes the servers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from interop_peers import (
    LOCAL,
    assert_frame,
    free_port,
    index_of,
    message,
    noise,
    smooth,
    vidgear_hub,
)

from netgear import NetGear

pytestmark = pytest.mark.timeout(40)

N = 5  # frames per server under REQ/REP and PAIR
K = 5  # frames the hub must report per server under PUB/SUB before the servers stop


def server(gears, port: int, pattern: int, multiserver: bool, jpeg: bool) -> NetGear:
    return gears.enter_context(
        NetGear(address=LOCAL, port=port, pattern=pattern, multiserver_mode=multiserver,
                wire_format="vidgear", jpeg_compression=jpeg)
    )


def frames_of(peers) -> list[Any]:
    return [item[2] for item in peers.of("frame", "hub")]


def send_until_reported(peers, senders: list[tuple], want: dict[Any, int], key, timeout: float = 15.0) -> None:
    """PUB/SUB: every 10 ms each sender sends its next frame, until the hub reported
    ``want[k]`` frames for every key ``k`` (``key(frame report)``); slow joiners and the
    hub's high-water mark of 1 lose some."""
    deadline = time.monotonic() + timeout
    index = 0
    while True:
        peers.drain()
        counts = {k: sum(key(data) == k for data in frames_of(peers)) for k in want}
        if all(counts[k] >= n for k, n in want.items()):
            return
        assert time.monotonic() < deadline, f"hub reported {counts}, want {want}"
        for gear, make, salt, name in senders:
            gear.send(make(index, salt), message=message(name, index) if name else None)
        index += 1
        time.sleep(0.01)


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
@pytest.mark.parametrize("jpeg", [False, True], ids=["raw", "jpeg"])
def test_our_servers_into_vidgear_hub(peers, gears, pattern, jpeg):
    ports = [free_port(), free_port()]
    peers.start(vidgear_hub, name="hub", ports=ports, pattern=pattern, multiserver=True)
    peers.wait("ready", name="hub")
    a = server(gears, ports[0], pattern, True, jpeg)
    b = server(gears, ports[1], pattern, True, jpeg)
    make = smooth if jpeg else noise

    if pattern == 1:
        for i in range(N):
            assert a.send(make(i, 1), message=message("a", i)) is None
            assert b.send(make(i, 2)) is None
        peers.wait("frame", 2 * N, "hub")
    else:
        send_until_reported(peers, [(a, make, 1, "a"), (b, make, 2, None)], {ports[0]: K, ports[1]: K},
                            key=lambda data: data[0])
    a.close()
    b.close()  # the last goodbye: vidgear's hub ends its stream
    peers.wait("end", 1, "hub")
    peers.join()

    got = frames_of(peers)
    mine = {port: [data for data in got if data[0] == port] for port in ports}
    assert sum(map(len, mine.values())) == len(got), "frames tagged with another port"
    last = -1
    for position, (port, msg, frame) in enumerate(mine[ports[0]]):  # (port, message, frame)
        assert type(port) is int
        index = msg["i"] if pattern == 2 else position
        assert msg == message("a", index) and index > last
        last = index
        assert_frame(frame, index, 1, jpeg, f"a frame {index}")
    for position, data in enumerate(mine[ports[1]]):  # (port, frame): no message
        assert len(data) == 2
        index = position if pattern == 1 else index_of(data[1], 2, jpeg)
        assert_frame(data[1], index, 2, jpeg, f"b frame {index}")
    if pattern == 1:
        assert [len(mine[port]) for port in ports] == [N, N]


@pytest.mark.parametrize(
    "pattern,jpeg", [(0, True), (1, False), (2, False)], ids=["pair-jpeg", "reqrep-raw", "pubsub-raw"]
)
def test_our_server_into_vidgear_single_pair_hub(peers, gears, pattern, jpeg):
    """vidgear's single-pair hub hands over frames only (it drops messages outside its
    bidirectional mode), and ends on our goodbye."""
    port = free_port()
    peers.start(vidgear_hub, name="hub", ports=[port], pattern=pattern, multiserver=False)
    peers.wait("ready", name="hub")
    gear = server(gears, port, pattern, False, jpeg)
    make = smooth if jpeg else noise

    if pattern == 2:
        send_until_reported(peers, [(gear, make, 7, "solo")], {"all": K}, key=lambda data: "all")
    else:
        for i in range(N):
            assert gear.send(make(i, 7), message=message("solo", i)) is None
        peers.wait("frame", N, "hub")
    gear.close()
    peers.wait("end", 1, "hub")
    peers.join()

    got = frames_of(peers)
    assert all(isinstance(frame, np.ndarray) for frame in got)
    indices = [index_of(frame, 7, jpeg) for frame in got]
    for index, frame in zip(indices, got):
        assert_frame(frame, index, 7, jpeg, f"frame {index}")
    if pattern == 2:
        assert len(got) >= K and indices == sorted(indices)
    else:
        assert indices == list(range(N))
