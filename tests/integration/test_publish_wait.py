"""PUB/SUB back-pressure: ``publish_wait`` bounds how long ``send()`` waits for room.

A hub in its own process is frozen (SIGSTOP) while the server keeps sending 64 KiB frames:
its queue (``send_hwm``) and the TCP buffers fill, then each ``send()`` waits for room for
at most ``publish_wait`` and drops the frame. With no hub connected at all nothing waits.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from helpers import LOCAL, free_ports
from procs import CTX, idle_hub, start

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
