"""Interop tests: netgear against the real vidgear and imagezmq classes, in separate processes.

vidgear and imagezmq are test-only dependencies (``pip install -e '.[test]'``); without
them (vidgear 0.3.6 needs Python >= 3.11) every test here is skipped with the reason.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from interop_peers import CTX

_HERE = os.path.dirname(os.path.abspath(__file__))


def _missing() -> str | None:
    missing = []
    for module in ("vidgear.gears", "imagezmq"):
        try:
            __import__(module)
        except Exception as exc:  # ImportError, or a broken install
            missing.append(f"{module} ({type(exc).__name__}: {exc})")
    return ", ".join(missing) or None


_MISSING = _missing()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if _MISSING is None:
        return
    skip = pytest.mark.skip(reason=f"interop tests need vidgear and imagezmq (pip install -e '.[test]'): {_MISSING}")
    for item in items:
        if str(item.path).startswith(_HERE + os.sep):
            item.add_marker(skip)


class Peers:
    """Foreign peer processes of one test, their reports and a shared ``stop`` event.

    ``start(target, **kwargs)`` runs an :mod:`interop_peers` function in a spawned
    process; ``wait(kind, count, name)`` blocks (bounded) until that many reports came;
    an ``"error"`` report fails the test with the peer's traceback. Every process still
    running at teardown is killed.
    """

    def __init__(self) -> None:
        self.queue = CTX.Queue()
        self.stop = CTX.Event()
        self.items: list[tuple] = []
        self.procs: list[Any] = []
        self.events: list[Any] = []

    def start(self, target: Any, stop: Any = None, **kwargs: Any) -> Any:
        """Start ``target(queue, stop, **kwargs)``; ``stop`` defaults to the shared event
        (a process that will be frozen needs its own: setting an event waits for every
        process sleeping on it to wake up)."""
        stop = self.stop if stop is None else stop
        self.events.append(stop)  # kept alive until the child has unpickled it
        proc = CTX.Process(target=target, args=(self.queue, stop), kwargs=kwargs, daemon=True)
        proc.start()
        self.procs.append(proc)
        return proc

    def pump(self, timeout: float) -> bool:
        """Move one report into ``items``, waiting up to ``timeout`` seconds."""
        try:
            item = self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        self.items.append(item)
        if item[0] == "error":
            raise AssertionError(f"peer {item[1]} failed:\n{item[2]}")
        return True

    def drain(self) -> None:
        while self.pump(0):
            pass

    def drain_quietly(self) -> None:
        try:
            self.drain()
        except AssertionError:
            pass

    def of(self, kind: str, name: str | None = None) -> list[tuple]:
        return [i for i in self.items if i[0] == kind and (name is None or i[1] == name)]

    def wait(self, kind: str, count: int = 1, name: str | None = None, timeout: float = 15.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind, name)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = len(self.of(kind, name))
                raise AssertionError(f"{got} of {count} {kind!r} reports from {name or 'the peers'} within {timeout}s")
            self.pump(min(remaining, 0.5))
        return self.of(kind, name)

    def join(self, timeout: float = 10.0) -> None:
        """Every peer process ends by itself, successfully."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        self.drain()
        assert [p.exitcode for p in self.procs] == [0] * len(self.procs), "a peer process failed or hung"

    def kill(self) -> None:
        self.drain_quietly()
        # shown by pytest when the test failed: what each peer said, arrays summarised
        print("peer reports:", [tuple(_summary(x) for x in item) for item in self.items])
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        self.queue.close()
        self.queue.join_thread()


def _summary(value: Any) -> Any:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"<array {shape}>"
    if isinstance(value, (bytes, str)) and len(value) > 40:
        return f"<{type(value).__name__} of {len(value)}>"
    if isinstance(value, tuple):
        return tuple(_summary(x) for x in value)
    return value


@pytest.fixture
def peers():
    started = Peers()
    try:
        yield started
    finally:
        started.kill()


__all__ = ["Peers"]
