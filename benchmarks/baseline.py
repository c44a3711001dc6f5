"""Bare-pyzmq baselines measured in the same run as netgear (the yardstick for ratios).

Senders are separate processes sending zero-copy ``[small header, frame]``:
PUSH -> PULL (what a transport can do with no acknowledgement) and REQ -> REP
(stop-and-wait). The receiver takes the time stamp out of the header for latency.
Both sides run with the malloc settings netgear applies to itself (``netgear.memory``), so
the comparison does not depend on which system ran first in the process.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Optional

import numpy as np

HEADER = struct.Struct("<qq")  # seq, sent time in ns


def zmq_sender(
    kind: str, url: str, shape: tuple, fps: Optional[float], go: Any, stop: Any, out: Any, ready: Any = None
) -> None:
    """Send frames to ``url`` until ``stop``; report (frames, cpu seconds) on ``out``.
    Puts one item on ``ready`` once connected."""
    import resource

    import zmq

    from netgear.memory import keep_freed_memory

    keep_freed_memory()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH if kind == "pushpull" else zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 8)
    sock.connect(url)
    frame = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    if ready is not None:
        ready.put(1)
    go.wait(60)
    cpu0 = _cpu(resource)
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        if fps:
            delay = start + sent / fps - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    break
        header = HEADER.pack(sent, time.time_ns())
        try:
            if kind == "pushpull":
                if not sock.poll(100, zmq.POLLOUT):
                    continue
                sock.send_multipart([header, frame], zmq.NOBLOCK, copy=False)
            else:
                sock.send_multipart([header, frame], copy=False)
                if not sock.poll(2000):
                    break
                sock.recv()
        except zmq.ZMQError:
            break
        sent += 1
    out.put(("sender", sent, _cpu(resource) - cpu0))
    sock.close(0)
    ctx.term()


def _cpu(resource: Any) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ZmqReceiver:
    """The hub side of a baseline: one bound PULL or REP socket per server."""

    def __init__(self, kind: str, count: int) -> None:
        import zmq

        from netgear.memory import keep_freed_memory

        keep_freed_memory()
        self._zmq = zmq
        self.kind = kind
        self.ctx = zmq.Context()
        self.sockets = []
        self.poller = zmq.Poller()
        for _ in range(count):
            sock = self.ctx.socket(zmq.PULL if kind == "pushpull" else zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, 8)
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            self.sockets.append((sock, port))
            self.poller.register(sock, zmq.POLLIN)

    @property
    def urls(self) -> list:
        return [f"tcp://127.0.0.1:{port}" for _, port in self.sockets]

    def receive(self, timeout: float):
        """Yield (port, nbytes, sent_ns) for each frame until ``timeout`` passes idle."""
        zmq = self._zmq
        ports = {sock: port for sock, port in self.sockets}
        while True:
            ready = self.poller.poll(int(timeout * 1000))
            if not ready:
                return
            for sock, _ in ready:
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if self.kind == "reqrep":
                        sock.send(b"")
                    _, sent_ns = HEADER.unpack(parts[0].bytes)
                    frame = np.frombuffer(parts[1].buffer, np.uint8)
                    yield ports[sock], frame.nbytes, sent_ns
                    if self.kind == "reqrep":
                        break  # REP: answer before receiving again

    def close(self) -> None:
        for sock, _ in self.sockets:
            sock.close(0)
        self.ctx.term()
