"""Delivery policies and the end of the stream: what a slow consumer gets, and when the
hub says "no more servers".
"""

from __future__ import annotations

import threading
import time

import pytest

from netgear import ConfigError, NetGear

from helpers import assert_frame, open_hub, open_server, state_of, wait_alive, wait_until
from procs import CTX, make_frame, serve

pytestmark = pytest.mark.timeout(60)

SHAPE = (4, 4)


def send_and_wait_arrival(hub, server, count):
    """Send ``count`` frames, each once the hub has taken in the one before (so PUB's own
    high-water mark never drops one); nobody reads them meanwhile."""
    port = hub.ports[0]
    for i in range(count):
        server.send(make_frame(i, SHAPE), message=i)
        wait_until(lambda: hub.snapshot().server(port).frames == i + 1, 10, f"frame {i} at the hub")


def test_pubsub_latest_keeps_only_the_newest_frame(gears):
    hub = open_hub(gears, 0, 2, delivery="latest")
    server = open_server(gears, hub.ports[0], 2)
    wait_alive(hub, 1)
    send_and_wait_arrival(hub, server, 20)
    message, frame = hub.recv(timeout=10)
    assert message == 19
    assert_frame(frame, make_frame(19, SHAPE))
    with pytest.raises(TimeoutError):
        hub.recv(timeout=0.2)
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.dropped, entry.queued, entry.lost) == (20, 19, 0, 0)


@pytest.mark.parametrize("pattern, given, want", [(1, None, "fifo"), (2, None, "latest"), (1, "latest", "latest"),
                                                  (2, "fifo", "fifo")])
def test_a_hub_tells_its_delivery_policy(gears, pattern, given, want):
    options = {"delivery": given} if given else {}  # (open_hub would make PUB/SUB fifo)
    hub = gears.enter_context(NetGear(address="127.0.0.1", port=[0], pattern=pattern, receive_mode=True,
                                      multiserver_mode=True, **options))
    assert hub.delivery == want
    with NetGear(address="127.0.0.1", port=1, pattern=pattern, multiserver_mode=True) as server:
        with pytest.raises(ConfigError, match="delivery needs receive_mode=True"):
            server.delivery


def test_pubsub_fifo_keeps_the_newest_queue_size_frames_in_order(gears):
    hub = open_hub(gears, 0, 2, delivery="fifo", queue_size=4)
    server = open_server(gears, hub.ports[0], 2)
    wait_alive(hub, 1)
    send_and_wait_arrival(hub, server, 20)
    for i in range(16, 20):
        message, frame = hub.recv(timeout=10)
        assert message == i
        assert_frame(frame, make_frame(i, SHAPE))
    with pytest.raises(TimeoutError):
        hub.recv(timeout=0.2)
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.dropped, entry.queued) == (20, 16, 0)


@pytest.mark.parametrize("inflight", [1, 4])
def test_reqrep_fifo_holds_the_server_back_instead_of_dropping(gears, inflight):
    hub = open_hub(gears, 0, 1, queue_size=2)
    server = open_server(gears, hub.ports[0], 1, request_timeout=10.0, max_inflight=inflight)
    count = 10
    sent = []

    def produce():
        for i in range(count):
            server.send(make_frame(i, SHAPE), message=i)
            sent.append(i)

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    try:
        # queue_size frames are acknowledged; the server then fills its window of
        # `inflight` unanswered frames, the last of which its send() is still waiting on
        held = 2 + inflight
        wait_until(lambda: hub.snapshot().server(hub.ports[0]).queued == held, 10, f"{held} frames queued")
        assert sent == list(range(held - 1))
        for i in range(count):
            message, frame = hub.recv(timeout=10)
            assert message == i
            assert_frame(frame, make_frame(i, SHAPE))
    finally:
        producer.join(10)
    assert sent == list(range(count))
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.dropped, entry.lost, entry.duplicates) == (count, 0, 0, 0)
    assert state_of(hub, hub.ports[0]) == "alive"


