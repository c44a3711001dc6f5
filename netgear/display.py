"""Show what a hub receives: a labelled montage of every server, or one window each.

* :func:`to_bgr` turns any frame netgear delivers (grayscale, BGRA, float, 16-bit ...)
  into an 8-bit BGR image OpenCV can draw and show.
* :class:`Montage` keeps the newest frame of every server and builds one image from them
  with ``imutils.build_montages``: tiles in a stable order (by port, then server id), each
  labelled with port, server id, rate and state; a server that is gone keeps its last
  frame, dimmed, with the reason written over it.
* :class:`Display` shows images in OpenCV windows and falls back gracefully (to doing
  nothing, with one warning) where OpenCV has no GUI: a headless OpenCV build, or no
  display server. Write snapshots (:func:`write_image`) to see the streams there.

Example::

    montage = Montage(tile_size=(320, 240))
    with Display() as display:
        for packet in hub:
            montage.update(packet)
            if not display.show("netgear", montage.render(hub.snapshot())):
                break          # the user pressed q or closed the window
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from imutils import build_montages

from .packet import Packet
from .stats import HubSnapshot

__all__ = ["Tile", "Montage", "Display", "to_bgr", "label_tile", "montage_grid", "gui_available", "write_image"]

_log = logging.getLogger(__name__)

Key = Tuple[int, Optional[str]]
Size = Tuple[int, int]


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """An 8-bit, 3-channel, contiguous copy-or-view of ``frame`` for drawing and showing.

    Grayscale (2-D or one channel) is expanded, BGRA loses its alpha, bool becomes 0/255,
    floats are taken as 0..1 when their maximum is at most 1 (else 0..255), other integer
    types are scaled from their full range.

    >>> to_bgr(np.zeros((4, 5), np.uint16)).shape
    (4, 5, 3)
    """
    img = np.asarray(frame)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"not an image: shape {img.shape}")
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype.kind == "f":
        top = float(np.nanmax(img)) if img.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        info = np.iinfo(img.dtype)
        img = ((img.astype(np.float64) - info.min) * (255.0 / (info.max - info.min))).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def label_tile(image: np.ndarray, lines: Sequence[str], *, dim: bool = False) -> np.ndarray:
    """Write ``lines`` at the top-left of ``image`` (in place) on a dark band; return it.

    ``dim`` darkens the whole image first (used for servers that are gone).
    """
    if dim:
        image //= 3
    height, width = image.shape[:2]
    scale = max(0.35, min(width, height) / 640)
    line_h = int(22 * scale) + 4
    band = min(height, line_h * len(lines) + 4)
    image[:band] //= 3
    for i, text in enumerate(lines):
        org = (4, (i + 1) * line_h - 3)
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def montage_grid(count: int, columns: Optional[int] = None) -> Tuple[int, int]:
    """``(columns, rows)`` for ``count`` tiles: as square as possible, wider than tall.

    >>> montage_grid(3), montage_grid(8), montage_grid(8, columns=2)
    ((2, 2), (3, 3), (2, 4))
    """
    count = max(1, count)
    cols = columns or math.ceil(math.sqrt(count))
    return cols, math.ceil(count / cols)


@dataclass
class Tile:
    """One server's tile: its newest frame (None before the first) and what the label says."""

    port: int
    server_id: Optional[str]
    frame: Optional[np.ndarray] = None
    frames: int = 0
    message: object = None
    updated: float = 0.0


