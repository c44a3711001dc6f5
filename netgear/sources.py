"""Frame sources that are plain iterables of numpy frames.

Only the camera-free synthetic source lives here for now; it needs nothing but numpy.
"""

from __future__ import annotations

import time
from typing import Iterator, Optional, Tuple

import numpy as np

__all__ = ["synthetic"]


def synthetic(
    size: Tuple[int, int] = (640, 480),
    fps: Optional[float] = 30.0,
    *,
    seed: int = 0,
    frames: Optional[int] = None,
) -> Iterator[np.ndarray]:
    """Moving test pattern (``size`` is width x height), paced at ``fps`` without drift.

    Each frame has a colour per ``seed`` (so servers are told apart on a montage), a block
    moving with the frame counter, and the counter's bits as a row of squares. ``fps=None``
    yields as fast as the consumer takes them; ``frames`` limits the count.
    """
    width, height = size
    if width < 16 or height < 16:
        raise ValueError(f"size: frames must be at least 16x16, got {width}x{height}")
    rng = np.random.default_rng(seed)
    base = np.empty((height, width, 3), np.uint8)
    base[:] = rng.integers(40, 200, size=3, dtype=np.uint8)
    base[:, :, 0] = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)[None, :]
    block = max(4, min(width, height) // 8)
    start = time.monotonic()
    index = 0
    while frames is None or index < frames:
        if fps:
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame = base.copy()
        x = (index * 4) % max(1, width - block)
        y = (height - block) // 2
        frame[y : y + block, x : x + block] = 255
        for bit in range(min(16, width // block)):
            if (index >> bit) & 1:
                frame[:block // 2, bit * block : bit * block + block // 2] = (0, 255, 255)
        yield frame
        index += 1
