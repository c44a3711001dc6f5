"""The foreign peers of the interop tests: vidgear's and imagezmq's real classes, each run
in its own process (``multiprocessing`` spawn), talking to netgear in the test process.

Every function here is a process target. It reports what it did on ``report`` (a
multiprocessing queue) as tuples ``(kind, name, ...)``: ``"ready"``, ``"frame"``,
``"reply"``, ``"sent"``, ``"end"``, ``"closed"`` and, on any exception, ``"error"`` with the
traceback (the test fails on it). Frames are built from ``(index, salt)`` by :func:`noise`
(raw frames, compared bit for bit) or :func:`smooth` (JPEG frames, compared within a
bound), so both sides can rebuild them without shipping them around.

Nothing here waits without a bound: every loop has a deadline, and the test kills a
process that is still running at teardown.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import socket
import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

CTX = mp.get_context("spawn")
LOCAL = "127.0.0.1"
SHAPE = (48, 64, 3)
#: longest any peer process keeps going (a failing test must not leave it behind for long)
LIMIT = 20.0


def noise(index: int, salt: int = 0, shape: Sequence[int] = SHAPE) -> np.ndarray:
    """A frame of random bytes depending on (index, salt): raw frames are checked bit for bit."""
    rng = np.random.default_rng(index * 7919 + salt * 104729 + 1)
    return rng.integers(0, 256, size=tuple(shape), dtype=np.uint8)


def smooth(index: int, salt: int = 0, shape: Sequence[int] = SHAPE) -> np.ndarray:
    """A smooth BGR frame (JPEG keeps it within a few levels) whose level depends on the index."""
    height, width = shape[0], shape[1]
    y, x = np.mgrid[0:height, 0:width]
    base = x * 90 // max(1, width) + y * 45 // max(1, height) + (11 * index + 29 * salt) % 80 + 20
    planes = [base, base[::-1] + 10, 235 - base]
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def message(name: str, index: int) -> dict:
    """The message a peer sends with frame ``index`` when it sends messages."""
    return {"from": name, "i": index, "text": f"frame {index}"}


def _run(report: Any, name: str, body: Any) -> None:
    try:
        body()
    except BaseException:  # reported: the test fails with the peer's traceback
        report.put(("error", name, traceback.format_exc()))
        raise


# --------------------------------------------------------------------------- vidgear


def vidgear_server(
    report: Any,
    stop: Any,
    *,
    name: str,
    port: Any,
    pattern: int,
    multiserver: bool = True,
    jpeg: bool = False,
    messages: bool = False,
    count: int | None = None,
    salt: int = 0,
    interval: float = 0.01,
    bidirectional: bool = False,
) -> None:
    """A vidgear ``NetGear`` server: ``count`` frames (REQ/REP, PAIR), or frames every
    ``interval`` until ``stop`` (PUB/SUB, where early frames are lost until the hub's
    subscription is up); then ``close()``. With ``bidirectional``, reports what each
    ``send()`` returned."""

    def body() -> None:
        from vidgear.gears import NetGear

        options: dict = {"jpeg_compression": jpeg}
        if multiserver:  # vidgear refuses multiserver_mode=False with pattern 0
            options["multiserver_mode"] = True
        if bidirectional:
            options["bidirectional_mode"] = True
        gear = NetGear(address=LOCAL, port=port, pattern=pattern, logging=False, **options)
        report.put(("ready", name, os.getpid()))
        make = smooth if jpeg else noise
        deadline = time.monotonic() + LIMIT
        index = 0
        while (index < count) if count is not None else not stop.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: still sending after {LIMIT}s")
            reply = gear.send(make(index, salt), message=message(name, index) if messages else None)
            if bidirectional:
                report.put(("reply", name, index, reply))
            index += 1
            if count is None:
                stop.wait(interval)
        report.put(("sent", name, index))
        began = time.monotonic()
        gear.close()
        report.put(("closed", name, time.monotonic() - began))

    _run(report, name, body)


def vidgear_hub(report: Any, stop: Any, *, name: str, ports: Sequence[int], pattern: int, multiserver: bool) -> None:
    """A vidgear ``NetGear`` hub (``receive_mode=True``): reports every ``recv()`` result
    until it returns None (vidgear's end of stream), then closes. (``stop`` is unused:
    only the servers' goodbyes end a vidgear hub, which is what the tests check.)"""

    def body() -> None:
        from vidgear.gears import NetGear

        options = {"multiserver_mode": True} if multiserver else {}
        port = list(ports) if multiserver else ports[0]
        hub = NetGear(address=LOCAL, port=port, pattern=pattern, receive_mode=True, logging=False, **options)
        report.put(("ready", name, os.getpid()))
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            data = hub.recv()
            if data is None:
                report.put(("end", name, time.time()))
                break
            report.put(("frame", name, data))
        hub.close()
        report.put(("closed", name, 0.0))

    _run(report, name, body)


def netgear_server(
    report: Any,
    stop: Any,
    *,
    name: str,
    port: int,
    pattern: int,
    options: dict | None = None,
    count: int | None = None,
    salt: int = 0,
    interval: float = 0.01,
    messages: bool = False,
) -> None:
    """One of ours (native wire format unless ``options`` say otherwise), for mixed hubs."""

    def body() -> None:
        from netgear import NetGear

        with NetGear(address=LOCAL, port=port, pattern=pattern, **(options or {})) as gear:
            report.put(("ready", name, os.getpid()))
            deadline = time.monotonic() + LIMIT
            index = 0
            while (index < count) if count is not None else not stop.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: still sending after {LIMIT}s")
                gear.send(noise(index, salt), message=message(name, index) if messages else None)
                index += 1
                if count is None:
                    stop.wait(interval)
            report.put(("sent", name, index))
            began = time.monotonic()
        report.put(("closed", name, time.monotonic() - began))

    _run(report, name, body)


# --------------------------------------------------------------------------- imagezmq


def imagezmq_sender(
    report: Any,
    stop: Any,
    *,
    name: str,
    url: str,
    reqrep: bool = True,
    jpg: bool = False,
    count: int | None = None,
    salt: int = 0,
    interval: float = 0.01,
    hold: bool = False,
) -> None:
    """An imagezmq ``ImageSender``: ``send_image(name, frame)`` (or ``send_jpg`` with
    ``cv2.imencode``) ``count`` times (REQ/REP) or until ``stop`` (PUB/SUB, where it
    binds ``url``); reports every reply; then (after ``stop`` with ``hold``) ``close()``."""

    def body() -> None:
        import cv2
        import imagezmq
        import zmq

        sender = imagezmq.ImageSender(connect_to=url, REQ_REP=reqrep)
        if reqrep:  # imagezmq waits for the reply forever: bound it (zmq.Again on expiry)
            sender.zmq_socket.setsockopt(zmq.RCVTIMEO, int(LIMIT * 1000))
        report.put(("ready", name, os.getpid()))
        deadline = time.monotonic() + LIMIT
        index = 0
        while (index < count) if count is not None else not stop.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: still sending after {LIMIT}s")
            if jpg:
                ok, buffer = cv2.imencode(".jpg", smooth(index, salt))
                assert ok
                reply = sender.send_jpg(name, buffer)
            else:
                reply = sender.send_image(name, noise(index, salt))
            if reqrep:
                report.put(("reply", name, index, bytes(reply)))
            index += 1
            if count is None:
                stop.wait(interval)
        report.put(("sent", name, index))
        if hold:
            stop.wait(LIMIT)
        began = time.monotonic()
        sender.close()
        report.put(("closed", name, time.monotonic() - began))

    _run(report, name, body)


def imagezmq_hub(
    report: Any,
    stop: Any,
    *,
    name: str,
    url: str,
    reqrep: bool = True,
    jpg: bool = False,
    count: int,
) -> None:
    """An imagezmq ``ImageHub``: ``recv_image()`` (or ``recv_jpg()``) until ``count``
    images or ``stop``, answering each REQ/REP image with ``send_reply(b"got <n>")``;
    then closes at once, as a script that wanted ``count`` images does (the last reply
    must still reach the sender)."""

    def body() -> None:
        import imagezmq

        hub = imagezmq.ImageHub(open_port=url, REQ_REP=reqrep)
        report.put(("ready", name, os.getpid()))
        deadline = time.monotonic() + LIMIT
        got = 0
        while got < count and not stop.is_set() and time.monotonic() < deadline:
            if not hub.zmq_socket.poll(50):  # ImageHub itself would wait forever
                continue
            if jpg:
                msg, buffer = hub.recv_jpg()
                data: Any = bytes(buffer)
            else:
                msg, image = hub.recv_image()
                data = np.array(image)  # a copy: the received buffer is read-only
            if reqrep:
                hub.send_reply(b"got %d" % got)
            report.put(("frame", name, msg, data))
            got += 1
        report.put(("end", name, got))
        hub.close()
        report.put(("closed", name, 0.0))

    _run(report, name, body)


# --------------------------------------------------------------------------- test side


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago, for a foreign peer that binds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL, 0))
        return sock.getsockname()[1]


