"""Frame sources: plain iterables of numpy frames for ``NetGear.send()``.

Four kinds, each opened eagerly (a missing camera or an unreadable file raises
:class:`SourceError` at construction, before anything connects) and iterated lazily:

* :class:`Synthetic` -- a moving test pattern needing no camera: a per-server colour, a
  white block moving across, the server id, the frame counter and a clock.
* :class:`Camera` -- a ``cv2.VideoCapture`` device by index.
* :class:`VideoFile` -- a video file, optionally looped.
* :class:`ImageFolder` -- the images of a folder in name order, optionally looped.

:func:`open_source` turns the command line's ``--source`` text into one of them.

Example::

    from netgear import NetGear
    from netgear.sources import Synthetic

    with NetGear(address="127.0.0.1", port=5566, multiserver_mode=True) as server:
        for frame in Synthetic((320, 240), fps=15, label="cam-1", frames=100):
            server.send(frame)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from .errors import NetGearError

__all__ = [
    "SourceError",
    "Synthetic",
    "Camera",
    "VideoFile",
    "ImageFolder",
    "synthetic",
    "block_box",
    "paced",
    "open_source",
    "IMAGE_EXTENSIONS",
]

_log = logging.getLogger(__name__)

Size = Tuple[int, int]

#: File name endings :class:`ImageFolder` reads (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class SourceError(NetGearError, OSError):
    """A source cannot be opened or read: no such camera, an unreadable file, an empty folder."""


def paced(frames: Iterable[np.ndarray], fps: Optional[float]) -> Iterator[np.ndarray]:
    """Yield ``frames`` no faster than ``fps``, without drift (``None`` or 0: unpaced).

    Frame ``i`` is released at ``start + i / fps``; a consumer that falls behind catches
    up without the schedule slipping, so the long-run rate is exactly ``fps``.

    >>> list(paced(iter([1, 2, 3]), None))
    [1, 2, 3]
    """
    if not fps:
        yield from frames
        return
    if fps < 0:
        raise ValueError(f"fps must be positive, got {fps}")
    start = time.monotonic()
    for index, frame in enumerate(frames):
        delay = start + index / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame


# -- synthetic ---------------------------------------------------------------------------


def _block_side(size: Size) -> int:
    return max(4, min(size) // 8)


def block_box(index: int, size: Size = (640, 480), seed: int = 0) -> Tuple[int, int, int, int]:
    """Where :class:`Synthetic`'s moving block is in frame ``index``: ``(x, y, w, h)``.

    The block moves 4 pixels to the right per frame and wraps around; its row depends
    on ``seed``, so two servers' blocks are told apart.

    >>> block_box(0, (320, 240), seed=0)
    (0, 30, 30, 30)
    >>> block_box(5, (320, 240), seed=0)[0]
    20
    """
    width, height = size
    side = _block_side(size)
    x = (index * 4) % max(1, width - side)
    # rows between the counter band at the top and the text band at the bottom
    top, room = side, max(1, height - 3 * side)
    y = top + (seed * 2 * side) % room
    return (x, y, side, side)


class Synthetic:
    """A moving test pattern at ``fps`` (``size`` is width x height); needs no camera.

    Each frame has a colour derived from ``seed`` (servers are told apart on a montage), a
    white block moving across (:func:`block_box` tells where), the frame counter as a row
    of squares at the top and, when the frame is tall enough, ``label``, the counter and
    the wall clock as text at the bottom. Pacing is drift-free (:func:`paced`);
    ``fps=None`` yields as fast as the consumer takes them, ``frames`` limits the count.

    >>> frames = list(Synthetic((64, 48), fps=None, frames=2))
    >>> len(frames), frames[0].shape, frames[0].dtype.name
    (2, (48, 64, 3), 'uint8')
    """

    def __init__(
        self,
        size: Size = (640, 480),
        fps: Optional[float] = 30.0,
        *,
        seed: int = 0,
        frames: Optional[int] = None,
        label: Optional[str] = None,
    ) -> None:
        width, height = size
        if width < 16 or height < 16:
            raise ValueError(f"size: frames must be at least 16x16, got {width}x{height}")
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.size: Size = (int(width), int(height))
        self.fps = fps
        self.seed = seed
        self.frames = frames
        self.label = label
        rng = np.random.default_rng(seed)
        base = np.empty((height, width, 3), np.uint8)
        base[:] = rng.integers(40, 160, size=3, dtype=np.uint8)
        base[:, :, 0] = (np.arange(width) * 160 // max(1, width - 1)).astype(np.uint8)[None, :]
        self._base = base

    def frame(self, index: int) -> np.ndarray:
        """Frame number ``index`` (a new array each call)."""
        frame = self._base.copy()
        width, height = self.size
        x, y, w, h = block_box(index, self.size, self.seed)
        frame[y : y + h, x : x + w] = 255
        side = _block_side(self.size)
        for bit in range(min(16, width // side)):
            if (index >> bit) & 1:
                frame[: side // 2, bit * side : bit * side + side // 2] = (0, 255, 255)
        if height >= 48:
            self._draw_text(frame, index)
        return frame

    def _draw_text(self, frame: np.ndarray, index: int) -> None:
        height = frame.shape[0]
        scale = max(0.3, height / 600)
        thickness = 1
        clock = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        text = f"{self.label + ' ' if self.label else ''}#{index} {clock}"
        org = (4, height - int(8 * scale) - 2)
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)

    def __iter__(self) -> Iterator[np.ndarray]:
        def generate() -> Iterator[np.ndarray]:
            index = 0
            while self.frames is None or index < self.frames:
                yield self.frame(index)
                index += 1

        return paced(generate(), self.fps)

    def __repr__(self) -> str:
        return f"Synthetic(size={self.size}, fps={self.fps}, seed={self.seed})"


def synthetic(
    size: Size = (640, 480),
    fps: Optional[float] = 30.0,
    *,
    seed: int = 0,
    frames: Optional[int] = None,
    label: Optional[str] = None,
) -> Iterator[np.ndarray]:
    """An iterator over :class:`Synthetic` frames (the same arguments).

    >>> next(synthetic((32, 32), fps=None)).shape
    (32, 32, 3)
    """
    return iter(Synthetic(size, fps, seed=seed, frames=frames, label=label))


# -- OpenCV-backed sources ---------------------------------------------------------------


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Silence OpenCV's own log while probing a device or file: our SourceError says it."""
    if _log.isEnabledFor(logging.DEBUG):
        yield
        return
    old = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def _resized(frame: np.ndarray, size: Optional[Size]) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA)


