"""vidgear's NetGear wire format (verified against vidgear 0.3.0 to 0.3.6; 0.2.6 is the same).

Pure codec, no sockets. Read from ``vidgear/gears/netgear.py`` of the released wheels:
every 0.3.x release (and 0.2.6) puts the same bytes on the wire.

**Server to hub.** ``NetGear.send(frame, message)`` sends two parts, a JSON object
(pyzmq ``send_json``: ``json.dumps`` defaults, keys in this order) and the frame::

    {"port": P,                    # multi-server mode only: the server's own `port` value
                                   # (int or str, whatever the user passed)
     "terminate_flag": false,
     "compression": false | {"dct": bool, "ups": bool, "colorspace": "BGR"},
     "message": <any JSON value>,  # null when no message was given
     "pattern": "1",               # str(pattern): "0" PAIR, "1" REQ/REP, "2" PUB/SUB
     "dtype": "uint8",             # str(frame.dtype); "" with compression
     "shape": [480, 640, 3]}       # frame.shape; "" with compression
    <frame bytes: raw C-order array, or a JPEG (simplejpeg, subsampling 4:2:2)>

JPEG is on by default whenever simplejpeg is installed (``jpeg_compression=False`` turns
it off); ``colorspace`` is what was encoded from and what vidgear's hub decodes to
("GRAY" frames come back 2-D). ``NetGear.close()`` sends one part,
``{"terminate_flag": true, "port": P}`` (``{"terminate_flag": true}`` in single-pair mode).

**Envelopes.** PAIR and PUB/SUB: exactly the parts above; PUB/SUB has *no* topic frame
(vidgear's hub subscribes to everything). REQ/REP: vidgear's REQ socket sets
``REQ_CORRELATE``, so a ROUTER sees ``[routing-id, request-id (4 bytes), b"", json,
frame]`` and must answer ``[routing-id, request-id, b"", answer]``.

**Answers** (REQ/REP *and PAIR*: vidgear's server waits for one after every send, 4 s,
then reconnects, and gives up after 3 misses). vidgear's hub answers a frame with
``"Data received on device: <id> !"``, or in bidirectional mode with
``{"return_type": "NoneType"|type(data).__name__, "data": data}`` or, for an array,
``{"return_type": "ndarray", "compression": false|{...}, "array_dtype": "uint8",
"array_shape": [..], "data": null}`` + the array bytes (JPEG unless
``jpeg_compression=False``). A goodbye is answered (REQ/REP only) with
``"Termination signal successfully received at client!"``. A server in plain mode reads
any one part; in bidirectional mode it parses JSON. :func:`reply` therefore always
answers frames with the JSON form, which both kinds of server accept.

**What becomes what** (:func:`decode`). ``terminate_flag`` true → ``Kind.BYE``; otherwise
``Kind.FRAME`` with a raw ``frame`` or, with compression, ``encoded`` (JPEG, its shape read
from the JPEG header, checked, not decompressed; colorspaces outside
:data:`netgear.codecs.COLORSPACES`, such as vidgear's "XRGB" or "CMYK", are refused with
``bad_codec``). ``server_id`` is ``"vidgear:<port>"`` (``"vidgear"`` in single-pair mode),
``topic`` is ``str(port)`` (``"vidgear"``); ``seq``, ``sent_ns`` and ``session`` are 0: the
format has no sequence numbers, clock or session (see :data:`SEQUENCED`). ``message`` is
the JSON value as ``json.loads`` gives it (object → dict with str keys, array → list,
NaN/Infinity → float); ``null`` means *no message* (``has_message`` false), so a message of
``None`` cannot travel in this format. Unknown or missing keys, wrong types, a dtype outside
the whitelist (vidgear's ``str(dtype)`` names and ``dtype.str`` are both accepted), shapes,
sizes and limits are refused with the same reasons as the native format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from netgear import codecs
from netgear.errors import ProtocolError
from netgear.wire import NO_MESSAGE, Ack, Decoded, Encoded, Kind, Limits
from netgear.wire import _foreign as _f

__all__ = [
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

NAME: Final = "vidgear"
SEQUENCED: Final = False
"""Frames carry no sequence number: ``Decoded.seq`` is always 0."""
REPLY_PATTERNS: Final = frozenset({0, 1})
"""Patterns whose senders wait for an answer to every message (PAIR too, unlike native)."""
HEARTBEATS: Final = False
"""Senders are silent between frames: judge their liveness by their connection."""
PUBLISHER_BINDS: Final = False
"""Under PUB/SUB the server's PUB socket connects to the hub's SUB socket, as in native."""
REFUSAL: Final = (b'{"return_type": "NoneType", "data": null}',)
"""What to answer a message that was refused, so that the waiting server carries on."""

_FIRST_KEYS: Final = frozenset({"port", "terminate_flag", "compression"})
_FRAME_KEYS: Final = frozenset({"terminate_flag", "compression", "message", "pattern", "dtype", "shape"})
_BYE_KEYS: Final = frozenset({"terminate_flag"})
_PORT: Final = frozenset({"port"})
_COMPRESSION_KEYS: Final = frozenset({"dct", "ups", "colorspace"})
_REPLY_KEYS: Final = frozenset({"return_type", "data"})
_ARRAY_REPLY_KEYS: Final = frozenset({"return_type", "compression", "array_dtype", "array_shape", "data"})
_PATTERNS: Final = frozenset({"0", "1", "2"})
_MAX_PORT_TEXT: Final = 32
_NONE_REPLY: Final = b'{"return_type": "NoneType", "data": null}'
_BYE_REPLY_MULTI: Final = b"Termination signal successfully received at client!"
_BYE_REPLY_SINGLE: Final = b"Termination signal successfully received at Client's end!"
_DEFAULT_LIMITS: Final = Limits()


def detect(parts: Sequence[Any]) -> bool:
    """True if the first part is a JSON object whose first key is one vidgear writes first."""
    return _f.first_key(parts) in _FIRST_KEYS


# --------------------------------------------------------------------------- hub side


@_f.hostile
def decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    """Decode a frame or a goodbye; raise ``ProtocolError`` for anything else."""
    return _decode(parts, limits)


def _decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    views = _f.views(parts, (1, 2))
    meta = _f.load_object(views[0], limits)
    if type(meta.get("terminate_flag")) is not bool:
        raise ProtocolError("bad_header", "terminate_flag is missing or not a bool")
    topic = _topic(meta)
    server_id = NAME if topic == NAME else f"{NAME}:{topic}"
    nbytes = sum(view.nbytes for view in views)
    if meta["terminate_flag"]:
        _f.check_keys(meta, _BYE_KEYS, _PORT)
        if len(views) != 1:
            raise ProtocolError("bad_parts", f"{len(views)} parts in a goodbye, expected 1")
        return _decoded(Kind.BYE, server_id, topic, nbytes)
    _f.check_keys(meta, _FRAME_KEYS, _PORT)
    if len(views) != 2:
        raise ProtocolError("bad_parts", f"{len(views)} parts in a frame, expected 2")
    if type(meta["pattern"]) is not str or meta["pattern"] not in _PATTERNS:
        raise ProtocolError("bad_header", f"pattern is {meta['pattern']!r:.40}")
    frame = encoded = None
    compression = meta["compression"]
    if compression is False:
        frame = _f.raw_frame(meta["dtype"], meta["shape"], views[1], limits)
    else:
        colorspace = _jpeg_colorspace(compression)
        if meta["dtype"] != "" or meta["shape"] != "":
            raise ProtocolError("bad_header", "a compressed frame declares a dtype or shape")
        encoded = _f.jpeg_frame(views[1], colorspace, limits)
    message = meta["message"]
    _f.check_message_size(message, views[0], limits)
    has_message = message is not None
    return _decoded(
        Kind.FRAME, server_id, topic, nbytes, frame=frame, encoded=encoded, message=message, has_message=has_message
    )


def _decoded(kind: Kind, server_id: str, topic: str, nbytes: int, **payload: Any) -> Decoded:
    """A :class:`Decoded` without sequence number, clock or session (all 0)."""
    fields: dict[str, Any] = {"frame": None, "message": None, "has_message": False, "encoded": None}
    fields.update(payload)
    return Decoded(
        kind=kind, seq=0, sent_ns=0, server_id=server_id, session=0, topic=topic, nbytes=nbytes, **fields
    )


def _topic(meta: dict[str, Any]) -> str:
    """``str(port)`` of a multi-server message, ``NAME`` without a port."""
    if "port" not in meta:
        return NAME
    port = meta["port"]
    if type(port) is int and 0 <= port <= 65535:
        return str(port)
    if type(port) is str and 1 <= len(port) <= _MAX_PORT_TEXT and _f.text_id(port):
        return port
    raise ProtocolError("bad_header", f"port is {port!r:.40}, not a port number")


def _jpeg_colorspace(compression: Any) -> str:
    """The colorspace of a ``compression`` object (``bad_header`` if malformed)."""
    if type(compression) is not dict:
        raise ProtocolError("bad_header", "compression is neither false nor an object")
    _f.check_keys(compression, _COMPRESSION_KEYS, frozenset())
    if type(compression["dct"]) is not bool or type(compression["ups"]) is not bool:
        raise ProtocolError("bad_header", "compression dct/ups are not bools")
    colorspace = compression["colorspace"]
    if type(colorspace) is not str or colorspace not in codecs.COLORSPACES:
        raise ProtocolError("bad_codec", f"unknown JPEG colorspace {str(colorspace)[:32]!r}")
    return colorspace


def reply(decoded: Decoded, data: Any = NO_MESSAGE, *, limits: Limits = _DEFAULT_LIMITS) -> list[Any]:
    """The answer a vidgear server waits for (REQ/REP and PAIR), with ``data`` if given.

    A frame is answered ``{"return_type": ..., "data": ...}`` (``NoneType``/``null`` when
    there is no data), an array as ``"ndarray"`` plus its raw bytes (two parts); a goodbye
    with vidgear's termination text. Raises ``TypeError`` for data JSON cannot hold and
    :class:`~netgear.errors.MessageTooLarge` over the limits, in the caller's thread.
    """
    if decoded.kind is Kind.BYE:
        return [_BYE_REPLY_SINGLE if decoded.server_id == NAME else _BYE_REPLY_MULTI]
    if data is NO_MESSAGE or data is None:
        return [_NONE_REPLY]
    if isinstance(data, np.ndarray):
        dtype, shape, payload = _f.frame_payload(data, limits)
        meta = _f.dump_object(
            [
                ("return_type", b'"ndarray"'),
                ("compression", b"false"),
                ("array_dtype", _f.dumps(dtype)),
                ("array_shape", _f.dumps(shape)),
                ("data", b"null"),
            ]
        )
        return [meta, payload]
    body = _f.dump_message("reply", data, limits)
    return [_f.dump_object([("return_type", _f.dumps(type(data).__name__)), ("data", body)])]


# --------------------------------------------------------------------------- server side


def encode_frame(
    *,
    frame: np.ndarray | None = None,
    message: Any = NO_MESSAGE,
    limits: Limits,
    encoded: Encoded | None = None,
    port: int | str | None = None,
    pattern: int = 1,
    fastdct: bool = True,
    fastupsample: bool = False,
) -> list[Any]:
    """The two parts vidgear's ``NetGear.send(frame, message)`` sends, byte for byte.

    Exactly one of ``frame`` (raw, zero-copy) or ``encoded`` (a JPEG) is required: the
    format cannot carry a message alone. ``port`` is given in multi-server mode only (the
    hub tags frames with it); ``message`` must be JSON-serializable (tuples travel as
    lists, ``None`` is the same as no message); ``fastdct``/``fastupsample`` are only
    hints to the hub's JPEG decoder. Raises ``TypeError``/``ValueError`` for bad input and
    :class:`~netgear.errors.MessageTooLarge` over the limits.
    """
    if (frame is None) == (encoded is None):
        raise ValueError("vidgear's wire format sends exactly one frame per message: pass frame or encoded")
    if pattern not in (0, 1, 2) or type(pattern) is not int:
        raise ValueError(f"pattern must be 0, 1 or 2, got {pattern!r}")
    if encoded is not None:
        payload = _f.jpeg_payload(encoded, limits)
        if encoded.colorspace not in codecs.COLORSPACES:
            raise ValueError(f"unknown JPEG colorspace {encoded.colorspace!r}")
        compression = _f.dump_object(
            [
                ("dct", _f.dumps(bool(fastdct))),
                ("ups", _f.dumps(bool(fastupsample))),
                ("colorspace", _f.dumps(encoded.colorspace)),
            ]
        )
        dtype = shape = b'""'
    else:
        dtype_name, dims, payload = _f.frame_payload(frame, limits)
        compression, dtype, shape = b"false", _f.dumps(dtype_name), _f.dumps(dims)
    body = b"null" if message is NO_MESSAGE else _f.dump_message("message", message, limits)
    fields = _port_field(port) + [
        ("terminate_flag", b"false"),
        ("compression", compression),
        ("message", body),
        ("pattern", _f.dumps(str(pattern))),
        ("dtype", dtype),
        ("shape", shape),
    ]
    return [_f.dump_object(fields), payload]


def encode_close(*, port: int | str | None = None) -> list[bytes]:
    """The one part vidgear's ``NetGear.close()`` sends: the hub's end-of-stream signal."""
    return [_f.dump_object([("terminate_flag", b"true"), *_port_field(port)])]


def _port_field(port: int | str | None) -> list[tuple[str, bytes]]:
    """``[("port", json)]`` for multi-server mode, ``[]`` without a port."""
    if port is None:
        return []
    valid_int = type(port) is int and 0 <= port <= 65535
    valid_str = type(port) is str and 1 <= len(port) <= _MAX_PORT_TEXT and _f.text_id(port)
    if not (valid_int or valid_str):
        raise ValueError(f"port must be an int 0..65535 or a short str, got {port!r:.40}")
    return [("port", _f.dumps(port))]


@_f.hostile
def decode_reply(parts: Sequence[Any], limits: Limits) -> Ack:
    """What a vidgear hub answered: ``Ack(0, data, True)`` in bidirectional mode
    (arrays decoded, JPEG included), ``Ack(0, None, False)`` for its plain confirmations.
    ``seq`` is always 0 (see :data:`SEQUENCED`). Raises only ``ProtocolError``.
    """
    return _decode_reply(parts, limits)


def _decode_reply(parts: Sequence[Any], limits: Limits) -> Ack:
    views = _f.views(parts, (1, 2))
    if bytes(views[0][:1]) != b"{":  # "Data received on device: ... !" and the like
        if len(views) != 1:
            raise ProtocolError("bad_parts", f"{len(views)} parts in a confirmation, expected 1")
        if views[0].nbytes > limits.max_message_bytes + _f.HEADER_SLACK:
            raise ProtocolError("oversize", f"confirmation is {views[0].nbytes} bytes")
        return Ack(0, None, False)
    meta = _f.load_object(views[0], limits)
    if meta.get("return_type") != "ndarray":
        if type(meta.get("return_type")) is not str:
            raise ProtocolError("bad_header", "return_type is missing or not a str")
        _f.check_keys(meta, _REPLY_KEYS, _PORT)
        if len(views) != 1:
            raise ProtocolError("bad_parts", f"{len(views)} parts in a reply, expected 1")
        return Ack(0, meta["data"], True)
    _f.check_keys(meta, _ARRAY_REPLY_KEYS, _PORT)
    if len(views) != 2:
        raise ProtocolError("bad_parts", f"{len(views)} parts in an array reply, expected 2")
    compression = meta["compression"]
    if compression is False:
        return Ack(0, _f.raw_frame(meta["array_dtype"], meta["array_shape"], views[1], limits), True)
    colorspace = _jpeg_colorspace(compression)
    jpeg = _f.jpeg_frame(views[1], colorspace, limits)
    array = codecs.decode_jpeg(
        jpeg.data, colorspace, jpeg.shape, fastdct=compression["dct"], fastupsample=compression["ups"]
    )
    return Ack(0, array, True)
