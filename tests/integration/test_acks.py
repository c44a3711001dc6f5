"""Delayed acknowledgements under REQ/REP (wire v2 ``d``), on real sockets.

A server with room in its window marks frames "no ACK needed yet" until half the window
(at least two frames) has gone without asking; the hub
answers such a frame only with the ACK of a later one (which covers it) or when the
server's next heartbeat arrives. The hub side is driven by a raw DEALER speaking the wire
format, so the test sees exactly which ACKs come back and in which order; the server side
by a raw ROUTER that answers the way the hub does.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from helpers import LOCAL, open_hub, open_server, wait_until
from netgear.wire import Kind, Limits, native

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits()
SESSION = 77


def frame(seq: int, *, defer: bool = False) -> list:
    return native.encode_frame(seq=seq, sent_ns=time.time_ns(), server_id="raw", session=SESSION, topic="t",
                               frame=np.full((2, 2), seq, np.uint8), limits=LIMITS, defer=defer)


def heartbeat(seq: int) -> list:
    return native.encode_control(Kind.HEARTBEAT, seq=seq, sent_ns=time.time_ns(), server_id="raw",
                                 session=SESSION, topic="t")


@pytest.fixture
def dealer():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    yield sock
    sock.close(0)
    ctx.term()


def send(sock: zmq.Socket, parts: list) -> None:
    sock.send_multipart([b"", *parts], copy=False)


def next_ack(sock: zmq.Socket) -> int:
    assert sock.poll(10_000), "no ACK within 10 s"
    delimiter, *parts = sock.recv_multipart()
    assert delimiter == b""
    return native.decode_ack(parts, LIMITS).seq


def test_hub_answers_a_deferred_frame_with_the_next_ack_or_on_a_heartbeat(gears, dealer):
    hub = open_hub(gears, 0, 1)
    dealer.connect(f"tcp://{LOCAL}:{hub.ports[0]}")

    send(dealer, frame(1, defer=True))
    send(dealer, frame(2))
    # the hub reads in order: had it answered frame 1, that ACK would come first
    assert next_ack(dealer) == 2
    assert [hub.recv_packet(timeout=10).seq for _ in range(2)] == [1, 2]

    send(dealer, frame(3, defer=True))
    assert hub.recv_packet(timeout=10).seq == 3  # delivered, not answered
    send(dealer, heartbeat(3))  # the server went quiet (or is closing): answer it now
    assert next_ack(dealer) == 3

    # a resent deferred frame (the server reconnected) is answered at once, not delivered twice
    send(dealer, frame(4, defer=True))
    send(dealer, frame(4, defer=True))
    send(dealer, frame(5))
    assert next_ack(dealer) == 4
    assert next_ack(dealer) == 5
    assert hub.recv_packet(timeout=10).seq == 4
    assert hub.recv_packet(timeout=10).seq == 5
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.duplicates, entry.lost) == (5, 1, 0)


def test_a_deferred_frame_is_answered_on_the_servers_new_connection(gears):
    """The server reconnected (a new connection, a new routing id) after a deferred frame:
    its heartbeat gets the ACK on the connection it came on, not on the dead one."""
    hub = open_hub(gears, 0, 1)
    ctx = zmq.Context()
    gears.callback(ctx.term)
    old, new = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    for sock in (old, new):
        sock.setsockopt(zmq.LINGER, 0)
        gears.callback(sock.close, 0)
    old.connect(f"tcp://{LOCAL}:{hub.ports[0]}")
    send(old, frame(1, defer=True))
    assert hub.recv_packet(timeout=10).seq == 1
    old.close(0)
    new.connect(f"tcp://{LOCAL}:{hub.ports[0]}")
    send(new, heartbeat(1))
    assert next_ack(new) == 1


def test_held_frames_are_answered_as_frames_with_room_are(gears, dealer):
    """Back-pressure (a full fifo queue) holds answers back. Released, a deferred frame
    with another held behind it is covered by that one's ACK, as it would have been with
    room; the last one held is answered whatever it asked, since nothing else may come."""
    hub = open_hub(gears, 0, 1, delivery="fifo", queue_size=2)
    dealer.connect(f"tcp://{LOCAL}:{hub.ports[0]}")
    asks = {4, 6}  # the others say "no ACK needed yet"
    for seq in range(1, 7):
        send(dealer, frame(seq, defer=seq not in asks))
    # 1 and 2 fill the queue (deferred, no ACK); the answers to 3-6 are held
    wait_until(lambda: hub.snapshot().server(hub.ports[0]).frames == 6, what="six frames in")
    assert [hub.recv_packet(timeout=10).seq for _ in range(5)] == [1, 2, 3, 4, 5]  # room: 3-6 released
    # ACKs come in the order the hub sent them: had it answered 3 or 5, that came first
    assert next_ack(dealer) == 4
    assert next_ack(dealer) == 6
    send(dealer, frame(7, defer=True))  # room (6 alone is queued): deferred, not answered
    send(dealer, frame(8, defer=True))  # no room: held, and the last one held
    wait_until(lambda: hub.snapshot().server(hub.ports[0]).frames == 8, what="frames 7 and 8 in")
    assert [hub.recv_packet(timeout=10).seq for _ in range(2)] == [6, 7]  # room: 8 released
    assert next_ack(dealer) == 8  # (covering 7)
    assert hub.recv_packet(timeout=10).seq == 8
    entry = hub.snapshot().server(hub.ports[0])
    assert (entry.frames, entry.dropped, entry.lost) == (8, 0, 0)


def test_v1_frames_are_each_answered(gears, dealer):
    """An older server (wire v1, no ``d``) gets an ACK for every frame, as before."""
    hub = open_hub(gears, 0, 1)
    dealer.connect(f"tcp://{LOCAL}:{hub.ports[0]}")
    for seq in (1, 2, 3):
        parts = frame(seq)
        parts[0] = native.MAGIC + b"\x01" + bytes(parts[0])[4:]
        send(dealer, parts)
    assert [next_ack(dealer) for _ in range(3)] == [1, 2, 3]


class RawHub:
    """A ROUTER that acknowledges like the hub: frames without ``d`` at once, a deferred
    one with the next ACK or on a heartbeat. Records every FRAME's (seq, defer) and the
    most frames it has seen in flight at once (received, not yet acknowledged)."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port(f"tcp://{LOCAL}")
        self.frames: list = []
        self.heartbeats = 0
        self.most_in_flight = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        deferred = None
        acked = 0
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            identity, _, *parts = self.sock.recv_multipart()
            msg = native.decode(parts, LIMITS)
            if msg.kind == Kind.FRAME:
                self.frames.append((msg.seq, msg.defer))
                self.most_in_flight = max(self.most_in_flight, msg.seq - acked)
                if msg.defer:
                    deferred = msg.seq
                    continue
                ack = msg.seq
            elif msg.kind == Kind.HEARTBEAT:
                self.heartbeats += 1
                if deferred is None:
                    continue
                ack = deferred
            else:
                continue
            deferred = None
            acked = max(acked, ack)
            self.sock.send_multipart([identity, b"", *native.encode_ack(ack, limits=LIMITS)])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close(0)
        self.ctx.term()


