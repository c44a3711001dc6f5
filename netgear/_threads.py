"""Names for netgear's threads that the operating system shows too.

Python names a thread only for itself: ``top -H``, ``ps -L``, ``/proc/PID/task/*/comm``,
``perf`` and debuggers show every thread of a Python process as ``python``. Each netgear
thread calls :func:`show_name` first thing, which gives the kernel a short form of its
Python name (Linux keeps 15 bytes): ``netgear-hub-5566`` becomes ``ng-hub-5566``, its
decoder threads ``ng-hub-5566-d0``, ``ng-hub-5566-d1``…, and a server's heartbeat thread
``ng-beat-5566``. Elsewhere, or if the call fails, nothing happens.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
import threading
from typing import Any, Optional

__all__ = ["os_label", "show_name"]

_log = logging.getLogger(__name__)

#: prctl(2) option that names the calling thread (linux/prctl.h)
_PR_SET_NAME = 15
#: the kernel keeps 16 bytes, the last one a NUL
_MAX = 15


def os_label(name: str) -> str:
    """The short form of a netgear thread's Python name, at most 15 bytes."""
    label = name.replace("netgear-heartbeat-", "ng-beat-").replace("netgear-", "ng-").replace("-decode", "-d")
    return label.encode("utf-8")[:_MAX].decode("utf-8", "ignore")


@functools.lru_cache(maxsize=None)
def _prctl() -> Optional[Any]:
    """libc's ``prctl`` on Linux, looked up once; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has prctl
        _log.debug("prctl not found: threads keep the process's name")
        return None
    prctl.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    return prctl


def show_name() -> None:
    """Give the calling thread's Python name, shortened, to the operating system."""
    prctl = _prctl()
    if prctl is None:
        return
    label = os_label(threading.current_thread().name)
    if prctl(_PR_SET_NAME, label.encode("utf-8"), 0, 0, 0) != 0:  # pragma: no cover - cannot fail on Linux
        _log.debug("could not name thread %r: errno %d", label, ctypes.get_errno())
