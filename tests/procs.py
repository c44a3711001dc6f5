"""Server processes for integration tests (started with the 'spawn' method).

Each server builds deterministic frames, so the hub side can check them bit for bit
without shipping the expected data around.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any, Dict, Optional

import numpy as np

CTX = mp.get_context("spawn")


def make_frame(index: int, shape=(48, 64, 3), dtype: str = "uint8", salt: int = 0) -> np.ndarray:
    """A frame whose content depends on (index, salt): every byte is checkable."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    rng = np.random.default_rng(index * 7919 + salt)
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    if dt.kind == "b":
        raw = raw[:n] & 1
        return raw.astype(bool).reshape(shape)
    arr = raw.view(dt).reshape(shape).copy()
    if dt.kind == "f":
        arr[~np.isfinite(arr)] = 0  # NaN payloads compare unequal; keep checks simple
    return arr


def serve(
    port: int,
    pattern: int,
    frames: int,
    *,
    go: Optional[Any] = None,
    stop: Optional[Any] = None,
    results: Optional[Any] = None,
    salt: int = 0,
    shape=(48, 64, 3),
    dtype: str = "uint8",
    messages: Optional[list] = None,
    interval: float = 0.0,
    close: bool = True,
    multiserver: bool = True,
    options: Optional[Dict[str, Any]] = None,
    before_go: int = 0,
) -> None:
    """Connect, send ``before_go`` frames, wait for ``go``, send ``frames`` frames, then idle
    until ``stop``, then close."""
    from netgear import NetGear

    gear = NetGear(
        address="127.0.0.1",
        port=port,
        pattern=pattern,
        multiserver_mode=multiserver,
        **(options or {}),
    )
    try:
        for i in range(before_go):
            gear.send(make_frame(i, shape, dtype, salt))
        if go is not None:
            go.wait(30)
        for i in range(frames):
            msg = messages[i % len(messages)] if messages else None
            reply = gear.send(make_frame(i, shape, dtype, salt), message=msg)
            if results is not None:
                results.put(("reply", port, i, reply))
            if interval:
                time.sleep(interval)
        if results is not None:
            results.put(("sent", port, frames, os.getpid()))
        if stop is not None:
            stop.wait(60)
    except Exception as exc:  # reported to the test, which fails on it
        if results is not None:
            results.put(("error", port, repr(exc), os.getpid()))
        raise
    finally:
        if close:
            # wall-clock stamps: the hub's end of stream is measured against them
            if results is not None:
                results.put(("closing", port, time.time(), os.getpid()))
            gear.close()
            if results is not None:
                results.put(("closed", port, time.time(), os.getpid()))
        else:
            os.kill(os.getpid(), signal.SIGKILL)


def stream(port: int, pattern: int, *, stop: Any, fps: float = 50.0, salt: int = 0, options=None) -> None:
    """Send small frames at ``fps`` until ``stop`` is set (used by the fault tests)."""
    from netgear import NetGear

    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True, **(options or {})) as gear:
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                gear.send(make_frame(i, (24, 32, 3), "uint8", salt), message={"i": i})
            except Exception:
                pass
            i += 1
            next_at += 1.0 / fps
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)


def counted_stream(port: int, pattern: int, *, name: str, go: Any, stop: Any, results: Any, fps: float, salt: int,
                   shape=(24, 32, 3), options: Optional[Dict[str, Any]] = None) -> None:
    """A server (``server_id=name`` unless ``options`` says otherwise) sending at a fixed
    rate from ``go`` until ``stop``; reports ("sent", name, sent, errors). A send that
    raised still counts as sent, so a lost frame is never excused."""
    from netgear import NetGear

    sent = errors = 0
    settings = {"server_id": name, **(options or {})}
    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True, **settings) as gear:
        go.wait(30)
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                gear.send(make_frame(sent, shape, "uint8", salt), message={"i": sent})
            except Exception:
                errors += 1
            sent += 1
            next_at += 1.0 / fps
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
    results.put(("sent", name, sent, errors))


def start(target, *args, **kwargs) -> mp.Process:
    proc = CTX.Process(target=target, args=args, kwargs=kwargs, daemon=True)
    proc.start()
    return proc


