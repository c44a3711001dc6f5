"""Who polls the hub's sockets: a waiting consumer polls them itself, the hub's I/O thread
takes them back when no consumer does, and several consumer threads may share a hub.

- three consumer threads on one hub split two servers' 150 frames each: every frame
  exactly once, each server's frames in order within each consumer, every consumer served;
- a consumer that goes away after one frame does not stall the servers: REQ/REP
  acknowledgements keep flowing (the I/O thread took the sockets back), so a server with a
  window of 4 frames sends on while nobody calls recv().
"""

from __future__ import annotations

import threading

import pytest

from helpers import Inbox, open_hub, wait_alive, wait_until
from procs import CTX, serve, start

pytestmark = pytest.mark.timeout(60)

FRAMES = 150


@pytest.mark.parametrize("pattern", [1, 2])
def test_three_consumer_threads_share_a_hub_every_frame_once(procs, gears, pattern):
    hub = open_hub(gears, [0, 0], pattern, delivery="fifo", queue_size=1000, startup_grace=None)
    inbox = Inbox()
    go = CTX.Event()
    for k, port in enumerate(hub.ports):
        procs.append(start(serve, port, pattern, FRAMES, go=go, results=inbox.queue, salt=k, shape=(8, 8, 3)))
    wait_alive(hub, 2)
    got = {name: [] for name in ("a", "b", "c")}
    errors = []

    def consume(name: str) -> None:
        try:
            while True:
                packet = hub.recv_packet(timeout=20)
                if packet is None:
                    return
                got[name].append((packet.port, packet.seq))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    consumers = [threading.Thread(target=consume, args=(name,), name=f"consumer-{name}") for name in got]
    for thread in consumers:
        thread.start()
    go.set()
    for thread in consumers:
        thread.join(40)
    assert not any(t.is_alive() for t in consumers), "a consumer is still blocked after the end of the stream"
    assert errors == []
    everything = [item for items in got.values() for item in items]
    assert sorted(everything) == sorted((port, seq) for port in hub.ports for seq in range(1, FRAMES + 1))
    assert all(got.values()), {name: len(items) for name, items in got.items()}
    for items in got.values():  # each consumer sees each server's frames in order
        for port in hub.ports:
            seqs = [seq for p, seq in items if p == port]
            assert seqs == sorted(seqs)


def test_a_consumer_away_does_not_stall_reqrep_servers(procs, gears):
    hub = open_hub(gears, [0], 1, delivery="latest")
    inbox = Inbox()
    go = CTX.Event()
    procs.append(start(serve, hub.ports[0], 1, 400, go=go, results=inbox.queue, shape=(8, 8, 3)))
    wait_alive(hub, 1)
    go.set()
    assert hub.recv_packet(timeout=10) is not None
    # nobody calls recv() from here on: the hub must keep answering on its own
    wait_until(lambda: hub.snapshot().server(hub.ports[0]).frames >= 400, 20, "all 400 frames acknowledged")
    inbox.wait("sent", 1, timeout=20)
    snap = hub.snapshot().server(hub.ports[0])
    assert snap.frames == 400 and snap.dropped >= 390  # `latest` kept only the newest
