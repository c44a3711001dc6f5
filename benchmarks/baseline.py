"""Bare-pyzmq baselines measured in the same run as netgear (the yardstick for ratios).

Senders are separate processes sending zero-copy ``[small header, frame]``:
PUSH -> PULL (what a transport can do with no acknowledgement) and REQ -> REP
(stop-and-wait); for the PUB/SUB scenarios also PUB -> SUB (an XPUB that waits for room
instead of dropping, as netgear's servers do), to tell ZeroMQ's own cost of the pattern
from netgear's. The receiver takes the time stamp out of the header for latency.
Both sides run with the malloc settings netgear applies to itself (``netgear.memory``), so
the comparison does not depend on which system ran first in the process.

For the JPEG scenarios the senders send JPEG (encoded once, or live for every frame, with
netgear's own codec calls and default settings) and the receiving loop hands each frame to
a pool of decoding threads, as many as netgear's hub starts, which hand the decoded frames
to one consuming thread: what a hand-written pyzmq hub gets out of the same codec on the
same cores, with none of netgear's bookkeeping.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

HEADER = struct.Struct("<qq")  # seq, sent time in ns


def camera_frame(shape: tuple, seed: int) -> np.ndarray:
    """A camera-like frame: gradients and blocks plus sensor noise, so JPEG sizes and
    decode times are those of real footage (a flat synthetic image decodes far faster)."""
    h, w, c = shape
    y, x = np.mgrid[0:h, 0:w]
    base = np.empty(shape, np.int16)
    for ch in range(c):
        base[:, :, ch] = (x * (ch + 1) + y * (seed + 1)) // 3 % 256
    base[h // 4 : h // 2, w // 4 : w // 2] = 200
    noise = np.random.default_rng(seed).normal(0, 12, size=shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def zmq_sender(
    kind: str,
    url: str,
    shape: tuple,
    fps: Optional[float],
    go: Any,
    stop: Any,
    out: Any,
    ready: Any = None,
    jpeg: Optional[str] = None,
    seed: int = 0,
    phase: float = 0.0,
) -> None:
    """Send frames to ``url`` until ``stop``; report (frames, cpu seconds) on ``out``.
    Puts one item on ``ready`` once connected. ``jpeg``: ``"pre"`` sends one camera-like
    frame encoded once, ``"live"`` encodes it for every frame (netgear's codec, defaults).
    ``phase``: a paced sender's first frame goes this many seconds after the common start."""
    import resource

    import zmq

    from netgear import codecs
    from netgear.memory import keep_freed_memory
    from netgear.transport import JPEG_COPY_BELOW

    keep_freed_memory()
    ctx = zmq.Context()
    sock = ctx.socket({"pushpull": zmq.PUSH, "pubsub": zmq.XPUB}.get(kind, zmq.REQ))
    sock.setsockopt(zmq.LINGER, 0)
    if kind == "pubsub":  # wait for room at the high-water mark, never drop (an XPUB
        sock.setsockopt(zmq.XPUB_NODROP, 1)  # always polls writable: SNDTIMEO waits)
        sock.setsockopt(zmq.SNDTIMEO, 100)
    sock.setsockopt(zmq.SNDHWM, 8)
    sock.connect(url)
    settings = codecs.JpegSettings()
    if jpeg:
        frame = camera_frame(shape, seed)
        encoded = codecs.encode_jpeg(frame, settings) if jpeg == "pre" else None
    else:
        frame = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    if ready is not None:
        ready.put(1)
    go.wait(60)
    cpu0 = _cpu(resource)
    sent = 0
    start = time.monotonic() + phase
    while not stop.is_set():
        if fps:
            delay = start + sent / fps - time.monotonic()
            if delay > 0:
                if stop.wait(delay):
                    break
        header = HEADER.pack(sent, time.time_ns())
        payload: Any = frame
        copy = False
        if jpeg:  # copied below netgear's threshold, as its servers do: it costs less
            payload = encoded if encoded is not None else codecs.encode_jpeg(frame, settings)
            copy = len(payload) < JPEG_COPY_BELOW
        try:
            if kind == "pushpull":
                if not sock.poll(100, zmq.POLLOUT):
                    continue
                sock.send_multipart([header, payload], zmq.NOBLOCK, copy=copy)
            elif kind == "pubsub":
                # let libzmq take in the reader's "messages read" first (as netgear's
                # servers do): a socket that only sends does so lazily, and until then
                # counts delivered messages against the high-water mark
                sock.get(zmq.EVENTS)
                try:
                    sock.send_multipart([header, payload], copy=copy)
                except zmq.Again:
                    continue
            else:
                sock.send_multipart([header, payload], copy=copy)
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
    """The hub side of a baseline: one bound PULL, REP or SUB socket per server."""

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
            sock = self.ctx.socket({"pushpull": zmq.PULL, "pubsub": zmq.SUB}.get(kind, zmq.REP))
            sock.setsockopt(zmq.LINGER, 0)
            if kind == "pubsub":
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.setsockopt(zmq.RCVHWM, 8)
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            self.sockets.append((sock, port))
            self.poller.register(sock, zmq.POLLIN)

    @property
    def urls(self) -> list:
        return [f"tcp://127.0.0.1:{port}" for _, port in self.sockets]

    def receive(self, timeout: float, raw: bool = True) -> Iterator[Tuple[int, Any, int]]:
        """Yield (port, frame, sent_ns) for each frame until ``timeout`` passes idle: the
        frame as an array, or with ``raw=False`` the payload's buffer (a JPEG)."""
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
                    payload = parts[1].buffer
                    yield ports[sock], np.frombuffer(payload, np.uint8) if raw else payload, sent_ns
                    if self.kind == "reqrep":
                        break  # REP: answer before receiving again

    def close(self) -> None:
        for sock, _ in self.sockets:
            sock.close(0)
        self.ctx.term()


class JpegDecoders:
    """The decoding stage of a JPEG baseline: ``threads`` threads (netgear's default count
    unless given) decode what the receiving loop submits through a bounded queue, so a
    full pool holds the loop back and ZeroMQ's high-water marks hold the senders back.
    Each decoded frame is handed to one consuming thread, as an application gets it (and
    as netgear hands frames to the thread calling ``recv()``), which records it."""

    def __init__(self, shape: tuple, threads: Optional[int] = None) -> None:
        from netgear import codecs

        self._codecs = codecs
        self._shape = shape
        self._settings = codecs.JpegSettings()
        count = threads or max(1, min(4, os.cpu_count() or 1))
        self._queue: "queue.Queue[Optional[Tuple[Any, int]]]" = queue.Queue(maxsize=4 * count)
        self._decoded: "queue.SimpleQueue[Optional[Tuple[np.ndarray, int]]]" = queue.SimpleQueue()
        #: (time.monotonic() when consumed, latency in ms, bytes decoded), one per frame
        self.done: List[Tuple[float, float, int]] = []
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        self._consumer = threading.Thread(target=self._consume, daemon=True)
        for thread in [*self._threads, self._consumer]:
            thread.start()

    def submit(self, data: Any, sent_ns: int) -> None:
        self._queue.put((data, sent_ns))

    def _work(self) -> None:
        settings = self._settings
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, sent_ns = item
            image = self._codecs.decode_jpeg(data, "BGR", self._shape, fastdct=settings.fastdct,
                                             fastupsample=settings.fastupsample)
            self._decoded.put((image, sent_ns))

    def _consume(self) -> None:
        while True:
            item = self._decoded.get()
            if item is None:
                return
            image, sent_ns = item
            self.done.append((time.monotonic(), (time.time_ns() - sent_ns) / 1e6, image.nbytes))

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(10)
        self._decoded.put(None)
        self._consumer.join(10)
