from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

import pytest

sys.path.insert(0, os.path.dirname(__file__))


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


@pytest.fixture
def procs():
    """Server processes started by a test; killed at teardown whatever happened."""
    started = []
    yield started
    for p in started:
        if p.is_alive():
            p.kill()
        p.join(5)


@pytest.fixture(autouse=True)
def _no_thread_leak():
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("netgear")]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"netgear threads left running: {[t.name for t in extra]}")