#: mean absolute difference allowed between a JPEG frame and its original (smooth frames
#: come back within about one level; a wrong frame is off by at least 11)
JPEG_TOLERANCE = 3.0


def assert_exact(got: Any, want: np.ndarray, what: str) -> None:
    """Bit-exact: same dtype, shape and bytes."""
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}"
    assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    assert got.tobytes() == want.tobytes(), f"{what}: bytes differ"


def jpeg_error(got: Any, want: np.ndarray) -> float:
    """Mean absolute difference, or infinity when dtype or shape differ."""
    if not isinstance(got, np.ndarray) or got.dtype != want.dtype or got.shape != want.shape:
        return float("inf")
    return float(np.abs(got.astype(np.int16) - want.astype(np.int16)).mean())


def assert_close(got: Any, want: np.ndarray, what: str) -> None:
    """A JPEG frame: same dtype and shape, content within :data:`JPEG_TOLERANCE`."""
    error = jpeg_error(got, want)
    assert error < JPEG_TOLERANCE, f"{what}: mean abs difference {error:.2f} (shape {getattr(got, 'shape', None)})"


def assert_frame(got: Any, index: int, salt: int, jpeg: bool, what: str) -> None:
    """Frame ``index`` of the peer with ``salt``: bit-exact raw, close-enough JPEG."""
    if jpeg:
        assert_close(got, smooth(index, salt), what)
    else:
        assert_exact(got, noise(index, salt), what)


def index_of(got: Any, salt: int, jpeg: bool, limit: int = 2000) -> int:
    """The index of a frame sent without a message (PUB/SUB streams lose some): the first
    ``limit`` candidates are searched. JPEG frames repeat every 80 indices; their index is
    only known modulo 80."""
    if jpeg:
        errors = [jpeg_error(got, smooth(i, salt)) for i in range(80)]
        best = int(np.argmin(errors))
        assert errors[best] < JPEG_TOLERANCE, f"JPEG frame matches no sent frame (best error {errors[best]:.2f})"
        return best
    index = _noise_index(salt, limit).get(got.tobytes() if isinstance(got, np.ndarray) else b"")
    assert index is not None, "raw frame matches no sent frame"
    assert noise(index, salt).shape == got.shape
    return index


@functools.lru_cache(maxsize=16)
def _noise_index(salt: int, limit: int) -> dict:
    return {noise(i, salt).tobytes(): i for i in range(limit)}
