"""imagezmq's wire format (verified against imagezmq 1.1.1 and 1.2.0, which are identical).

Pure codec, no sockets. Read from ``imagezmq/imagezmq.py`` of the released wheels.

**Sender to hub.** Two parts, a JSON object (pyzmq ``send_json``: ``json.dumps`` defaults,
keys in this order) and the payload::

    send_image(msg, image):  {"msg": <msg>, "dtype": "uint8", "shape": [480, 640, 3]}
                             <raw C-order array bytes>
    send_jpg(msg, jpg):      {"msg": <msg>}
                             <the buffer as given, normally cv2.imencode(".jpg", image)>

``msg`` is the sender's text ("text message or image name", in practice the host name)
and may be any JSON value. ``dtype`` is ``str(image.dtype)``.

**Envelopes.** REQ/REP: a plain REQ socket that *connects*; a ROUTER sees ``[routing-id,
b"", json, payload]``. The sender waits (forever) for one answer part: ``ImageHub``
answers ``b"OK"`` unless told otherwise, and ``send_image``/``send_jpg`` return that
answer. PUB/SUB: the sender *binds* a PUB socket and the hub *connects* a SUB socket
subscribed to everything; the parts are sent as above, with no topic frame. There is no
goodbye, heartbeat or sequence number.

**What becomes what** (:func:`decode`). Always ``Kind.FRAME``. ``message`` is ``msg`` (the
JSON value as ``json.loads`` gives it; ``has_message`` is always true), and ``msg`` is also
the ``server_id`` and ``topic`` when it is a str of 1..256 characters without NUL, which
keeps several senders on one port apart (as an imagezmq hub tells them apart by name);
any other ``msg`` gives ``server_id``/``topic`` ``"imagezmq"``. A sender that puts
per-frame text in ``msg`` therefore shows up as a new server per distinct text. A raw
image arrives as ``frame``; a JPEG as ``encoded``, with its shape read from the JPEG
header and colorspace ``"BGR"`` (``"GRAY"``, 2-D, for a one-component JPEG), matching
what ``cv2.imdecode`` gives. Anything that is not a JPEG (a PNG sent with ``send_jpg``) is
refused with ``bad_jpeg``. ``seq``, ``sent_ns`` and ``session`` are 0 (see
:data:`SEQUENCED`). Validation and reasons are those of the native format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from netgear.errors import MessageTooLarge, ProtocolError
from netgear.wire import NO_MESSAGE, Ack, Decoded, Encoded, Kind, Limits
from netgear.wire import _foreign as _f

__all__ = [
    "DEFAULT_MSG",
    "HEARTBEATS",
    "NAME",
    "PUBLISHER_BINDS",
    "REFUSAL",
    "REPLY_PATTERNS",
    "SEQUENCED",
    "decode",
    "decode_reply",
    "detect",
    "encode_close",
    "encode_frame",
    "reply",
]

NAME: Final = "imagezmq"
SEQUENCED: Final = False
"""Frames carry no sequence number: ``Decoded.seq`` is always 0."""
REPLY_PATTERNS: Final = frozenset({1})
"""Patterns whose senders wait for an answer to every message."""
HEARTBEATS: Final = False
"""Senders are silent between frames: judge their liveness by their connection."""
PUBLISHER_BINDS: Final = True
"""Under PUB/SUB the sender *binds* its PUB socket and the hub connects to it."""
REFUSAL: Final = (b"OK",)
"""What to answer a message that was refused: an imagezmq sender waits forever otherwise."""
DEFAULT_MSG: Final = "NoName"
"""imagezmq's own default ``msg``, sent when :func:`encode_frame` gets no message."""

_FIRST_KEYS: Final = frozenset({"msg", "dtype"})
_IMAGE_KEYS: Final = frozenset({"msg", "dtype", "shape"})
_JPG_KEYS: Final = frozenset({"msg"})
_OK: Final = b"OK"
_DEFAULT_LIMITS: Final = Limits()


def detect(parts: Sequence[Any]) -> bool:
    """True if the first part is a JSON object whose first key is one imagezmq writes first."""
    return _f.first_key(parts) in _FIRST_KEYS


