"""Every wire format the hub understands, recognised from the message itself.

The hub needs no per-format branches::

    envelope, parts = formats.unwrap(pattern, frames)   # what the socket delivered
    fmt = formats.detect(parts)                         # native, vidgear or imagezmq
    decoded = fmt.decode(parts, limits)                 # ProtocolError if malformed
    answer = formats.reply(fmt, decoded, data, limits=limits, pattern=pattern)
    if answer is not None:
        send [*envelope, *answer]

:func:`detect` looks at a few bytes of the first part: the native header starts with
``b"\\xabNG"`` (which starts no JSON document), vidgear's and imagezmq's with a JSON
object whose first key tells them apart (vidgear writes ``port`` or ``terminate_flag``
first, imagezmq ``msg``). Anything else is handed to the native codec, which refuses it
with ``bad_magic``, so garbage is counted like any other malformed message.

A server picks its format by name (:data:`BY_NAME`) and uses the same adapters:
:func:`wrap` for its envelope, :func:`replies` to know whether an answer comes back,
:func:`publisher_binds` to know whether its PUB socket binds.

The native module predates this registry and has no ``NAME``/``reply``/constants; the
small adapters here cover it, so neither side needs a branch per format.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Final

from netgear.wire import (
    NO_MESSAGE,
    Decoded,
    Kind,
    Limits,
    _foreign,
    imagezmq,
    native,
    vidgear,
)

__all__ = [
    "BY_NAME",
    "FORMATS",
    "detect",
    "heartbeats",
    "name",
    "publisher_binds",
    "refusal",
    "replies",
    "reply",
    "sequenced",
    "unwrap",
    "wrap",
]

FORMATS: Final = (native, vidgear, imagezmq)
"""Every format, in detection order (native first)."""
BY_NAME: Final = {"native": native, vidgear.NAME: vidgear, imagezmq.NAME: imagezmq}
"""Formats by name, for a server's wire-format option."""

_NATIVE_REPLY_PATTERNS: Final = frozenset({1})
_MAX_ENVELOPE: Final = 8


def detect(parts: Sequence[Any]) -> ModuleType:
    """The format of ``parts`` (``[header, *payload]``); :mod:`native` when unknown. Never raises."""
    try:
        head = _foreign.view(parts[0])[: len(native.MAGIC)]
        if head == native.MAGIC:
            return native
    except Exception:
        return native
    for fmt in FORMATS[1:]:
        if fmt.detect(parts):
            return fmt
    return native


def name(fmt: ModuleType) -> str:
    """``"native"``, ``"vidgear"`` or ``"imagezmq"``."""
    return getattr(fmt, "NAME", "native")


def sequenced(fmt: ModuleType) -> bool:
    """True if ``Decoded.seq``/``session`` are real (native); False for the foreign formats,
    whose frames all carry ``seq`` 0: skip duplicate and gap bookkeeping for them."""
    return getattr(fmt, "SEQUENCED", True)


def heartbeats(fmt: ModuleType) -> bool:
    """True if the format's senders speak up when idle (native heartbeats); foreign
    senders are silent between frames, so their liveness is their connection."""
    return getattr(fmt, "HEARTBEATS", True)


def replies(fmt: ModuleType, pattern: int) -> bool:
    """True if a sender of ``fmt`` waits for an answer to every message under ``pattern``."""
    return pattern in getattr(fmt, "REPLY_PATTERNS", _NATIVE_REPLY_PATTERNS)


def publisher_binds(fmt: ModuleType) -> bool:
    """True if, under PUB/SUB, the sender binds and the hub connects (imagezmq)."""
    return getattr(fmt, "PUBLISHER_BINDS", False)


def refusal(fmt: ModuleType, pattern: int) -> list[bytes] | None:
    """What to answer a message of ``fmt`` that was refused (malformed, over a limit), or
    None. Native servers retry and time out on their own; a vidgear server would wait 4 s
    per miss and give up after 3; an imagezmq sender would wait forever."""
    answer = getattr(fmt, "REFUSAL", None)
    return list(answer) if answer is not None and replies(fmt, pattern) else None


def owes_reply(fmt: ModuleType, decoded: Decoded, pattern: int) -> bool:
    """Whether :func:`reply` would answer ``decoded`` (without encoding the answer)."""
    if fmt is native:
        return pattern in _NATIVE_REPLY_PATTERNS and decoded.kind is Kind.FRAME
    return replies(fmt, pattern)


def reply(
    fmt: ModuleType,
    decoded: Decoded,
    data: Any = NO_MESSAGE,
    *,
    limits: Limits,
    pattern: int,
) -> list[Any] | None:
    """The parts that answer ``decoded`` under ``pattern``, or None when nothing is owed.

    native answers FRAMEs under REQ/REP only (an ACK); vidgear answers frames *and*
    goodbyes under REQ/REP and PAIR; imagezmq answers frames under REQ/REP. Raises what
    the format's encoder raises for bad ``data`` (``TypeError``, ``MessageTooLarge``).
    """
    if not owes_reply(fmt, decoded, pattern):
        return None
    if fmt is native:
        return native.encode_ack(decoded.seq, data, limits=limits)
    return fmt.reply(decoded, data, limits=limits)


