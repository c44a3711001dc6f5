from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# the repository root too: the fault tests share benchmarks/netns.py with the soak script
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers import wait_until  # noqa: E402  (re-exported: tests may import it from here)

__all__ = ["wait_until"]


@pytest.fixture
def keydir(tmp_path):
    """A CURVE key folder: a hub, trusted servers cam1 and cam2 (on the allow-list in
    ``authorized/``), and a rogue key that is not on it."""
    import shutil

    from netgear import keys

    root = tmp_path / "keys"
    for name in ("hub", "cam1", "cam2", "rogue"):
        keys.generate(root, name)
    allowed = root / "authorized"
    allowed.mkdir()
    for name in ("cam1", "cam2"):
        shutil.copy(root / f"{name}.key", allowed / f"{name}.key")
    return root


@pytest.fixture
def gears():
    """An ExitStack for the NetGear objects (and sockets) a test opens; closed at teardown."""
    with contextlib.ExitStack() as stack:
        yield stack


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