def deferred_runs(frames: list) -> list:
    """Lengths of the runs of consecutive deferred frames."""
    runs, run = [], 0
    for _, defer in frames:
        if defer:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs + ([run] if run else [])


@pytest.mark.parametrize("window", [1, 2, 3, 4, 8, 16])
def test_server_asks_once_half_its_window_has_not_and_never_waits_on_a_deferred_one(gears, window):
    raw = RawHub()
    gears.callback(raw.close)
    server = open_server(gears, raw.port, 1, max_inflight=window, request_timeout=5.0)
    sent = 40
    started = time.monotonic()
    for i in range(sent):
        server.send(np.full((2, 2), i, np.uint8))
    # a full window always had an answer coming: no send waited for request_timeout
    assert time.monotonic() - started < 4.0
    wait_until(lambda: len(raw.frames) == sent, 10, "every frame at the raw hub")
    seqs = [seq for seq, _ in raw.frames]
    assert seqs == list(range(1, sent + 1))
    runs = deferred_runs(raw.frames)
    if window == 1:
        assert runs == []  # stop-and-wait: every frame is answered
    else:
        # a frame asks once max(2, window // 2) frames have gone without asking: the first
        # run, which starts with an empty window, is that long less the asking frame
        longest = max(2, window // 2) - 1
        assert runs and runs[0] == longest and max(runs) <= longest, runs
    assert raw.most_in_flight <= window
    # closing with a deferred frame in flight: the heartbeat sent at close gets it answered
    # at once instead of after the whole flush wait (0.4 s)
    if window > 1:
        for i in range(10):
            server.send(np.zeros((2, 2), np.uint8))
            wait_until(lambda: len(raw.frames) == sent + i + 1, 10, "the frame at the raw hub")
            if raw.frames[-1][1]:
                break
        assert raw.frames[-1][1], "no deferred frame in 10 sends"
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 0.3
    if window > 1:
        assert raw.heartbeats >= 1


def test_the_window_holds_at_most_max_inflight_bytes(gears):
    """Frames of 12 KiB against a byte budget of three of them: never more than three in
    flight, whatever max_inflight allows, and so every second frame asks."""
    raw = RawHub()
    gears.callback(raw.close)
    frame = np.zeros((64, 64, 3), np.uint8)
    server = open_server(gears, raw.port, 1, max_inflight=16, max_inflight_bytes=3 * frame.nbytes,
                         request_timeout=5.0)
    for _ in range(30):
        server.send(frame)
    wait_until(lambda: len(raw.frames) == 30, 10, "every frame at the raw hub")
    assert raw.most_in_flight <= 3
    assert max(deferred_runs(raw.frames)) == 1
    # a frame larger than the whole budget still goes, alone (stop-and-wait)
    big = np.zeros((128, 128, 3), np.uint8)
    for _ in range(3):
        server.send(big)
    wait_until(lambda: len(raw.frames) == 33, 10, "the large frames")
    assert [defer for _, defer in raw.frames[30:]] == [False, False, False]
