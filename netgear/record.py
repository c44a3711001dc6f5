"""Record what a hub receives: one video file per port.

Each port's writer is opened lazily, from the size of the first frame that arrives on
it; later frames of another size are resized to it, grayscale and other formats are
converted to 8-bit BGR (:func:`netgear.display.to_bgr`). Files are named
``port-<port>.<ext>`` in the chosen folder. The default container is MP4 (``mp4v``);
where that writer cannot be opened, Motion-JPEG in AVI is used instead.

Example::

    with Recorder("recordings/", fps=30) as recorder:
        for packet in hub:
            recorder.write(packet.port, packet.frame)
    print(recorder.files)          # {5566: PosixPath('recordings/port-5566.mp4'), ...}
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import cv2
import numpy as np

from .display import to_bgr
from .errors import NetGearError

__all__ = ["Recorder", "RecordError"]

_log = logging.getLogger(__name__)

#: ``(fourcc, extension)`` tried in order.
FORMATS: Tuple[Tuple[str, str], ...] = (("mp4v", ".mp4"), ("MJPG", ".avi"))


class RecordError(NetGearError, OSError):
    """A recording cannot be written (folder not writable, no usable video writer)."""


class _Track:
    __slots__ = ("writer", "path", "size", "frames")

    def __init__(self, writer: "cv2.VideoWriter", path: Path, size: Tuple[int, int]) -> None:
        self.writer = writer
        self.path = path
        self.size = size
        self.frames = 0


class Recorder:
    """One ``cv2.VideoWriter`` per port, each opened from its port's first frame.

    ``directory`` is created if needed. ``fps`` is the rate written into the files (the
    hub cannot know a server's real rate in advance). ``formats`` overrides the
    ``(fourcc, extension)`` pairs tried in order.
    """

    def __init__(
        self,
        directory: Union[str, os.PathLike],
        fps: float = 30.0,
        formats: Tuple[Tuple[str, str], ...] = FORMATS,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(f"{self.directory}: cannot create the recording folder ({exc.strerror})") from None
        if not os.access(self.directory, os.W_OK):
            raise RecordError(f"{self.directory}: the recording folder is not writable")
        self.fps = float(fps)
        self.formats = formats
        self._tracks: Dict[int, _Track] = {}

    @property
    def files(self) -> Dict[int, Path]:
        """The file of every port recorded so far."""
        return {port: t.path for port, t in self._tracks.items()}

    @property
    def counts(self) -> Dict[int, int]:
        """Frames written per port."""
        return {port: t.frames for port, t in self._tracks.items()}

    def write(self, port: int, frame: Optional[np.ndarray]) -> None:
        """Append ``frame`` to ``port``'s video (opened on its first frame); None is ignored."""
        if frame is None:
            return
        image = to_bgr(frame)
        track = self._tracks.get(port)
        if track is None:
            track = self._tracks[port] = self._open(port, (image.shape[1], image.shape[0]))
        if (image.shape[1], image.shape[0]) != track.size:
            image = cv2.resize(image, track.size, interpolation=cv2.INTER_AREA)
        track.writer.write(image)
        track.frames += 1

    def _open(self, port: int, size: Tuple[int, int]) -> _Track:
        # Most codecs want even dimensions; a 1-pixel crop is invisible.
        size = (max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2))
        for fourcc, ext in self.formats:
            path = self.directory / f"port-{port}{ext}"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
            if writer.isOpened():
                _log.info("recording port %s to %s (%dx%d, %s)", port, path, size[0], size[1], fourcc)
                return _Track(writer, path, size)
            writer.release()
        raise RecordError(f"{self.directory}: cannot open a video writer for port {port} ({size[0]}x{size[1]})")

    def close(self) -> None:
        """Finish every file (idempotent); the files stay listed in :attr:`files`."""
        for track in self._tracks.values():
            track.writer.release()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
