"""Run the ``netgear`` command in subprocesses, bounded by timeouts, synchronised on its output."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict:
    """The environment for subprocesses: no GUI (deterministic on any machine), this checkout first."""
    e = dict(os.environ)
    e["NETGEAR_NO_GUI"] = "1"
    e.pop("DISPLAY", None)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e["PYTHONUNBUFFERED"] = "1"
    return e


def run(args: Sequence[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """``python -m netgear ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "netgear", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=kw.pop("cwd", None), **kw)


def run_script(path: Path, args: Sequence[str], timeout: float = 60, cwd: Optional[Path] = None):
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=timeout,
                          env=env(), cwd=cwd)


class Proc:
    """A background ``netgear`` process whose stdout lines can be waited for."""

    def __init__(self, args: Sequence[str], cwd: Optional[Path] = None) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen([sys.executable, "-m", "netgear", *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env(), cwd=cwd)
        self.lines: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._errors: List[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=lambda: self._errors.extend(self.popen.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def stderr(self) -> str:
        return "".join(self._errors)

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 20) -> str:
        """The first (not yet consumed) stdout line matching ``predicate``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.args}: no matching line within {timeout}s; got {self.lines}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.popen.wait(10)
                raise AssertionError(f"{self.args}: output ended without a matching line; got {self.lines}; "
                                     f"stderr {self.stderr}")
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 30) -> int:
        """Wait for the exit and the end of its output; return the exit code."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.args} did not end within {timeout}s; output so far {self.lines}")
        for reader in self._readers:
            reader.join(10)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)


def hub_ports(line: str) -> List[int]:
    """Ports from the first line of ``receive``/``demo``: "hub on ports [p1, p2]..."."""
    match = re.match(r"hub on ports \[([\d, ]+)\]", line)
    assert match, f"not a 'hub on ports' line: {line!r}"
    return [int(p) for p in match.group(1).split(",")]


def tiles(path: Path, tile_size=(320, 240)) -> List[np.ndarray]:
    """The tiles of a montage image, row by row."""
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    w, h = tile_size
    assert image.shape[0] % h == 0 and image.shape[1] % w == 0, image.shape
    return [image[r:r + h, c:c + w] for r in range(0, image.shape[0], h) for c in range(0, image.shape[1], w)]


def is_blank(tile: np.ndarray) -> bool:
    return float(tile.std()) < 2.0


def video_info(path: Path):
    """``(frames decoded, (width, height))`` of a video file."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} cannot be opened"
    count, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return count, size


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