# --------------------------------------------------------------------------- hub side


@_f.hostile
def decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    """Decode an image or a JPEG; raise ``ProtocolError`` for anything else."""
    return _decode(parts, limits)


def _decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    views = _f.views(parts, (2,))
    meta = _f.load_object(views[0], limits)
    frame = encoded = None
    if meta.keys() == _JPG_KEYS:
        encoded = _f.jpeg_frame(views[1], None, limits)
    else:
        _f.check_keys(meta, _IMAGE_KEYS, frozenset())
        frame = _f.raw_frame(meta["dtype"], meta["shape"], views[1], limits)
    msg = meta["msg"]
    _f.check_message_size(msg, views[0], limits)
    ident = _f.text_id(msg) or NAME
    nbytes = views[0].nbytes + views[1].nbytes
    return Decoded(
        kind=Kind.FRAME,
        seq=0,
        sent_ns=0,
        server_id=ident,
        session=0,
        topic=ident,
        frame=frame,
        message=msg,
        has_message=True,
        nbytes=nbytes,
        encoded=encoded,
    )


def reply(decoded: Decoded, data: Any = NO_MESSAGE, *, limits: Limits = _DEFAULT_LIMITS) -> list[bytes]:
    """The one part an imagezmq sender waits for: ``b"OK"``, or ``data`` (bytes or str).

    The sender's ``send_image``/``send_jpg`` returns exactly these bytes. Raises
    ``TypeError`` for other data and :class:`~netgear.errors.MessageTooLarge` over
    ``max_message_bytes``, in the caller's thread.
    """
    if data is NO_MESSAGE or data is None:
        return [_OK]
    if isinstance(data, str):
        answer = data.encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        answer = bytes(data)
    else:
        kind = type(data)
        raise TypeError(f"an imagezmq reply is bytes or str, not {kind.__module__}.{kind.__qualname__}")
    if len(answer) > limits.max_message_bytes:
        raise MessageTooLarge(
            f"reply is {len(answer)} bytes, limit is {limits.max_message_bytes} (max_message_bytes)"
        )
    return [answer]


# --------------------------------------------------------------------------- sender side


def encode_frame(
    *,
    frame: np.ndarray | None = None,
    message: Any = NO_MESSAGE,
    limits: Limits,
    encoded: Encoded | None = None,
) -> list[Any]:
    """The two parts of ``send_image(msg, frame)`` (raw, zero-copy) or, with ``encoded``
    (a JPEG), of ``send_jpg(msg, jpg)``, byte for byte.

    ``message`` is imagezmq's ``msg`` (:data:`DEFAULT_MSG` if omitted) and must be
    JSON-serializable. An ImageHub reads these with ``recv_image()`` or ``recv_jpg()``
    respectively: the hub's code decides which, so a sender must match it. Raises
    ``TypeError``/``ValueError`` for bad input and
    :class:`~netgear.errors.MessageTooLarge` over the limits.
    """
    if (frame is None) == (encoded is None):
        raise ValueError("imagezmq's wire format sends exactly one image per message: pass frame or encoded")
    msg = _f.dump_message("message", DEFAULT_MSG if message is NO_MESSAGE else message, limits)
    if encoded is not None:
        return [_f.dump_object([("msg", msg)]), _f.jpeg_payload(encoded, limits)]
    dtype, shape, payload = _f.frame_payload(frame, limits)
    return [_f.dump_object([("msg", msg), ("dtype", _f.dumps(dtype)), ("shape", _f.dumps(shape))]), payload]


def encode_close(*, port: int | str | None = None) -> None:
    """imagezmq has no goodbye: nothing to send (the hub notices the disconnection)."""


@_f.hostile
def decode_reply(parts: Sequence[Any], limits: Limits) -> Ack:
    """What an ImageHub answered: ``Ack(0, <the reply bytes>, True)`` (normally ``b"OK"``)."""
    views = _f.views(parts, (1,))
    if views[0].nbytes > limits.max_message_bytes:
        raise ProtocolError("oversize", f"reply is {views[0].nbytes} bytes")
    return Ack(0, views[0].tobytes(), True)
