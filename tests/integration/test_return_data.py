"""Return data (REQ/REP with ``bidirectional_mode``): the hub answers each frame, and the
server's ``send()`` returns exactly the answer to *its* frame.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers import Inbox, assert_frame, assert_same, open_hub, open_server, wait_alive
from netgear import ConfigError
from procs import CTX, make_frame, serve, start

pytestmark = pytest.mark.timeout(60)

N = 30


def answer_for(port, seq):
    """What the hub answers frame ``seq`` of ``port`` with (None: it does not answer)."""
    if seq % 10 == 5:
        # left unanswered: answered with None when the next frame is asked for (never the
        # last frame: that one would wait for a recv() that this test does not make)
        return None
    if seq % 2:
        return {"for": port, "seq": seq}
    return (port, seq, np.arange(seq, dtype=np.int64))


def test_packet_reply_goes_to_the_server_that_sent_that_frame(procs, gears):
    hub = open_hub(gears, [0, 0], 1, bidirectional_mode=True)
    ports = hub.ports
    go, stop, inbox = CTX.Event(), CTX.Event(), Inbox()
    for k, port in enumerate(ports):
        procs.append(start(serve, port, 1, N, go=go, stop=stop, results=inbox.queue, salt=k, shape=(4, 6),
                           options={"bidirectional_mode": True}))
    wait_alive(hub, 2)
    go.set()
    seen = {port: 0 for port in ports}
    for _ in range(2 * N):
        packet = hub.recv_packet(timeout=10)
        assert packet.seq == seen[packet.port] + 1
        assert_frame(packet.frame, make_frame(packet.seq - 1, (4, 6), "uint8", ports.index(packet.port)))
        seen[packet.port] = packet.seq
        data = answer_for(packet.port, packet.seq)
        if data is not None:
            assert packet.reply(data) is True
            assert packet.reply("again") is False  # one answer per frame
    assert seen == {port: N for port in ports}
    replies = inbox.wait("reply", 2 * N)
    for port in ports:
        got = [(item[2], item[3]) for item in replies if item[1] == port]
        assert [i for i, _ in got] == list(range(N))  # in the order sent
        for i, reply in got:
            assert_same(reply, answer_for(port, i + 1), f"port {port} reply {i}")
    inbox.wait("sent", 2)
    stop.set()
    assert hub.recv(timeout=5) is None
    # answering never made a server time out and retry (which would show as left/returned)
    kinds = sorted((e.kind, e.reason) for e in hub.pop_events())
    assert kinds == [("ended", None), ("joined", None), ("joined", None), ("left", "closed"), ("left", "closed")]


def test_recv_return_data_answers_the_previous_frame_single_pair(gears):
    hub = open_hub(gears, 0, 1, bidirectional_mode=True)
    server = open_server(gears, hub.ports[0], 1, bidirectional_mode=True)
    count = 8
    answers = ["answer-0", None, b"two", (3, np.arange(3, dtype=np.float32)), {4: [4]}, 0, "", "answer-7"]
    replies = []
    errors = []

    def produce():
        try:
            for i in range(count):
                replies.append(server.send(make_frame(i, (5, 5)), message=i))
            server.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    try:
        for i in range(count):
            # frame i arrives with this call, which also answers frame i - 1
            previous = answers[i - 1] if i else None
            message, frame = hub.recv(return_data=previous, timeout=10)
            assert message == i
            assert_frame(frame, make_frame(i, (5, 5)))
        # the last answer goes with the call that then sees the end of the stream
        assert hub.recv(return_data=answers[-1], timeout=10) is None
    finally:
        producer.join(5)
    assert errors == []
    assert len(replies) == count
    for i, (got, want) in enumerate(zip(replies, answers)):
        assert_same(got, want, f"reply {i}")


def test_reply_needs_bidirectional_mode(gears):
    hub = open_hub(gears, 0, 1)
    server = open_server(gears, hub.ports[0], 1)
    assert server.send(np.zeros(2, np.uint8)) is None  # plain ack, no data
    packet = hub.recv_packet(timeout=10)
    with pytest.raises(ConfigError) as err:
        packet.reply("x")
    assert err.value.option == "bidirectional_mode"
