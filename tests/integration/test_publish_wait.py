"""PUB/SUB back-pressure: ``publish_wait`` bounds how long ``send()`` waits for room.

A hub in its own process is frozen (SIGSTOP) while the server keeps sending 64 KiB frames:
its queue (``send_hwm``) and the TCP buffers fill, then each ``send()`` waits for room for
at most ``publish_wait`` and drops the frame. With no hub connected at all nothing waits.

Closing behind a full queue: the goodbye waits for room and for the hub's confirmation
(a subscription to ``bye_topic``), so the hub sees the server close, not vanish.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from helpers import LOCAL, free_ports
from procs import CTX, idle_hub, leave_watching_hub, start

pytestmark = pytest.mark.timeout(60)

FRAME = np.zeros((128, 512), np.uint8)  # 64 KiB


def timed_sends(gear, seconds: float) -> list:
    durations = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.monotonic()
        gear.send(FRAME)
        durations.append(time.monotonic() - began)
    return durations


@pytest.mark.parametrize("wait", [0.02, 0.1])
def test_send_waits_at_most_publish_wait_for_a_frozen_hub(procs, gears, wait):
    from netgear import NetGear

    port = free_ports(1)[0]
    stop, results = CTX.Event(), CTX.Queue()
    procs.append(start(idle_hub, port, 2, stop=stop, results=results, alive=1))
    gear = gears.enter_context(NetGear(address=LOCAL, port=port, pattern=2, send_hwm=4, publish_wait=wait))
    assert results.get(timeout=30)[0] == "alive"  # the hub has seen a heartbeat: subscribed
    hub = procs[0]
    os.kill(hub.pid, signal.SIGSTOP)
    try:
        # ZeroMQ's heartbeats drop the frozen hub after liveness_timeout (1.5 s): stay within it
        durations = timed_sends(gear, 1.0)
    finally:
        os.kill(hub.pid, signal.SIGCONT)
        stop.set()
    waited = [d for d in durations if d >= wait * 0.8]
    assert waited, f"no send waited for room: {len(durations)} sends, longest {max(durations) * 1000:.1f} ms"
    assert max(durations) <= wait + 0.1, f"a send blocked {max(durations) * 1000:.0f} ms (publish_wait {wait * 1000:.0f} ms)"
    # the sender was paced by the wait, not spinning on frames that vanish
    assert len(durations) <= 1.0 / (wait * 0.8) + 200


def test_nothing_waits_without_a_hub(gears):
    from netgear import NetGear

    port = free_ports(1)[0]  # nobody listens there
    gear = gears.enter_context(NetGear(address=LOCAL, port=port, pattern=2, send_hwm=4, publish_wait=0.5))
    durations = timed_sends(gear, 0.3)
    assert len(durations) > 20 and max(durations) < 0.05, f"longest send {max(durations) * 1000:.0f} ms"


def test_publish_wait_is_validated():
    from netgear import ConfigError, NetGear

    with pytest.raises(ConfigError) as err:
        NetGear(address=LOCAL, port=5999, pattern=2, publish_wait=-1)
    assert err.value.option == "publish_wait"


def _slow_subscriber(gears, confirm: bool):
    """A raw SUB reading one message every 5 ms, as a hub that is behind; with ``confirm``
    it answers a goodbye the way netgear's hub does. Returns (port, kinds seen)."""
    import threading

    import zmq

    from netgear.transport import bye_topic
    from netgear.wire import Kind, Limits, native

    ctx = zmq.Context()
    gears.callback(ctx.term)
    sub = ctx.socket(zmq.SUB)
    gears.callback(sub.close, 0)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 65536)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    port = sub.bind_to_random_port(f"tcp://{LOCAL}")
    kinds, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            if sub.poll(50):
                parts = sub.recv_multipart()
                msg = native.decode(parts[1:], Limits())
                kinds.append(msg.kind)
                if msg.kind == Kind.BYE and confirm:
                    sub.setsockopt(zmq.SUBSCRIBE, bye_topic(msg.session))
                    sub.setsockopt(zmq.UNSUBSCRIBE, bye_topic(msg.session))
                time.sleep(0.005)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    gears.callback(reader.join, 5)
    gears.callback(stop.set)
    return port, kinds


@pytest.mark.parametrize("run", range(3))
def test_goodbye_behind_a_full_queue_is_delivered_and_confirmed(gears, run):
    """A server sending flat out to a hub that is behind closes with its queue and the TCP
    buffers full. Its goodbye waits for room and then for the confirmation, so it is not
    lost with the data libzmq still held when the socket closed (it was, about one close
    in three, when close() relied on linger). Three runs: the loss was a race."""
    from netgear import NetGear
    from netgear.wire import Kind

    port, kinds = _slow_subscriber(gears, confirm=True)
    gear = NetGear(address=LOCAL, port=port, pattern=2, publish_wait=0.05)
    try:
        timed_sends(gear, 0.5)  # the queue and the buffers are full from here on
    finally:
        began = time.monotonic()
        gear.close()
        took = time.monotonic() - began
    # confirmed, the goodbye was read: nothing to wait for
    assert Kind.BYE in kinds, f"the goodbye was lost behind {len(kinds)} frames"
    assert took < 0.5, f"close() took {took:.2f}s"


def test_close_waits_a_bounded_time_for_a_confirmation_that_never_comes(gears):
    """A hub that reads but never confirms (an older netgear) holds close() up for at most
    half a second."""
    from netgear import NetGear
    from netgear.wire import Kind

    port, kinds = _slow_subscriber(gears, confirm=False)
    gear = NetGear(address=LOCAL, port=port, pattern=2)
    deadline = time.monotonic() + 10
    while Kind.HEARTBEAT not in kinds and time.monotonic() < deadline:  # subscribed
        time.sleep(0.01)
    began = time.monotonic()
    gear.close()
    took = time.monotonic() - began
    assert Kind.HEARTBEAT in kinds
    assert 0.4 <= took < 0.8, f"close() took {took:.2f}s"
    deadline = time.monotonic() + 5
    while Kind.BYE not in kinds and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Kind.BYE in kinds


def test_a_hub_that_was_behind_reports_the_server_closed(procs, gears):
    """End to end: the hub is frozen while the server fills its queue, and thawed while the
    server closes. The hub reports the server "closed", not "gone"."""
    import threading

    from netgear import NetGear

    port = free_ports(1)[0]
    stop, results = CTX.Event(), CTX.Queue()
    procs.append(start(leave_watching_hub, port, 2, stop=stop, results=results))
    gear = NetGear(address=LOCAL, port=port, pattern=2, publish_wait=0.02)
    try:
        assert results.get(timeout=30)[0] == "alive"
        hub = procs[0]
        os.kill(hub.pid, signal.SIGSTOP)
        try:
            timed_sends(gear, 0.3)  # the hub's queue and the TCP buffers fill up
            closing = threading.Thread(target=gear.close)
            closing.start()
            time.sleep(0.1)  # (either order must work; this makes the harder one likely)
        finally:
            os.kill(hub.pid, signal.SIGCONT)
        closing.join(5)
        assert not closing.is_alive()
        assert results.get(timeout=10) == ("left", "closed", "closed")
    finally:
        stop.set()
        gear.close()