@pytest.mark.parametrize("bidirectional", [False, True], ids=["fifo", "bidirectional"])
def test_a_consumer_pausing_longer_than_request_timeout_loses_nothing(procs, gears, bidirectional):
    """A consumer that stops for several request_timeouts (loading a model, writing a file)
    holds its one server back; it does not make the server reconnect, so the hub never sees
    it leave, the stream does not end early, and no frame is lost or delivered twice."""
    timeout, retries, count, queue = 0.3, 3, 40, 4
    hub = open_hub(gears, 0, 1, queue_size=queue, bidirectional_mode=bidirectional)
    port = hub.ports[0]
    results = CTX.Queue()
    procs.append(CTX.Process(
        target=serve, args=(port, 1, count), daemon=True,
        kwargs={"results": results, "shape": SHAPE, "messages": list(range(count)),
                "options": {"request_timeout": timeout, "max_retries": retries, "bidirectional_mode": bidirectional}},
    ))
    procs[-1].start()
    got = []
    for _ in range(3):
        packet = hub.recv_packet(timeout=20)
        got.append(packet.message)
        if bidirectional:
            packet.reply(packet.message)
    # fifo: the hub has all it may take and holds the server's next frames unanswered;
    # bidirectional: the server waits for the answer to the frame queued at the hub
    full = 1 if bidirectional else queue
    wait_until(lambda: hub.snapshot().server(port).queued >= full, 10, "the hub holding the server back")
    paused_at = time.monotonic()
    time.sleep(3 * timeout)  # the consumer's pause: three request_timeouts, under the four attempts
    while True:
        packet = hub.recv_packet(timeout=20)
        if packet is None:
            break
        got.append(packet.message)
        if bidirectional:
            packet.reply(packet.message)
    assert time.monotonic() - paused_at >= 3 * timeout
    assert got == list(range(count))  # every frame, in order, and the stream ended after the last
    events = [(e.kind, e.reason) for e in hub.pop_events()]
    assert events == [("joined", None), ("left", "closed"), ("ended", None)], events
    entry = hub.snapshot().server(port)
    assert (entry.frames, entry.dropped, entry.lost, entry.duplicates) == (count, 0, 0, 0)
    reports = []
    while len(reports) < 2 or reports[-1][0] != "closed":
        reports.append(results.get(timeout=10))
    assert not [r for r in reports if r[0] == "error"], reports
    if bidirectional:  # each send() returned the consumer's answer to its own frame
        assert [r[3] for r in reports if r[0] == "reply"] == list(range(count))


def test_a_port_that_never_connects_is_gone_only_after_the_startup_grace(gears):
    grace = 1.0
    opened_at = time.monotonic()  # the hub's grace starts after this
    hub = open_hub(gears, [0, 0], 1, startup_grace=grace)
    present, absent = hub.ports
    server = open_server(gears, present, 1, multiserver_mode=True)
    server.send(make_frame(0, SHAPE))
    assert hub.recv(timeout=10)[0] == present
    server.close()
    wait_until(lambda: state_of(hub, present) == "closed", 5, "server closed")
    assert hub.snapshot().server(absent).state == "expected"
    assert hub.recv(timeout=grace + 5) is None
    ended_at = time.monotonic()
    assert ended_at - opened_at >= grace
    events = hub.pop_events()
    never = [e for e in events if e.port == absent]
    assert [(e.kind, e.server_id, e.reason) for e in never] == [("left", None, "never_connected")]
    assert never[0].at - opened_at >= grace
    assert never[0].at - opened_at <= grace + 0.5
    assert events[-1].kind == "ended"
    entry = hub.snapshot().server(absent)
    assert (entry.server_id, entry.state, entry.reason) == (None, "gone", "never_connected")


def test_subscriber_timeout_ends_a_silent_pubsub_stream(gears):
    began = time.monotonic()  # the hub's idle timer starts after this
    hub = open_hub(gears, 0, 2, subscriber_timeout=0.5)
    assert hub.recv(timeout=5) is None  # the end of the stream, not a RecvTimeout
    assert 0.5 <= time.monotonic() - began <= 1.5
    assert hub.snapshot().ended is True


@pytest.mark.parametrize("delivery", ["fifo", "latest"])
def test_pubsub_keeps_up_in_lockstep_without_drops(gears, delivery):
    """A hub that keeps up loses nothing, however fast the frames alternate with reads.

    Regression: PUB counted messages long delivered against send_hwm (ZeroMQ's "n read"
    notices were left unprocessed) and dropped every 8th frame of a quick lockstep.
    """
    hub = open_hub(gears, 0, 2, delivery=delivery)
    server = open_server(gears, hub.ports[0], 2)
    wait_alive(hub, 1)
    for i in range(100):
        server.send(make_frame(i, SHAPE), message=i)
        message, frame = hub.recv(timeout=5)
        assert message == i
        assert_frame(frame, make_frame(i, SHAPE))
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.dropped, entry.lost) == (100, 0, 0)