def close_storm(iterations: int, connections: int, results: Any) -> None:
    """Close hubs while many peers disconnect at once; report the slowest close().

    Run in its own process: a close() that deadlocks inside libzmq holds the GIL, which
    would freeze a test process beyond the reach of pytest-timeout.
    """
    import socket
    import threading

    from netgear import NetGear

    slowest = 0.0
    for _ in range(iterations):
        hub = NetGear(address="127.0.0.1", port=0, pattern=1, receive_mode=True)
        peers = [socket.create_connection(("127.0.0.1", hub.ports[0])) for _ in range(connections)]
        time.sleep(0.02)  # load shaping only: let libzmq accept them, so dropping them is news
        go = threading.Event()

        def drop() -> None:
            go.wait()
            for peer in peers:
                peer.close()

        dropper = threading.Thread(target=drop)
        dropper.start()
        go.set()
        began = time.monotonic()
        hub.close()
        slowest = max(slowest, time.monotonic() - began)
        dropper.join()
    results.put(("storm", iterations, slowest, os.getpid()))


def idle_hub(port: int, pattern: int, *, stop: Any, results: Any, alive: int = 1, options=None) -> None:
    """A hub in its own process that never reads: reports ("alive", port) once ``alive``
    servers are seen, then waits for ``stop`` (the test may SIGSTOP it meanwhile)."""
    from netgear import NetGear

    with NetGear(address="127.0.0.1", port=port, pattern=pattern, receive_mode=True, **(options or {})) as gear:
        deadline = time.monotonic() + 30
        while len(gear.snapshot().alive()) < alive and time.monotonic() < deadline:
            time.sleep(0.01)
        results.put(("alive", port, len(gear.snapshot().alive()), os.getpid()))
        stop.wait(60)


def leave_watching_hub(port: int, pattern: int, *, stop: Any, results: Any, options=None) -> None:
    """A hub in its own process that never reads: reports ("alive", pid) once a server is
    seen, then ("left", state, reason) once that server is no longer alive (the test may
    SIGSTOP it meanwhile)."""
    from netgear import NetGear

    with NetGear(address="127.0.0.1", port=port, pattern=pattern, receive_mode=True, **(options or {})) as gear:
        deadline = time.monotonic() + 30
        while not gear.snapshot().alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        results.put(("alive", os.getpid()))
        while not stop.is_set():
            servers = gear.snapshot().servers
            if servers and servers[0].state != "alive":
                results.put(("left", servers[0].state, servers[0].reason))
                return
            time.sleep(0.01)


def stream_reporting(port: int, pattern: int, *, stop: Any, results: Any, fps: float = 30.0, salt: int = 0,
                     options=None) -> None:
    """Like ``stream``, but reports every ``send()`` on ``results``:
    ``("send", port, began, ended, error, pid)`` with monotonic times and ``error`` the
    exception's ``module.qualname`` (None when the send went through). A late send does not
    make the loop catch up with a burst: a camera skips the frames it missed."""
    from netgear import NetGear

    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True, **(options or {})) as gear:
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            frame = make_frame(i, (24, 32, 3), "uint8", salt)
            began = time.monotonic()
            error = None
            try:
                gear.send(frame, message={"i": i})
            except Exception as exc:
                error = f"{type(exc).__module__}.{type(exc).__qualname__}"
            results.put(("send", port, began, time.monotonic(), error, os.getpid()))
            i += 1
            next_at = max(next_at + 1.0 / fps, time.monotonic())
            stop.wait(max(0.0, next_at - time.monotonic()))


def hub_process(ports, pattern: int, *, go: Any, stop: Any, results: Any, options=None) -> None:
    """A hub in its own process on fixed ``ports``, for tests that kill and restart it.

    Imports first, then waits for ``go`` (so starting an interpreter is not part of a
    restart), binds, reports ``("listening", None, monotonic, pid)``, consumes until ``stop``
    and reports ``("first", port, monotonic, pid)`` at each port's first frame. Monotonic
    times compare across processes on one Linux host (CLOCK_MONOTONIC)."""
    from netgear import NetGear, RecvTimeout

    go.wait(60)
    with NetGear(address="127.0.0.1", port=list(ports), pattern=pattern, receive_mode=True, multiserver_mode=True,
                 **(options or {})) as hub:
        results.put(("listening", None, time.monotonic(), os.getpid()))
        seen = set()
        while not stop.is_set():
            try:
                packet = hub.recv_packet(timeout=0.05)
            except RecvTimeout:
                continue
            if packet is None:
                break
            if packet.port not in seen:
                seen.add(packet.port)
                results.put(("first", packet.port, time.monotonic(), os.getpid()))


def same_frame_sender(port: int, pattern: int, frames: int, shape=(480, 640, 3), options=None) -> None:
    """Send one fixed frame ``frames`` times (REQ/REP waits for each window), then close."""
    from netgear import NetGear

    frame = make_frame(0, shape)
    with NetGear(address="127.0.0.1", port=port, pattern=pattern, multiserver_mode=True, **(options or {})) as gear:
        for _ in range(frames):
            gear.send(frame)
