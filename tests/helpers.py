"""Helpers shared by the tests (``tests/`` is on ``sys.path``: ``import helpers``).

Nothing here sleeps for correctness: waiting is always on a state (``wait_until``) or on
a blocking call with a timeout.
"""

from __future__ import annotations

import contextlib
import math
import queue
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

LOCAL = "127.0.0.1"

#: every kind of message value the codec promises to round-trip with its exact type.
#: (No byte-swapped arrays here: pickling them into a spawned server process loses the
#: byte order; test_single_pair sends those from the test process.)
MESSAGES: List[Any] = [
    None,
    0,
    "",
    [],
    {},
    b"",
    False,
    True,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    float("inf"),
    float("nan"),
    "héllo ✓",
    b"\x00\xff\x00",
    (1, "two", b"3", None, (4.5,)),
    {1: {2: "x"}, "k": [1.5, (2, 3)], -5: None, b"raw": b"v", (1, 2): "tuple key"},
    [[], {}, (), [None]],
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([[True, False]]),
    np.int16(-7),
    np.float64(2.5),
    np.uint64(2**64 - 1),
    np.bool_(True),
    {"nested": {"deep": [{"a": np.uint8(3), "b": np.zeros((2, 2), np.int64)}]}},
]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Wait for a state the code under test reaches by itself; fail (not hang) after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def blocked_in(thread: threading.Thread, function: Optional[str], module: Any) -> bool:
    """True while ``thread`` is inside ``module.function`` (any function of ``module`` when
    ``function`` is None), looked up in the thread's live stack."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_filename == module.__file__ and function in (None, frame.f_code.co_name):
            return True
        frame = frame.f_back
    return False


def blocked_in_recv(thread: threading.Thread) -> bool:
    """True once ``thread`` waits in a hub's recv(): on the hub's condition, or in the poll
    of its sockets (a consumer with nothing to take polls them itself)."""
    import netgear.transport

    return blocked_in(thread, "wait", threading) or blocked_in(thread, "poll", netgear.transport)


def free_ports(count: int) -> List[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago.

    Only for the few tests whose hub options must name its ports before it binds
    (a port filter); everything else binds port 0 and reads ``hub.ports``.
    """
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((LOCAL, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def hub_options(pattern: int, **options: Any) -> Dict[str, Any]:
    """Test defaults: PUB/SUB hubs keep every frame (``fifo``) unless told otherwise."""
    if pattern == 2:
        options.setdefault("delivery", "fifo")
    return options


def open_hub(stack: contextlib.ExitStack, port: Any, pattern: int, **options: Any):
    """A hub on 127.0.0.1 (multiserver when ``port`` is a list), closed with ``stack``."""
    from netgear import NetGear

    if isinstance(port, (list, tuple)):
        options.setdefault("multiserver_mode", True)
    hub = NetGear(address=LOCAL, port=port, pattern=pattern, receive_mode=True, **hub_options(pattern, **options))
    return stack.enter_context(hub)


def open_server(stack: contextlib.ExitStack, port: Any, pattern: int, **options: Any):
    """A server connecting to 127.0.0.1:``port`` in this process, closed with ``stack``."""
    from netgear import NetGear

    return stack.enter_context(NetGear(address=LOCAL, port=port, pattern=pattern, **options))


def alive_ports(hub) -> List[int]:
    return sorted(s.port for s in hub.snapshot().alive())


def wait_alive(hub, count: int, timeout: float = 20.0) -> None:
    """Wait until ``count`` servers are alive (their heartbeats arrived)."""
    wait_until(lambda: len(hub.snapshot().alive()) == count, timeout, f"{count} servers alive")


def state_of(hub, port: int, server_id: Optional[str] = None) -> Optional[str]:
    entry = hub.snapshot().server(port, server_id)
    return None if entry is None else entry.state


class Inbox:
    """What server processes report (``procs.serve(results=inbox.queue)``), in arrival order.

    Items are tuples whose first two fields are a kind (``"sent"``, ``"reply"``,
    ``"closing"``, ``"closed"``, ``"error"``) and the server's port.
    """

    def __init__(self) -> None:
        import procs

        self.queue = procs.CTX.Queue()
        self.items: List[tuple] = []

    def of(self, kind: str, port: Optional[int] = None) -> List[tuple]:
        return [i for i in self.items if i[0] == kind and (port is None or i[1] == port)]

    def pump(self, timeout: float) -> bool:
        """Move one report into ``items`` (waiting up to ``timeout``); fail on an error report."""
        try:
            item = self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        self.items.append(item)
        if item[0] == "error":
            raise AssertionError(f"server process failed: {item}")
        return True

    def wait(self, kind: str, count: int, port: Optional[int] = None, timeout: float = 20.0) -> List[tuple]:
        """Wait until ``count`` reports of ``kind`` (from ``port``) arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.of(kind, port)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.of(kind, port))} of {count} {kind!r} reports within {timeout}s")
            self.pump(min(remaining, 0.5))
        return self.of(kind, port)


# ------------------------------------------------------------------------- assertions


def assert_same(got: Any, want: Any, path: str = "value") -> None:
    """Deep equality *and* exact types (dict keys too, numpy dtypes, byte orders)."""
    assert type(got) is type(want), f"{path}: got {type(got).__name__} {got!r}, want {type(want).__name__} {want!r}"
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.dtype.str == want.dtype.str, f"{path}: dtype {got.dtype.str} != {want.dtype.str}"
        assert got.shape == want.shape, f"{path}: shape {got.shape} != {want.shape}"
        assert got.tobytes() == want.tobytes(), f"{path}: array content differs"
        assert got.flags.writeable, f"{path}: array is read-only"
    elif isinstance(want, np.generic):
        assert got.dtype.str == want.dtype.str and got.tobytes() == want.tobytes(), f"{path}: {got!r} != {want!r}"
    elif isinstance(want, dict):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for (gk, gv), (wk, wv) in zip(got.items(), want.items()):
            assert_same(gk, wk, f"{path} key")
            assert_same(gv, wv, f"{path}[{wk!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), f"{path}: {got!r} is not NaN"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def assert_frame(got: Any, want: np.ndarray, path: str = "frame") -> None:
    """Bit-exact, same dtype (byte order included) and shape, and writable."""
    assert isinstance(got, np.ndarray), f"{path}: got {type(got).__name__}"
    assert got.dtype == want.dtype and got.dtype.str == want.dtype.str, f"{path}: dtype {got.dtype.str} != {want.dtype.str}"
    assert got.shape == want.shape, f"{path}: shape {got.shape} != {want.shape}"
    assert np.array_equal(got, want), f"{path}: values differ"
    assert got.tobytes() == np.ascontiguousarray(want).tobytes(), f"{path}: bytes differ"
    assert got.flags.writeable, f"{path}: frame is read-only"


def message_for(index: int, messages: Sequence[Any]) -> Any:
    """The message ``procs.serve`` sends with frame ``index``."""
    return messages[index % len(messages)] if messages else None
