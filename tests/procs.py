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
) -> None:
    """Connect, wait for ``go``, send ``frames`` frames, then idle until ``stop``, then close."""
    from netgear import NetGear

    gear = NetGear(
        address="127.0.0.1",
        port=port,
        pattern=pattern,
        multiserver_mode=multiserver,
        **(options or {}),
    )
    try:
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
            gear.close()
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


def start(target, *args, **kwargs) -> mp.Process:
    proc = CTX.Process(target=target, args=args, kwargs=kwargs, daemon=True)
    proc.start()
    return proc
