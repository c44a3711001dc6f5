"""Wire formats: the types shared by every codec.

This package holds the pure (socket-free) codecs. Each wire format lives in its own
module beside this one (``native`` for "netgear v2", ``vidgear``, ``imagezmq``) and exposes the same
``decode(parts, limits)`` interface returning :class:`Decoded`.

Only shared, dependency-free definitions live here so that codec modules can import
them without import cycles; this module never imports a codec.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from netgear._frozen import dict_init
from netgear.errors import ConfigError

__all__ = [
    "DTYPES",
    "NO_MESSAGE",
    "Ack",
    "Decoded",
    "Kind",
    "Limits",
    "NoMessage",
]


class Kind(enum.IntEnum):
    """What a wire message is."""

    FRAME = 0
    HEARTBEAT = 1
    BYE = 2
    ACK = 3


class NoMessage(enum.Enum):
    """Type of the :data:`NO_MESSAGE` sentinel (an enum so it stays a singleton)."""

    NO_MESSAGE = "NO_MESSAGE"

    def __repr__(self) -> str:
        return "NO_MESSAGE"

    def __bool__(self) -> bool:
        return False


NO_MESSAGE: Final = NoMessage.NO_MESSAGE
"""Default of ``message=`` / ``reply=``: nothing was sent (unlike ``None``, which is sent)."""


_DTYPE_NAMES: Final = (
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
)


def _build_dtypes() -> frozenset[str]:
    """Every whitelisted dtype string, in both byte orders where byte order applies."""
    out: set[str] = set()
    for name in _DTYPE_NAMES:
        dtype = np.dtype(name)
        out.add(dtype.newbyteorder("<").str)
        out.add(dtype.newbyteorder(">").str)
    return frozenset(out)


DTYPES: Final[frozenset[str]] = _build_dtypes()
"""Allowed numpy dtype strings (``dtype.str``): ``'|b1'``, ``'|u1'``, ``'<u2'``, ``'>f4'`` ..."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits enforced on both sides of the wire.

    ``max_message_bytes`` bounds the packed message (or ACK reply),
    ``max_frame_bytes`` the raw frame payload and ``max_ndim`` the frame's dimensions.
    """

    max_message_bytes: int = 1 << 20
    max_frame_bytes: int = 256 << 20
    max_ndim: int = 4

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_frame_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ConfigError(name, f"must be an int >= 0, got {value!r}")
        if type(self.max_ndim) is not int or not 0 <= self.max_ndim <= 32:
            raise ConfigError("max_ndim", f"must be an int in 0..32, got {self.max_ndim!r}")


@dict_init
@dataclass(frozen=True, eq=False)
class Decoded:
    """One decoded FRAME, HEARTBEAT or BYE.

    ``frame`` is ``None`` when no frame was sent; ``message`` is ``None`` when
    ``has_message`` is false (a sent ``None`` has ``has_message`` true). ``nbytes`` is the
    total size of all the parts. Instances compare by identity (payloads may be arrays).
    """

    kind: Kind
    seq: int
    sent_ns: int
    server_id: str
    session: int
    topic: str
    frame: np.ndarray | None
    message: Any
    has_message: bool
    nbytes: int
    encoded: Encoded | None = None
    #: the sender needs no acknowledgement of this frame yet (native v2 ``d``)
    defer: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """A compressed frame as it arrived (``codec`` "jpeg"), checked but not decoded.

    ``data`` is a view of the received bytes, ``colorspace`` what the sender encoded
    from (and what the receiver decodes to), ``shape`` the original frame's shape.
    """

    codec: str
    data: memoryview
    colorspace: str
    shape: tuple[int, ...]
    fastdct: bool = True
    fastupsample: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Ack:
    """One decoded acknowledgement of ``seq``, with the hub's optional reply.

    ``reply`` is ``None`` when ``has_reply`` is false. Compares by identity.
    """

    seq: int
    reply: Any
    has_reply: bool
