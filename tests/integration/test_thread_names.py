"""The operating system sees netgear's threads by name (``top -H``, ``ps -L``, ``/proc``)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from helpers import open_hub, open_server, wait_alive, wait_until
from netgear._threads import os_label


def _os_names() -> set:
    names = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.add(f.read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return names


def test_labels_fit_the_kernels_15_bytes():
    assert os_label("netgear-hub-5566") == "ng-hub-5566"
    assert os_label("netgear-hub-65535-decode1") == "ng-hub-65535-d1"
    assert os_label("netgear-heartbeat-65535") == "ng-beat-65535"
    assert len(os_label("netgear-hub-65535-decode12").encode()) == 15
    assert os_label("x" * 40) == "x" * 15


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task is Linux's")
@pytest.mark.parametrize("pattern", [1, 2])
def test_hub_and_server_threads_carry_their_names(gears, pattern):
    hub = open_hub(gears, [0], pattern, jpeg_decode=True, decode_threads=2)
    (port,) = hub.ports
    open_server(gears, port, pattern, multiserver_mode=True)
    wait_alive(hub, 1)
    want = {f"ng-hub-{port}", f"ng-hub-{port}-d0", f"ng-hub-{port}-d1", f"ng-beat-{port}"}
    wait_until(lambda: want <= _os_names(), 10, f"threads named {sorted(want)} (have {sorted(_os_names())})")
    # the Python names are unchanged, and the main thread keeps the process's name
    python_names = {t.name for t in threading.enumerate()}
    assert {f"netgear-hub-{port}", f"netgear-hub-{port}-decode0", f"netgear-heartbeat-{port}"} <= python_names
    with open(f"/proc/self/task/{threading.main_thread().native_id}/comm") as f:
        assert not f.read().startswith("ng-")
