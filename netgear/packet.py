"""What the hub hands to user code: one :class:`Packet` per received frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ._frozen import dict_init

__all__ = ["Packet"]


@dict_init
@dataclass(frozen=True, eq=False)
class Packet:
    """One frame (and its message) as received by the hub. Always the same shape.

    ``port`` is the hub port it arrived on (authoritative: not a claim of the sender).
    ``message`` is what the server passed as ``message=`` (``None`` and ``has_message``
    False when it passed none). ``sent_at``/``received_at`` are wall-clock seconds
    (``time.time()``) of the sender and of the hub; on one host their difference is the
    latency. ``frame`` is a writable numpy array, or ``None`` for a message-only send (or
    a JPEG frame on a hub with ``jpeg_decode=False``). ``jpeg`` holds the compressed bytes
    as they arrived when the server sent JPEG (a view: forward it, write it to a file, or
    ``bytes(packet.jpeg)`` to keep it).

    Packets compare by identity (frames are arrays).

    Example::

        for packet in hub:
            cv2.putText(packet.frame, packet.server_id, ...)
    """

    port: int
    frame: Optional[np.ndarray]
    message: Any
    has_message: bool
    server_id: str
    topic: str
    seq: int
    sent_at: float
    received_at: float
    jpeg: Optional[memoryview] = None
    _answer: Optional[Callable[["Packet", Any], bool]] = field(default=None, repr=False, compare=False)

    def _with_frame(self, frame: Optional[np.ndarray]) -> "Packet":
        """This packet with ``frame`` (a decoded JPEG): ``dataclasses.replace`` without its
        per-field work, once per decoded frame."""
        packet = object.__new__(Packet)
        packet.__dict__.update(self.__dict__, frame=frame)
        return packet

    @property
    def latency(self) -> float:
        """``received_at - sent_at`` in seconds (meaningful when both clocks agree)."""
        return self.received_at - self.sent_at

    def reply(self, data: Any = None) -> bool:
        """Answer exactly this frame with ``data`` (REQ/REP with ``bidirectional_mode``).

        The server's ``send()`` for this frame returns ``data``. Returns True if the answer
        was queued, False if this frame was already answered (every delivered frame is
        answered, with ``None``, at the latest when the next frame is requested).
        """
        if self._answer is None:
            from .errors import ConfigError

            raise ConfigError("bidirectional_mode", "packet.reply() needs bidirectional_mode=True and pattern=1")
        return self._answer(self, data)
