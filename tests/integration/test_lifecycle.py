"""Lifecycle and timing promises: close() from anywhere and in every state, timeouts,
absent peers, busy ports, logging, and a hub that waits without burning CPU.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time

import numpy as np
import pytest
import zmq

import netgear.server

from helpers import (LOCAL, Inbox, assert_frame, blocked_in, blocked_in_recv, free_ports, open_hub, open_server,
                     wait_alive, wait_until)
from netgear import ClosedError, NetGear, RecvTimeout, RequestTimeout, Timeout, TransportError
from procs import CTX, close_storm, idle_hub, make_frame, serve, start

pytestmark = pytest.mark.timeout(60)

REPEAT = 50


def netgear_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("netgear")]


def hub_for(pattern, multi, **options):
    port = [0, 0] if multi else 0
    extra = {"multiserver_mode": True} if multi else {}
    if pattern == 2:
        options.setdefault("delivery", "fifo")
    return NetGear(address=LOCAL, port=port, pattern=pattern, receive_mode=True, **extra, **options)


@pytest.mark.parametrize("pattern", [0, 1, 2])
def test_close_from_another_thread_unblocks_recv_every_time(pattern):
    modes = ["recv", "recv_packet", "iter"]
    for i in range(REPEAT):
        mode = modes[i % 3]
        multi = pattern != 0 and i % 2 == 1
        hub = hub_for(pattern, multi)
        result = []

        def consume():
            if mode == "recv":
                result.append(hub.recv())
            elif mode == "recv_packet":
                result.append(hub.recv_packet())
            else:
                result.append(list(hub))

        consumer = threading.Thread(target=consume, name=f"consumer-{i}", daemon=True)
        try:
            consumer.start()
            wait_until(lambda: blocked_in_recv(consumer), 5, "recv() blocked")
            began = time.monotonic()
            hub.close()
            took = time.monotonic() - began
            consumer.join(1.0)
        finally:
            hub.close()
        assert took < 1.0, f"iteration {i}: close() took {took:.3f}s"
        assert not consumer.is_alive(), f"iteration {i} ({mode}): recv() still blocked after close()"
        assert result == ([[]] if mode == "iter" else [None])
        assert netgear_threads() == [], f"iteration {i}: threads left: {netgear_threads()}"
        began = time.monotonic()
        hub.close()  # idempotent
        assert time.monotonic() - began < 0.1
        assert hub.recv(timeout=0.1) is None  # closed: end of stream, not a timeout


@pytest.mark.parametrize("pattern", [0, 1, 2])
def test_close_returns_quickly_in_every_state(gears, pattern):
    # a hub nobody ever connected to
    hub = hub_for(pattern, multi=False)
    began = time.monotonic()
    hub.close()
    assert time.monotonic() - began < 1.0

    # a server that never had a hub
    (port,) = free_ports(1)
    server = NetGear(address=LOCAL, port=port, pattern=pattern)
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < 1.0
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < 0.1
    with pytest.raises(ClosedError):
        server.send(np.zeros(2, np.uint8))

    # mid-stream: a hub closed while a server streams to it, then that server
    hub = gears.enter_context(hub_for(pattern, multi=False))
    server = gears.enter_context(NetGear(address=LOCAL, port=hub.ports[0], pattern=pattern, request_timeout=5.0))
    if pattern == 2:
        wait_alive(hub, 1)
    running = threading.Event()
    errors = []

    def produce():
        frame = make_frame(0, (120, 160, 3))
        i = 0
        while True:
            try:
                server.send(frame, message=i)
            except ClosedError:
                return
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            i += 1
            if i == 5:
                running.set()

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    assert running.wait(10)
    assert hub.recv(timeout=10) is not None
    began = time.monotonic()
    hub.close()
    assert time.monotonic() - began < 1.0
    # the server may be blocked in send() (REQ/REP waits for an answer, PAIR for room)
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < 1.0
    producer.join(2)
    assert not producer.is_alive()
    assert errors == []


@pytest.mark.parametrize("pattern", [0, 1])
def test_server_close_from_another_thread_interrupts_a_blocked_send(pattern):
    (port,) = free_ports(1)
    server = NetGear(address=LOCAL, port=port, pattern=pattern, request_timeout=30.0, send_hwm=1)
    outcome = []

    def send_until_blocked():
        try:
            for _ in range(10):  # PAIR queues send_hwm frames before it blocks
                server.send(np.zeros(4, np.uint8))
            outcome.append("all sent")
        except Exception as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send_until_blocked, name="sender", daemon=True)
    try:
        sender.start()
        # inside send(), waiting for room, a connection or an answer
        wait_until(lambda: blocked_in(sender, None, netgear.server) or not sender.is_alive(), 5, "send() blocked")
        began = time.monotonic()
        server.close()
        assert time.monotonic() - began < 1.0
        sender.join(1.0)
    finally:
        server.close()
    assert not sender.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ClosedError), outcome


@pytest.mark.parametrize("pattern, multi", [(0, False), (1, False), (2, False), (1, True), (2, True)])
def test_recv_timeout_with_no_server(gears, pattern, multi):
    hub = gears.enter_context(hub_for(pattern, multi))
    for call in (hub.recv, hub.recv_packet):
        began = time.monotonic()
        with pytest.raises(RecvTimeout) as err:
            call(timeout=0.3)
        took = time.monotonic() - began
        assert 0.25 <= took <= 1.5, took
        assert isinstance(err.value, TimeoutError) and isinstance(err.value, Timeout)
    assert hub.snapshot().ended is False  # still waiting for servers (startup grace)


def test_reqrep_send_with_no_hub_times_out_then_works_once_the_hub_is_there(gears):
    (port,) = free_ports(1)
    server = open_server(gears, port, 1, request_timeout=0.3, max_retries=1)
    began = time.monotonic()
    with pytest.raises(RequestTimeout) as err:
        server.send(make_frame(0, (4, 4)), message="lost")
    took = time.monotonic() - began
    assert isinstance(err.value, TimeoutError)
    assert 0.3 * 2 <= took <= 0.3 * 2 + 1.0, took  # request_timeout * (max_retries + 1)
    assert str(port) in str(err.value)
    # usable afterwards: a hub on that port, and the next send goes through
    hub = open_hub(gears, port, 1)
    assert server.send(make_frame(1, (4, 4)), message="kept") is None
    message, frame = hub.recv(timeout=10)
    assert message == "kept"
    assert_frame(frame, make_frame(1, (4, 4)))
    entry = hub.snapshot().servers[0]
    # frame 1 timed out; the hub never saw it, so it has no gap to count either
    assert (entry.frames, entry.last_seq, entry.lost) == (1, 2, 0)


@pytest.mark.parametrize("wire_format", ["native", "vidgear", "imagezmq"])
def test_a_connected_hub_that_never_answers(gears, wire_format):
    """A raw ROUTER that takes frames and never answers. The native format watches its
    connection: it stayed up, so the hub has the frame, and the server waits out every
    attempt on the same socket, then raises RequestTimeout saying the hub holds it. The
    foreign formats cannot see a dropped connection: after one request_timeout each frame
    is given up (too old to resend) and the next goes out on a fresh socket."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port(f"tcp://{LOCAL}")
    try:
        server = open_server(gears, port, 1, request_timeout=0.3, max_retries=2, wire_format=wire_format,
                             multiserver_mode=True, max_inflight=1)
        began = time.monotonic()
        if wire_format == "native":
            with pytest.raises(RequestTimeout, match="holds them"):  # (a window of one: send() waits)
                server.send(make_frame(0, (4, 4)), message=0)
            assert 0.3 * 3 <= time.monotonic() - began <= 0.3 * 3 + 1.0
        else:
            for i in range(2):
                server.send(make_frame(i, (4, 4)), message=i)
            assert 0.3 * 2 <= time.monotonic() - began <= 0.3 * 2 + 1.0
        senders = []
        while router.poll(300):
            parts = router.recv_multipart()
            if len(parts) == 4:  # routing id, delimiter, header, frame (a heartbeat has no frame)
                senders.append(parts[0])
        if wire_format == "native":
            assert len(senders) == 1  # the first frame, once: nothing was resent
        else:
            assert len(senders) == 2 and senders[0] != senders[1]  # the second on a fresh socket
    finally:
        router.close(0)