class Montage:
    """Newest frame per server, rendered as one labelled image (``imutils.build_montages``).

    ``tile_size`` is each tile's width x height; ``columns`` fixes the grid width (default:
    about square). Tiles are ordered by port, then server id, so they do not jump around
    when servers join. Ports in the snapshot nobody connected to yet get a "waiting" tile;
    with ``filter`` (the hub's filter: ports and topics), servers it excludes get none.
    ``messages=True`` adds each server's latest message to its label.

    >>> m = Montage(tile_size=(64, 48))
    >>> m.render().shape          # nothing received yet: one empty tile
    (48, 64, 3)
    """

    def __init__(
        self,
        tile_size: Size = (320, 240),
        columns: Optional[int] = None,
        filter: Optional[Sequence[Union[int, str]]] = None,
        messages: bool = False,
    ) -> None:
        if tile_size[0] < 16 or tile_size[1] < 16:
            raise ValueError(f"tile_size must be at least 16x16, got {tile_size}")
        self.tile_size: Size = (int(tile_size[0]), int(tile_size[1]))
        self.columns = columns
        self.filter = None if filter is None else frozenset(str(f) for f in filter)
        self.messages = messages
        self.tiles: Dict[Key, Tile] = {}

    def update(self, packet: Packet) -> None:
        """Keep ``packet``'s frame as its server's newest (message-only packets keep the old)."""
        key = (packet.port, packet.server_id)
        tile = self.tiles.get(key)
        if tile is None:
            tile = self.tiles[key] = Tile(packet.port, packet.server_id)
        if packet.frame is not None:
            tile.frame = packet.frame
        tile.frames += 1
        tile.message = packet.message if packet.has_message else tile.message
        tile.updated = time.monotonic()

    def keys(self, snapshot: Optional[HubSnapshot] = None) -> List[Key]:
        """Tile keys in display order: servers seen (and ports still waiting) by port, id."""
        keys = set(self.tiles)
        if snapshot is not None:
            for s in snapshot.servers:
                if s.server_id is None or self._passes(s.port, s.topic):
                    keys.add((s.port, s.server_id))
        ports_with_servers = {p for p, sid in keys if sid is not None}
        keys = {(p, sid) for p, sid in keys if sid is not None or p not in ports_with_servers}
        return sorted(keys, key=lambda k: (k[0], k[1] or ""))

    def _passes(self, port: int, topic: Optional[str]) -> bool:
        return self.filter is None or str(port) in self.filter or (topic is not None and topic in self.filter)

    def tile_image(
        self,
        key: Key,
        snapshot: Optional[HubSnapshot] = None,
        rates: Optional[Mapping[Key, float]] = None,
        size: Optional[Size] = None,
    ) -> np.ndarray:
        """The labelled tile of one server, at ``size`` (default ``tile_size``)."""
        port, server_id = key
        tile = self.tiles.get(key)
        stats = snapshot.server(port, server_id) if snapshot is not None else None
        state = stats.state if stats is not None else ("alive" if tile is not None else "expected")
        width, height = size or self.tile_size
        if tile is not None and tile.frame is not None:
            image = cv2.resize(to_bgr(tile.frame), (width, height), interpolation=cv2.INTER_AREA)
        else:
            image = np.full((height, width, 3), 32, np.uint8)
        fps = (rates or {}).get(key) if state == "alive" else None
        gone = state in ("gone", "closed")
        lines = [f"{port}  {server_id or '-'}"]
        if gone:
            reason = stats.reason if stats is not None else None
            lines.append(state.upper() + (f" ({reason})" if reason and reason != state else ""))
        else:
            lines.append(state if fps is None else f"{fps:.1f} fps  {state}")
        if not gone and (tile is None or tile.frame is None):
            lines.append("waiting for a server")
        if self.messages and tile is not None and tile.message is not None:
            lines.append(str(tile.message)[:60])
        return label_tile(image, lines, dim=gone and tile is not None and tile.frame is not None)

    def render(
        self, snapshot: Optional[HubSnapshot] = None, rates: Optional[Mapping[Key, float]] = None
    ) -> np.ndarray:
        """The whole montage as one BGR image (``columns x rows`` tiles)."""
        keys = self.keys(snapshot)
        images = [self.tile_image(k, snapshot, rates) for k in keys]
        if not images:
            images = [np.full((self.tile_size[1], self.tile_size[0], 3), 32, np.uint8)]
        grid = montage_grid(len(images), self.columns)
        return build_montages(images, self.tile_size, grid)[0]


# -- windows ------------------------------------------------------------------------------

_gui: Optional[bool] = None


def gui_available() -> bool:
    """True if OpenCV can open windows here (checked once, without risking this process).

    False for a headless OpenCV build and, on Linux, without ``DISPLAY``/``WAYLAND_DISPLAY``.
    Otherwise a short child process tries to open a window: OpenCV's Qt backend aborts
    the whole process when the display server cannot be reached, so we never try here first.
    """
    global _gui
    if _gui is None:
        _gui = _probe_gui()
    return _gui


def _probe_gui() -> bool:
    if os.environ.get("NETGEAR_NO_GUI"):
        return False
    info = cv2.getBuildInformation()
    gui_line = next((line for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if "NONE" in gui_line.upper() or not gui_line:
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    code = "import cv2; cv2.namedWindow('netgear-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


class Display:
    """OpenCV windows that degrade to nothing where there is no GUI.

    ``show(name, image)`` shows or refreshes the window ``name`` and returns False once
    the user asked to stop (q or Esc pressed, or a window closed), True otherwise.
    ``enabled`` tells whether windows are actually shown; when they cannot be, a single
    warning is logged and ``show()`` only returns True.

    Example::

        with Display() as display:
            display.show("port 5566", frame)
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled) and gui_available()
        if enabled and not self.enabled:
            _log.warning("no GUI available here (headless OpenCV or no display): windows are not shown")
        self._windows: Dict[str, bool] = {}

    def show(self, name: str, image: np.ndarray) -> bool:
        """Show ``image`` in window ``name``; False when the user asked to stop."""
        if not self.enabled:
            return True
        try:
            cv2.imshow(name, to_bgr(image))
            self._windows[name] = True
            return self.poll()
        except cv2.error as exc:
            _log.warning("cannot show windows (%s); going on without them", exc)
            self.enabled = False
            return True

    def poll(self) -> bool:
        """Handle window events; False when q/Esc was pressed or a window was closed."""
        if not self.enabled or not self._windows:
            return True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        for name in self._windows:
            try:
                if cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) < 1:
                    return False
            except cv2.error:
                return False
        return True

    def close(self) -> None:
        """Close every window this display opened (idempotent)."""
        if self.enabled and self._windows:
            for name in self._windows:
                try:
                    cv2.destroyWindow(name)
                except cv2.error:
                    pass
            cv2.waitKey(1)
        self._windows.clear()

    def __enter__(self) -> "Display":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_image(path: Union[str, os.PathLike], image: np.ndarray) -> Path:
    """Write ``image`` to ``path`` atomically (readers never see half a file); return the path.

    The format follows the extension (``.png``, ``.jpg`` ...). Raises ``OSError`` when the
    file cannot be written.
    """
    target = Path(path)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        ok = cv2.imwrite(str(partial), image)
    except cv2.error as exc:
        raise OSError(f"{target}: cannot write this image ({exc.err or exc})") from None
    if not ok:
        raise OSError(f"{target}: cannot write an image there (check the folder and the extension)")
    os.replace(partial, target)
    return target