def wrap(fmt: ModuleType, pattern: int, parts: Sequence[Any], *, topic: bytes) -> list[Any]:
    """The frames a server sends for ``parts``: ``[b"", *parts]`` under REQ/REP (a DEALER
    speaking to ROUTER or REP), ``[topic, *parts]`` under PUB/SUB for native only (foreign
    hubs expect no topic frame), ``parts`` under PAIR."""
    if pattern == 1:
        return [b"", *parts]
    if pattern == 2 and fmt is native:
        return [topic, *parts]
    return list(parts)


def unwrap(pattern: int, frames: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Split what a hub socket delivered into ``(envelope, parts)``; never raises.

    ``pattern`` 1 (ROUTER): the envelope is everything up to and including the first empty
    frame, ``[routing-id, b""]`` for REQ and DEALER peers, ``[routing-id, request-id,
    b""]`` for vidgear's REQ_CORRELATE sockets; answer with ``[*envelope, *answer]``.
    Without an empty frame among the first few, ``parts`` is empty (refused as
    ``bad_parts``). ``pattern`` 2 (SUB): a native topic frame (it ends with NUL) is the
    envelope; foreign publishers send no topic frame (their first part is JSON).
    ``pattern`` 0 (PAIR): no envelope.
    """
    frames = list(frames)
    try:
        if pattern == 1:
            for index in range(1, min(len(frames), _MAX_ENVELOPE + 1)):
                if _foreign.view(frames[index]).nbytes == 0:
                    return frames[: index + 1], frames[index + 1 :]
            return frames[:1], []
        if pattern == 2 and len(frames) >= 2 and _foreign.view(frames[0])[-1:] == b"\x00":
            return frames[:1], frames[1:]
    except Exception:
        return frames[:1], []
    return [], frames


# --------------------------------------------------------------------------- sender side


class Speaker:
    """What a server says, in one wire format: frames, heartbeats, goodbye; and how it
    reads the hub's answers. The server holds one and never branches on the format."""

    def __init__(
        self,
        fmt: ModuleType,
        *,
        server_id: str,
        session: int,
        topic: str,
        port: int | str | None,
        pattern: int,
        limits: Limits,
    ) -> None:
        self.fmt = fmt
        self.server_id = server_id
        self.session = session
        self.topic = topic
        self.port = port
        self.pattern = pattern
        self.limits = limits
        self.sequenced = sequenced(fmt)
        self.heartbeats = heartbeats(fmt)
        self.replies = replies(fmt, pattern)
        self._frames = (
            native.FrameEncoder(server_id=server_id, session=session, topic=topic, limits=limits)
            if fmt is native
            else None
        )

    def frame(self, seq: int, frame: Any, message: Any, encoded: Any, *, defer: bool = False) -> list[Any]:
        """The parts of one frame (``encoded``: a JPEG :class:`~netgear.wire.Encoded`);
        ``defer``: its acknowledgement may wait for a later frame's (native only)."""
        if self._frames is not None:
            return self._frames.encode(seq, _now_ns(), frame, message, encoded, defer)
        if self.fmt is vidgear:
            return vidgear.encode_frame(
                frame=frame,
                message=message,
                limits=self.limits,
                encoded=encoded,
                port=self.port,
                pattern=self.pattern,
                fastdct=encoded.fastdct if encoded is not None else True,
                fastupsample=encoded.fastupsample if encoded is not None else False,
            )
        name_ = self.server_id if message is NO_MESSAGE else message  # imagezmq's "msg"
        return imagezmq.encode_frame(frame=frame, message=name_, limits=self.limits, encoded=encoded)

    def heartbeat(self, seq: int) -> list[Any] | None:
        """A heartbeat, or None for formats whose hubs know none."""
        if not self.heartbeats:
            return None
        return native.encode_control(
            Kind.HEARTBEAT, seq=seq, sent_ns=_now_ns(), server_id=self.server_id, session=self.session, topic=self.topic
        )

    def bye(self, seq: int) -> list[Any] | None:
        """The goodbye, or None when the format has none (imagezmq)."""
        if self.fmt is native:
            return native.encode_control(
                Kind.BYE, seq=seq, sent_ns=_now_ns(), server_id=self.server_id, session=self.session, topic=self.topic
            )
        return self.fmt.encode_close(port=self.port)

    def answer(self, parts: Sequence[Any]) -> Any:
        """The hub's answer as an :class:`~netgear.wire.Ack` (``ProtocolError`` if malformed)."""
        if self.fmt is native:
            return native.decode_ack(parts, self.limits)
        return self.fmt.decode_reply(parts, self.limits)


#: the sender's time stamp (looked up once: it is taken for every frame)
_now_ns = time.time_ns