def test_pair_send_with_no_hub_raises_instead_of_hanging(gears):
    (port,) = free_ports(1)
    server = open_server(gears, port, 0, request_timeout=0.3, send_hwm=8)
    queued = 0
    began = time.monotonic()
    with pytest.raises(RequestTimeout):
        for queued in range(20):  # ZeroMQ queues send_hwm frames for the hub to come
            server.send(make_frame(queued, (4, 4)))
        queued = 20
    assert queued == 8  # send_hwm
    assert time.monotonic() - began <= 0.3 + 1.0
    # usable afterwards: once a hub is there (and ZeroMQ's reconnect timer, at most 1 s,
    # found it) the queued frames arrive, and the next sends go through
    hub = open_hub(gears, port, 0)
    for i in range(8):
        assert_frame(hub.recv(timeout=10), make_frame(i, (4, 4)))
    server.send(make_frame(100, (4, 4)))
    assert_frame(hub.recv(timeout=10), make_frame(100, (4, 4)))
    entry = hub.snapshot().servers[0]
    assert (entry.frames, entry.lost, entry.last_seq) == (9, 1, 10)


@pytest.mark.parametrize("hub_state", ["absent", "not reading", "frozen"])
def test_pubsub_server_never_blocks_on_an_absent_or_slow_hub(procs, gears, hub_state):
    """200 sends of a 640x480x3 frame, each well under 50 ms, whatever the hub does.

    The hub runs in its own process (so it shares no GIL with the sender being timed):
    connected but never reading, or frozen by SIGSTOP once subscribed.
    """
    frame = make_frame(0, (480, 640, 3))
    port = free_ports(1)[0]
    stop, inbox = CTX.Event(), Inbox()
    if hub_state != "absent":
        hub_proc = start(idle_hub, port, 2, stop=stop, results=inbox.queue, options={"delivery": "latest"})
        procs.append(hub_proc)
    server = open_server(gears, port, 2)
    if hub_state != "absent":
        ((_, _, alive, _),) = inbox.wait("alive", 1)
        assert alive == 1  # subscribed: frames really go out to it
    if hub_state == "frozen":
        os.kill(hub_proc.pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for i in range(200):
            began = time.monotonic()
            assert server.send(frame, message=i) is None
            slowest = max(slowest, time.monotonic() - began)
    finally:
        if hub_state == "frozen":
            os.kill(hub_proc.pid, signal.SIGCONT)
    assert slowest < 0.05, f"a send took {slowest:.3f}s"
    stop.set()


def test_busy_port_raises_transport_error_naming_the_endpoint(gears):
    hub = open_hub(gears, 0, 1)
    (port,) = hub.ports
    threads = netgear_threads()
    with pytest.raises(TransportError) as err:
        NetGear(address=LOCAL, port=port, pattern=1, receive_mode=True)
    assert isinstance(err.value, OSError)
    assert f"tcp://{LOCAL}:{port}" in str(err.value)
    assert err.value.__cause__ is not None
    with pytest.raises(TransportError) as err:
        NetGear(address=LOCAL, port=[0, port], pattern=2, receive_mode=True, multiserver_mode=True)
    assert f"tcp://{LOCAL}:{port}" in str(err.value)
    assert netgear_threads() == threads  # the half-built hubs released what they had


def test_logging_true_shows_that_objects_debug_lines_only(gears, caplog):
    watched = ["", "netgear", "netgear.gear", "netgear.client", "netgear.server", "some.other.library"]
    before = {name: logging.getLogger(name).level for name in watched}
    loud = NetGear(address=LOCAL, port=0, pattern=1, receive_mode=True, logging=True)
    quiet = NetGear(address=LOCAL, port=0, pattern=1, receive_mode=True)
    loud_port, quiet_port = loud.ports[0], quiet.ports[0]
    loud.close()
    quiet.close()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(str(loud_port) in m and "closed" in m for m in debug), debug
    assert not any(str(quiet_port) in m for m in debug), debug
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(str(loud_port) in m and "listening" in m for m in info)
    assert not any(str(quiet_port) in m for m in info)
    assert {name: logging.getLogger(name).level for name in watched} == before


def test_several_objects_in_one_process_do_not_interfere(gears):
    hubs = [open_hub(gears, 0, 1) for _ in range(2)]
    servers = [open_server(gears, hub.ports[0], 1) for hub in hubs]
    for k, (hub, server) in enumerate(zip(hubs, servers)):
        server.send(make_frame(0, (4, 4), salt=k))
        assert_frame(hub.recv(timeout=10), make_frame(0, (4, 4), salt=k))
    hubs[0].close()
    servers[0].close()
    for i in range(1, 4):
        servers[1].send(make_frame(i, (4, 4), salt=1))
        assert_frame(hubs[1].recv(timeout=10), make_frame(i, (4, 4), salt=1))


def test_a_closed_hub_never_touches_the_descriptors_it_released(gears, tmp_path):
    hub = open_hub(gears, 0, 1, bidirectional_mode=True)
    server = open_server(gears, hub.ports[0], 1, request_timeout=5.0)
    outcome = []

    def send():
        try:
            outcome.append(server.send(np.zeros(2, np.uint8)))
        except Exception as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send, name="sender", daemon=True)
    sender.start()
    packet = hub.recv_packet(timeout=10)
    wake_fd = hub._client._transport._wake_w  # the hub's wake-up pipe (white-box)
    hub.close()
    # take that descriptor number for a file of ours
    opened = []
    try:
        for _ in range(256):
            fd = os.open(tmp_path / f"f{len(opened)}", os.O_RDWR | os.O_CREAT)
            opened.append(fd)
            if fd == wake_fd:
                break
        assert opened[-1] == wake_fd
        packet.reply("too late")  # the hub is closed: nothing may be written anywhere
        hub.recv(return_data="too late")
        assert os.fstat(wake_fd).st_size == 0
    finally:
        for fd in opened:
            os.close(fd)
        server.close()
        sender.join(2)
    assert not sender.is_alive()  # the server, never answered, was released by its close()