class Camera:
    """Frames from camera ``index`` (``cv2.VideoCapture``), optionally resized to ``size``.

    Raises :class:`SourceError` if the camera cannot be opened. Iteration ends when the
    camera stops delivering frames (unplugged) or after ``frames`` frames. The camera
    paces itself; ``fps`` additionally limits the rate.

    Example::

        for frame in Camera(0, size=(640, 480), frames=100):
            server.send(frame)
    """

    def __init__(
        self,
        index: int = 0,
        *,
        size: Optional[Size] = None,
        fps: Optional[float] = None,
        frames: Optional[int] = None,
    ) -> None:
        self.index = index
        self.size = size
        self.fps = fps
        self.frames = frames
        with _opencv_quiet():
            self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {index}: cannot open it (no such device, or it is busy)")

    def __iter__(self) -> Iterator[np.ndarray]:
        def generate() -> Iterator[np.ndarray]:
            count = 0
            while self.frames is None or count < self.frames:
                ok, frame = self._cap.read()
                if not ok:
                    _log.warning("camera %s delivered no frame; stopping", self.index)
                    return
                yield _resized(frame, self.size)
                count += 1

        return paced(generate(), self.fps)

    def release(self) -> None:
        """Close the device (idempotent)."""
        self._cap.release()


class VideoFile:
    """Frames of a video file; ``loop=True`` starts over at the end.

    Paced at ``fps`` (default: the file's own rate, or 30 if it has none; ``0`` for as
    fast as possible). Raises :class:`SourceError` if the file is missing or no frame can
    be decoded from it.

    Example::

        for frame in VideoFile("parking.mp4", loop=True):
            server.send(frame)
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        loop: bool = False,
        size: Optional[Size] = None,
        fps: Optional[float] = None,
        frames: Optional[int] = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such file")
        self.loop = loop
        self.size = size
        self.frames = frames
        with _opencv_quiet():
            self._cap = cv2.VideoCapture(str(self.path))
            ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok:
            self._cap.release()
            raise SourceError(f"{self.path}: not a readable video file")
        self._first: Optional[np.ndarray] = first
        own = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps is not None else (own if own and 0 < own < 1000 else 30.0)

    def __iter__(self) -> Iterator[np.ndarray]:
        def generate() -> Iterator[np.ndarray]:
            count = 0
            while self.frames is None or count < self.frames:
                if self._first is not None:
                    frame, self._first = self._first, None
                else:
                    ok, frame = self._cap.read()
                    if not ok:
                        if not self.loop or count == 0:
                            return
                        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, frame = self._cap.read()
                        if not ok:
                            return
                yield _resized(frame, self.size)
                count += 1

        return paced(generate(), self.fps)

    def release(self) -> None:
        """Close the file (idempotent)."""
        self._cap.release()


class ImageFolder:
    """The images of a folder, in name order, at ``fps`` (default 30); ``loop`` repeats.

    Files that are not images (by extension, see :data:`IMAGE_EXTENSIONS`) are ignored;
    images that fail to decode are skipped with a warning. Raises :class:`SourceError`
    if the folder is missing or holds no image.

    Example::

        for frame in ImageFolder("captures/", fps=5, loop=True):
            server.send(frame)
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        loop: bool = False,
        size: Optional[Size] = None,
        fps: Optional[float] = 30.0,
        frames: Optional[int] = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such folder")
        self.files: List[Path] = sorted(
            p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.files:
            raise SourceError(f"{self.path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.loop = loop
        self.size = size
        self.fps = fps
        self.frames = frames

    def __iter__(self) -> Iterator[np.ndarray]:
        def generate() -> Iterator[np.ndarray]:
            count = 0
            while True:
                decoded = 0
                for file in self.files:
                    if self.frames is not None and count >= self.frames:
                        return
                    frame = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
                    if frame is None:
                        _log.warning("%s: cannot decode this image; skipped", file)
                        continue
                    decoded += 1
                    yield _resized(frame, self.size)
                    count += 1
                if not self.loop or decoded == 0:
                    if decoded == 0 and count == 0:
                        raise SourceError(f"{self.path}: none of its {len(self.files)} images can be decoded")
                    return

        return paced(generate(), self.fps)

    def release(self) -> None:
        """Nothing to close; present so every source can be released alike."""


Source = Union[Synthetic, Camera, VideoFile, ImageFolder]


def open_source(
    spec: str = "synthetic",
    *,
    size: Optional[Size] = None,
    fps: Optional[float] = None,
    frames: Optional[int] = None,
    loop: bool = False,
    seed: int = 0,
    label: Optional[str] = None,
) -> Source:
    """Open a source from its text form, as ``netgear serve --source`` takes it.

    ``"synthetic"``, a camera index (``"0"``), a video file or a folder of images. Defaults
    left as None mean: synthetic 640x480 at 30 fps; a camera or file at its own size and
    rate; a folder at 30 fps.

    >>> open_source("synthetic", size=(64, 48), fps=10)
    Synthetic(size=(64, 48), fps=10, seed=0)
    """
    if spec == "synthetic":
        return Synthetic(size or (640, 480), 30.0 if fps is None else fps, seed=seed, frames=frames, label=label)
    if spec.isdigit():
        return Camera(int(spec), size=size, fps=fps, frames=frames)
    path = Path(spec)
    if path.is_dir():
        return ImageFolder(path, loop=loop, size=size, fps=30.0 if fps is None else fps, frames=frames)
    if path.exists():
        return VideoFile(path, loop=loop, size=size, fps=fps, frames=frames)
    raise SourceError(f"{spec}: no such file or folder (use 'synthetic', a camera index, a video file or a folder)")