def cpu_while_waiting(hub, seconds):
    """CPU seconds this process used while ``hub.recv`` waited ``seconds`` for nothing,
    and the seconds it took."""
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    with pytest.raises(RecvTimeout):
        hub.recv(timeout=seconds)
    after, took = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - began
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), took


@pytest.mark.parametrize("pattern", [1, 2])
def test_idle_hub_does_not_busy_wait(procs, gears, pattern):
    hub = open_hub(gears, [0, 0], pattern)
    stop = CTX.Event()
    for port in hub.ports:
        procs.append(start(serve, port, pattern, 0, stop=stop))  # connected, silent
    wait_alive(hub, 2)
    cpu, took = cpu_while_waiting(hub, 2.0)
    assert cpu < 0.05 * took, f"{cpu:.3f}s of CPU in {took:.2f}s of waiting"
    assert len(hub.snapshot().alive()) == 2  # their heartbeats were handled meanwhile
    stop.set()
    assert hub.recv(timeout=5) is None


@pytest.mark.parametrize("pattern", [1, 2])
def test_idle_hub_reports_each_disconnect_and_goes_back_to_waiting(procs, gears, pattern):
    """An idle hub learns of dropped connections from its monitors, which its poll watches by
    their descriptors: a killed server is reported at once (not after the 10 s of silence
    allowed here), the descriptor signals again for a second one, and reading an event leaves
    nothing behind that keeps the poll from sleeping."""
    hub = open_hub(gears, [0, 0], pattern, liveness_timeout=10.0)
    stop = CTX.Event()  # (never set: both are killed)
    for port in hub.ports:
        procs.append(start(serve, port, pattern, 0, stop=stop))  # connected, silent
    wait_alive(hub, 2)
    hub.pop_events()

    def left(port):
        killed = time.monotonic()
        os.kill(procs[hub.ports.index(port)].pid, signal.SIGKILL)
        events = wait_until(lambda: [e for e in hub.pop_events() if e.kind == "left"], 5, f"port {port} left")
        assert [(e.port, e.reason) for e in events] == [(port, "disconnected")]
        return time.monotonic() - killed

    assert left(hub.ports[0]) < 2.0
    cpu, took = cpu_while_waiting(hub, 1.5)
    assert cpu < 0.05 * took, f"{cpu:.3f}s of CPU in {took:.2f}s of waiting after a disconnect"
    assert left(hub.ports[1]) < 2.0
    assert hub.recv(timeout=5) is None  # every server gone: the end of the stream


def test_close_while_peers_disconnect_never_hangs(procs):
    """Regression: close() used to deadlock inside libzmq (holding the GIL) when a peer's
    disconnect event was being reported as the hub closed its monitors."""
    inbox = Inbox()
    storm = start(close_storm, 80, 90, inbox.queue)  # under the listen backlog (100)
    procs.append(storm)
    storm.join(40)
    assert not storm.is_alive(), "hub.close() hung while peers were disconnecting"
    assert storm.exitcode == 0
    ((_, iterations, slowest, _),) = inbox.wait("storm", 1, timeout=5)
    assert iterations == 80
    assert slowest < 1.0, f"a close() took {slowest:.3f}s"
