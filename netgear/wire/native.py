"""The native wire format, "netgear v2" (reads v1 too).

A message is a list of parts (the transport has already stripped ZeroMQ envelopes)::

    [header]              HEARTBEAT, BYE, ACK, or a FRAME without a frame
    [header, payload]     a FRAME carrying a frame (raw C-order array bytes)

``header = MAGIC + bytes([VERSION]) + msgpack(map)`` with short keys, always written in
this order so that encoding is deterministic:

========  =======================================================================
``k``     kind (:class:`~netgear.wire.Kind`)
``q``     sequence number, ``0 .. 2**63-1`` (for ACK: the sequence acknowledged)
``t``     sender wall-clock time in ns, ``0 .. 2**63-1``
``id``    server id, ``str`` of 1..256 characters
``s``     session, ``0 .. 2**32-1`` (random per server process incarnation)
``tp``    topic, ``str`` of 1..256 characters without ``"\\x00"``
``f``     FRAME only, when a frame is sent: ``[codec, dtype.str, shape]`` (codec "raw")
``m``     FRAME only, when a message is sent: :func:`~netgear.wire.values.pack_value` bytes
``d``     FRAME only (v2), when present: ``True``, the sender needs no acknowledgement of
          this frame yet (the ACK of a later frame covers it; see :func:`encode_frame`)
``r``     ACK only, when a reply is given: :func:`~netgear.wire.values.pack_value` bytes
========  =======================================================================

An ACK of ``q`` acknowledges every earlier frame of the same session too.

HEARTBEAT and BYE carry exactly ``k q t id s tp``; ACK carries ``k q`` and maybe ``r``.

Decoding treats the parts as hostile: every problem raises
:class:`~netgear.errors.ProtocolError` whose ``reason`` is one of :data:`REASONS`. The
header is read field by field, never as a whole msgpack document, so the work done on
an arbitrary input is bounded by a few dozen msgpack calls plus, for a valid header,
unpacking the message itself (bounded by ``Limits.max_message_bytes``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, Final

import msgpack
import numpy as np

from netgear.errors import MessageTooLarge, ProtocolError
from netgear import codecs
from netgear.wire import DTYPES, NO_MESSAGE, Ack, Decoded, Encoded, Kind, Limits
from netgear.wire._foreign import frame_array, hostile, view
from netgear.wire.values import pack_value, unpack_value

__all__ = [
    "CODECS",
    "FrameEncoder",
    "MAGIC",
    "READABLE",
    "REASONS",
    "VERSION",
    "decode",
    "decode_ack",
    "encode_ack",
    "encode_control",
    "encode_frame",
]

MAGIC: Final = b"\xabNG"
VERSION: Final = 2
#: versions this codec reads: v1 is v2 without the ``d`` key
READABLE: Final = frozenset({1, 2})
# what netgear.wire.formats asks every format (defined here, not left to getattr defaults:
# they are read several times per frame on the hub's hot path)
NAME: Final = "native"
SEQUENCED: Final = True
HEARTBEATS: Final = True
REPLY_PATTERNS: Final = frozenset({1})
CODECS: Final = frozenset({"raw", "jpeg"})

REASONS: Final = (
    "bad_parts",  # wrong number of parts, or a part that is not a buffer
    "bad_magic",  # the header does not start with MAGIC
    "bad_version",  # missing or unknown version byte
    "oversize",  # header, frame payload or message bytes over the limits
    "bad_header",  # header not a well-formed map of the right keys and value types
    "bad_kind",  # unknown kind, or a kind not expected here (ACK vs data)
    "bad_codec",  # frame codec other than "raw"/"jpeg", or a JPEG colorspace we do not know
    "bad_jpeg",  # JPEG header unreadable or declaring another size than the wire header
    "bad_dtype",  # frame dtype not in DTYPES
    "bad_shape",  # frame shape not a list of ints >= 0, or too many dimensions
    "size_mismatch",  # frame payload length != product(shape) * itemsize
    "bad_payload",  # frame payload content invalid (bool bytes other than 0/1)
    "bad_message",  # message / reply bytes do not unpack
)

_PREFIX: Final = MAGIC + bytes([VERSION])
_HEADER_SLACK: Final = 4096
_MAX_TEXT: Final = 256
_MAX_TEXT_BYTES: Final = 4 * _MAX_TEXT
_MAX_U63: Final = (1 << 63) - 1
_MAX_U32: Final = (1 << 32) - 1
_COMMON_KEYS: Final = frozenset({"k", "q", "t", "id", "s", "tp"})
_ALLOWED_KEYS: Final = {
    Kind.FRAME: (_COMMON_KEYS, frozenset({"f", "m", "d"})),
    Kind.HEARTBEAT: (_COMMON_KEYS, frozenset()),
    Kind.BYE: (_COMMON_KEYS, frozenset()),
    Kind.ACK: (frozenset({"k", "q"}), frozenset({"r"})),
}
_ANY_KEY: Final = frozenset().union(*(req | opt for req, opt in _ALLOWED_KEYS.values()))
_REQUIRED: Final = {kind: req for kind, (req, _) in _ALLOWED_KEYS.items()}
_PERMITTED: Final = {kind: req | opt for kind, (req, opt) in _ALLOWED_KEYS.items()}
_KIND_VALUES: Final = {int(kind): kind for kind in Kind}
_ACK: Final = int(Kind.ACK)
_FRAME: Final = int(Kind.FRAME)
_DTYPE_OBJS: Final = {name: np.dtype(name) for name in DTYPES}
_MAP_BYTES: Final = frozenset({*range(0x80, 0x90), 0xDE, 0xDF})
_ARRAY_BYTES: Final = frozenset({*range(0x90, 0xA0), 0xDC, 0xDD})
_EXT_BYTES: Final = frozenset({0xC7, 0xC8, 0xC9, *range(0xD4, 0xD9)})
_NOT_SCALAR: Final = _MAP_BYTES | _ARRAY_BYTES | _EXT_BYTES
#: what msgpack gives for maps and arrays (extension types are refused by the fast path)
_CONTAINERS: Final = (dict, list)


# --------------------------------------------------------------------------- encoding


def encode_frame(
    *,
    seq: int,
    sent_ns: int,
    server_id: str,
    session: int,
    topic: str,
    frame: np.ndarray | None,
    message: Any = NO_MESSAGE,
    limits: Limits,
    encoded: Encoded | None = None,
    defer: bool = False,
) -> list[bytes | memoryview]:
    """Encode a FRAME as parts for ``send_multipart(copy=False)``.

    A C-contiguous ``frame`` is sent without copying (as a byte memoryview over the
    array, which must not be modified until sent); any other layout is copied once by
    ``np.ascontiguousarray``. ``frame=None`` sends no frame; ``message`` is omitted
    unless given (``None`` is a message). ``defer``: the sender has room for more frames
    in flight, so the hub may leave this frame's ACK to the ACK of a later one (or to a
    heartbeat's arrival): the server decides how often (once per half window).

    Raises ``TypeError`` for a non-array frame or a dtype outside :data:`DTYPES`,
    ``ValueError`` for more than ``limits.max_ndim`` dimensions, bool frames holding
    bytes other than 0/1 or header fields out of range, and
    :class:`~netgear.errors.MessageTooLarge` when the frame or packed message exceeds
    ``limits``; plus whatever :func:`~netgear.wire.values.pack_value` raises.
    """
    header = _common_header(Kind.FRAME, seq, sent_ns, server_id, session, topic)
    return _frame_parts(header, frame, message, limits, encoded, defer)


class FrameEncoder:
    """:func:`encode_frame` for one sender, whose ``server_id``, ``session`` and ``topic``
    are checked once, here, instead of with every frame (``TypeError``/``ValueError`` as
    :func:`encode_frame` raises them). It holds nothing that changes: any thread may
    call :meth:`encode`."""

    __slots__ = ("_id", "_session", "_topic", "_limits")

    def __init__(self, *, server_id: str, session: int, topic: str, limits: Limits) -> None:
        checked = _common_header(Kind.FRAME, 0, 0, server_id, session, topic)
        self._id: str = checked["id"]
        self._session: int = checked["s"]
        self._topic: str = checked["tp"]
        self._limits = limits

    def encode(
        self,
        seq: int,
        sent_ns: int,
        frame: np.ndarray | None,
        message: Any = NO_MESSAGE,
        encoded: Encoded | None = None,
        defer: bool = False,
    ) -> list[bytes | memoryview]:
        """The parts of one frame, as :func:`encode_frame` makes them."""
        if type(seq) is not int or not 0 <= seq <= _MAX_U63:
            seq = _as_int("seq", seq, _MAX_U63)
        if type(sent_ns) is not int or not 0 <= sent_ns <= _MAX_U63:
            sent_ns = _as_int("sent_ns", sent_ns, _MAX_U63)
        header = {"k": _FRAME, "q": seq, "t": sent_ns, "id": self._id, "s": self._session, "tp": self._topic}
        return _frame_parts(header, frame, message, self._limits, encoded, defer)


def _frame_parts(
    header: dict[str, Any],
    frame: np.ndarray | None,
    message: Any,
    limits: Limits,
    encoded: Encoded | None,
    defer: bool,
) -> list[bytes | memoryview]:
    """Complete a FRAME's ``header`` (its common fields filled in) and its parts."""
    payload: list[bytes | memoryview] = []
    if encoded is not None:
        if frame is not None:
            raise ValueError("pass either frame or encoded, not both")
        flags = int(encoded.fastdct) | int(encoded.fastupsample) << 1
        header["f"] = [encoded.codec, encoded.colorspace, list(encoded.shape), flags]
        payload.append(encoded.data)
    elif frame is not None:
        header["f"], view = _frame_payload(frame, limits)
        payload.append(view)
    if message is not NO_MESSAGE:
        header["m"] = _pack_limited("message", message, limits)
    if defer:
        header["d"] = True
    return [_pack_header(header), *payload]


def encode_control(
    kind: Kind, *, seq: int, sent_ns: int, server_id: str, session: int, topic: str
) -> list[bytes]:
    """Encode a HEARTBEAT or BYE (``ValueError`` for any other kind)."""
    if kind not in (Kind.HEARTBEAT, Kind.BYE):
        raise ValueError(f"encode_control encodes HEARTBEAT or BYE, not {kind!r}")
    return [_pack_header(_common_header(Kind(kind), seq, sent_ns, server_id, session, topic))]


def encode_ack(seq: int, reply: Any = NO_MESSAGE, *, limits: Limits) -> list[bytes]:
    """Encode the acknowledgement of ``seq``, with ``reply`` unless omitted.

    Raises :class:`~netgear.errors.MessageTooLarge` when the packed reply exceeds
    ``limits.max_message_bytes``, plus whatever ``pack_value`` raises.
    """
    header: dict[str, Any] = {"k": _ACK, "q": _as_int("seq", seq, _MAX_U63)}
    if reply is not NO_MESSAGE:
        header["r"] = _pack_limited("reply", reply, limits)
    return [_pack_header(header)]


def _common_header(
    kind: Kind, seq: int, sent_ns: int, server_id: str, session: int, topic: str
) -> dict[str, Any]:
    """The validated fields shared by FRAME, HEARTBEAT and BYE, in wire order."""
    return {
        "k": int(kind),
        "q": _as_int("seq", seq, _MAX_U63),
        "t": _as_int("sent_ns", sent_ns, _MAX_U63),
        "id": _as_text("server_id", server_id),
        "s": _as_int("session", session, _MAX_U32),
        "tp": _as_text("topic", topic, forbid_nul=True),
    }


def _as_int(name: str, value: Any, high: int) -> int:
    """``value`` as a plain int in ``0 .. high`` (bool refused)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__qualname__}") from None
    if not 0 <= number <= high:
        raise ValueError(f"{name} must be in 0..{high}, got {number}")
    return int(number)


def _as_text(name: str, value: Any, *, forbid_nul: bool = False) -> str:
    """``value`` as a plain, UTF-8-encodable str of 1..256 characters."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__qualname__}")
    text = str.__str__(value)
    if not 1 <= len(text) <= _MAX_TEXT:
        raise ValueError(f"{name} must have 1..{_MAX_TEXT} characters, got {len(text)}")
    if forbid_nul and "\x00" in text:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not encodable as UTF-8: {text!r}") from None
    return text


def _frame_payload(frame: Any, limits: Limits) -> tuple[list[Any], memoryview]:
    """The ``f`` header field and the zero-copy byte view of ``frame``."""
    if not isinstance(frame, np.ndarray):
        kind = type(frame)
        raise TypeError(
            f"frame must be a numpy.ndarray or None, got {kind.__module__}.{kind.__qualname__}"
        )
    if frame.dtype.str not in DTYPES:
        raise TypeError(
            f"cannot send a frame of dtype {frame.dtype}; "
            "supported: bool, (u)int8..64, float16/32/64"
        )
    if frame.ndim > limits.max_ndim:
        raise ValueError(f"frame has {frame.ndim} dimensions, at most {limits.max_ndim} allowed")
    if frame.nbytes > limits.max_frame_bytes:
        raise MessageTooLarge(
            f"frame is {frame.nbytes} bytes, limit is {limits.max_frame_bytes} (max_frame_bytes)"
        )
    array = frame.view(np.ndarray)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # the only copy
    flat = array.reshape(-1).view(np.uint8)
    if array.dtype.kind == "b" and flat.size and flat.max() > 1:
        raise ValueError("bool frame holds bytes other than 0 and 1")
    return ["raw", frame.dtype.str, list(frame.shape)], memoryview(flat)


def _pack_limited(name: str, value: Any, limits: Limits) -> bytes:
    """``pack_value(value)``, refusing results over ``limits.max_message_bytes``."""
    packed = pack_value(value)
    if len(packed) > limits.max_message_bytes:
        raise MessageTooLarge(
            f"{name} packs to {len(packed)} bytes, limit is "
            f"{limits.max_message_bytes} (max_message_bytes)"
        )
    return packed


def _pack_header(header: dict[str, Any]) -> bytes:
    """``MAGIC + version + msgpack(header)``."""
    return _PREFIX + msgpack.packb(header, use_bin_type=True, strict_types=True)


# --------------------------------------------------------------------------- decoding


@hostile
def decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    """Decode a FRAME, HEARTBEAT or BYE; raise ``ProtocolError`` for anything else.

    ``parts`` may hold bytes, bytearray, memoryview, ``zmq.Frame`` or any object with
    the buffer protocol. The frame is ``np.frombuffer`` over the payload part: no copy,
    and writable when the part's buffer is writable (as with frames received by pyzmq).
    A read-only part (``bytes``) is copied once into a ``bytearray`` so the returned
    frame is always writable. An ACK is refused with ``bad_kind``.
    """
    return _decode(parts, limits)


@hostile
def decode_ack(parts: Sequence[Any], limits: Limits) -> Ack:
    """Decode an ACK; raise ``ProtocolError`` for anything else (other kinds: ``bad_kind``)."""
    return _decode_ack(parts, limits)


def _decode(parts: Sequence[Any], limits: Limits) -> Decoded:
    """:func:`decode` without the final safety net."""
    views = _views(parts, max_parts=2)
    header = _read_header(views[0], limits)
    # Every check below is a plain expression that only passes what the precise
    # validators (_kind_of, _check_keys, _int_field, _text_field) pass; on any failure they
    # run, in the same order, and raise with the exact reason. (This runs for every frame.)
    k = header.get("k")
    kind = _KIND_VALUES.get(k) if type(k) is int else None
    if kind is None:
        kind = _kind_of(header)
    if kind is Kind.ACK:
        raise ProtocolError("bad_kind", "an ACK where a FRAME, HEARTBEAT or BYE was expected")
    keys = header.keys()
    if not (keys >= _REQUIRED[kind] and keys <= _PERMITTED[kind]):
        _check_keys(header, kind)
    meta = header.get("f")
    if len(views) != (1 if meta is None else 2):
        raise ProtocolError("bad_parts", f"{len(views)} parts, expected {1 if meta is None else 2}")
    frame = encoded = None
    if meta is not None:
        if meta[0] == "jpeg":
            encoded = _check_jpeg(meta, views[1], limits)
        else:
            frame = _decode_frame(meta, views[1], limits)
    has_message = "m" in header
    defer = header.get("d", False)
    if defer is not True and defer is not False:
        raise ProtocolError("bad_header", f"'d' is {defer!r:.40}, expected a bool")
    seq, sent_ns, server_id, session, topic = header["q"], header["t"], header["id"], header["s"], header["tp"]
    if not (
        type(seq) is int and 0 <= seq <= _MAX_U63
        and type(sent_ns) is int and 0 <= sent_ns <= _MAX_U63
        and type(server_id) is str and 1 <= len(server_id) <= _MAX_TEXT
        and type(session) is int and 0 <= session <= _MAX_U32
        and type(topic) is str and 1 <= len(topic) <= _MAX_TEXT and "\x00" not in topic
    ):
        seq = _int_field(header, "q", _MAX_U63)
        sent_ns = _int_field(header, "t", _MAX_U63)
        server_id = _text_field(header, "id")
        session = _int_field(header, "s", _MAX_U32)
        topic = _text_field(header, "tp", forbid_nul=True)
    return Decoded(
        kind,
        seq,
        sent_ns,
        server_id,
        session,
        topic,
        frame,
        _unpack_field(header, "m", limits) if has_message else None,
        has_message,
        views[0].nbytes + (views[1].nbytes if meta is not None else 0),
        encoded,
        defer,
    )


def _check_jpeg(meta: list[Any], payload: memoryview, limits: Limits) -> Encoded:
    """Validate a JPEG frame's metadata and JPEG header; nothing is decompressed here."""
    _, colorspace, shape = meta[:3]
    flags = meta[3] if len(meta) > 3 else 1
    channels = codecs.COLORSPACES.get(colorspace) if type(colorspace) is str else None
    if channels is None:
        raise ProtocolError("bad_codec", f"unknown JPEG colorspace {str(colorspace)[:32]!r}")
    if not all(type(dim) is int and dim > 0 for dim in shape):
        raise ProtocolError("bad_shape", f"shape {shape!r} is not a list of ints > 0")
    if len(shape) not in (2, 3) or (len(shape) == 2 and channels != 1) or (
        len(shape) == 3 and shape[2] != channels
    ):
        raise ProtocolError("bad_shape", f"shape {shape} does not fit colorspace {colorspace}")
    if math.prod(shape) > limits.max_frame_bytes:
        raise ProtocolError("oversize", f"JPEG frame of shape {shape} over max_frame_bytes")
    if payload.nbytes > limits.max_frame_bytes:
        raise ProtocolError("oversize", f"JPEG is {payload.nbytes} bytes")
    codecs.check_jpeg(payload, shape, limits.max_frame_bytes // channels)
    return Encoded("jpeg", payload, colorspace, tuple(shape), bool(flags & 1), bool(flags & 2))


def _decode_ack(parts: Sequence[Any], limits: Limits) -> Ack:
    """:func:`decode_ack` without the final safety net."""
    views = _views(parts, max_parts=1)
    header = _read_header(views[0], limits)
    kind = _kind_of(header)
    if kind is not Kind.ACK:
        raise ProtocolError("bad_kind", f"{kind.name} where an ACK was expected")
    _check_keys(header, kind)
    has_reply = "r" in header
    return Ack(
        seq=_int_field(header, "q", _MAX_U63),
        reply=_unpack_field(header, "r", limits) if has_reply else None,
        has_reply=has_reply,
    )


def _views(parts: Sequence[Any], *, max_parts: int) -> list[memoryview]:
    """Byte views of 1..``max_parts`` parts (``bad_parts`` otherwise)."""
    try:
        count = len(parts)
    except Exception as exc:
        raise ProtocolError("bad_parts", f"parts is not a sequence: {exc}") from exc
    if not 1 <= count <= max_parts:
        raise ProtocolError("bad_parts", f"{count} parts, expected 1..{max_parts}")
    try:
        return [view(part) for part in parts]
    except Exception as exc:
        raise ProtocolError("bad_parts", f"a part is not a buffer: {exc}") from exc


def _read_header(view: memoryview, limits: Limits) -> dict[str, Any]:
    """Check the prefix and size of the header part and read its map."""
    if view[: len(MAGIC)] != MAGIC:
        raise ProtocolError("bad_magic", f"header starts with {bytes(view[:4])!r}")
    if len(view) <= len(MAGIC) or view[len(MAGIC)] not in READABLE:
        version = view[len(MAGIC)] if len(view) > len(MAGIC) else None
        raise ProtocolError("bad_version", f"version {version!r}, expected one of {sorted(READABLE)}")
    if len(view) > limits.max_message_bytes + _HEADER_SLACK:
        raise ProtocolError(
            "oversize",
            f"header is {len(view)} bytes, limit {limits.max_message_bytes + _HEADER_SLACK}",
        )
    body = view[len(_PREFIX) :]
    header = _fast_map(body, limits)
    if header is not None:
        return header
    try:
        return _read_map(body, limits)
    except ProtocolError:
        raise
    except Exception as exc:  # anything msgpack raises on malformed input
        raise ProtocolError("bad_header", f"{type(exc).__name__}: {exc}") from exc


def _map_count(first: int, body: memoryview) -> int:
    """The number of entries a msgpack map header declares (-1 if it is not a map)."""
    if 0x80 <= first <= 0x8F:
        return first & 0x0F
    if first == 0xDE and len(body) >= 3:
        return int.from_bytes(body[1:3], "big")
    if first == 0xDF and len(body) >= 5:
        return int.from_bytes(body[1:5], "big")
    return -1


def _fast_map(body: memoryview, limits: Limits) -> dict[str, Any] | None:
    """The header map in one C call, when it is plainly well formed; else ``None``.

    Bounded by the same limits as :func:`_read_map` (lengths, no extension types, a
    bounded body), and accepted only if it has exactly the shape ``_read_map`` accepts:
    string keys from the known set, none repeated, scalar values except the frame
    metadata. Anything else returns ``None`` and the careful reader decides, so both
    paths accept the same headers and every rejection keeps its precise reason.
    """
    if not body:
        return None
    count = _map_count(body[0], body)
    if not 0 <= count <= len(_ANY_KEY):
        return None
    try:
        header = msgpack.unpackb(
            body,
            raw=False,
            max_str_len=_MAX_TEXT_BYTES,
            max_bin_len=len(body),
            max_array_len=max(4, limits.max_ndim),
            max_map_len=len(_ANY_KEY),
            max_ext_len=0,
        )
    except Exception:
        return None
    if type(header) is not dict or len(header) != count:  # a repeated key collapsed
        return None
    for key, value in header.items():
        if type(key) is not str or key not in _ANY_KEY:
            return None
        if key == "f":
            if type(value) is not list or len(value) not in (3, 4):
                return None
            shape = value[2]
            if type(value[0]) in _CONTAINERS or type(value[1]) in _CONTAINERS or type(shape) is not list:
                return None
            if len(shape) > limits.max_ndim or any(type(dim) in _CONTAINERS for dim in shape):
                return None
            if len(value) == 4 and (value[0] != "jpeg" or type(value[3]) is not int or not 0 <= value[3] <= 3):
                return None
        elif type(value) in _CONTAINERS:  # (scalars only, inlined: this runs for every frame)
            return None
    return header


def _read_map(body: memoryview, limits: Limits) -> dict[str, Any]:
    """Read the header map one field at a time, never unpacking a nested container
    except the frame metadata, whose structure is read explicitly."""
    unpacker = msgpack.Unpacker(
        raw=False,
        max_buffer_size=max(len(body), 1),
        max_str_len=_MAX_TEXT_BYTES,
        max_bin_len=len(body),
        max_array_len=0,
        max_map_len=0,
        max_ext_len=0,
    )
    unpacker.feed(body)
    if _peek(unpacker, body) not in _MAP_BYTES:
        raise ProtocolError("bad_header", "header is not a map")
    count = unpacker.read_map_header()
    if count > len(_ANY_KEY):
        raise ProtocolError("bad_header", f"header has {count} keys")
    header: dict[str, Any] = {}
    for _ in range(count):
        key = _read_scalar(unpacker, body, "bad_header")
        if type(key) is not str or key not in _ANY_KEY or key in header:
            raise ProtocolError("bad_header", f"unexpected or repeated key {key!r}")
        if key == "f":
            header[key] = _read_frame_meta(unpacker, body, limits)
        else:
            header[key] = _read_scalar(unpacker, body, "bad_header")
    if unpacker.tell() != len(body):
        raise ProtocolError("bad_header", f"{len(body) - unpacker.tell()} trailing bytes")
    return header


def _peek(unpacker: msgpack.Unpacker, body: memoryview) -> int:
    """The first byte of the next msgpack object (``bad_header`` at the end)."""
    position = unpacker.tell()
    if position >= len(body):
        raise ProtocolError("bad_header", "truncated header")
    return body[position]


def _read_scalar(unpacker: msgpack.Unpacker, body: memoryview, reason: str) -> Any:
    """Unpack the next object, refusing maps, arrays and extension types."""
    if _peek(unpacker, body) in _NOT_SCALAR:
        raise ProtocolError(reason, "unexpected container in header")
    return unpacker.unpack()


def _read_frame_meta(unpacker: msgpack.Unpacker, body: memoryview, limits: Limits) -> list[Any]:
    """Read ``[codec, dtype, [dim, ...]]`` with the array headers checked first."""
    length = unpacker.read_array_header() if _peek(unpacker, body) in _ARRAY_BYTES else 0
    if length not in (3, 4):
        raise ProtocolError("bad_header", "frame metadata is not [codec, dtype, shape(, flags)]")
    codec = _read_scalar(unpacker, body, "bad_header")
    dtype = _read_scalar(unpacker, body, "bad_header")
    if _peek(unpacker, body) not in _ARRAY_BYTES:
        raise ProtocolError("bad_shape", "frame shape is not a list")
    ndim = unpacker.read_array_header()
    if ndim > limits.max_ndim:
        raise ProtocolError("bad_shape", f"frame has {ndim} dimensions, limit {limits.max_ndim}")
    shape = [_read_scalar(unpacker, body, "bad_shape") for _ in range(ndim)]
    if length == 4:  # JPEG decoder flags
        flags = _read_scalar(unpacker, body, "bad_header")
        if codec != "jpeg" or type(flags) is not int or not 0 <= flags <= 3:
            raise ProtocolError("bad_header", "frame flags are only [0..3] for jpeg")
        return [codec, dtype, shape, flags]
    return [codec, dtype, shape]


def _kind_of(header: dict[str, Any]) -> Kind:
    """The header's kind (``bad_header`` if absent or not an int, ``bad_kind`` if unknown)."""
    value = header.get("k")
    if type(value) is not int:
        raise ProtocolError("bad_header", f"kind is {value!r}, not an int")
    kind = _KIND_VALUES.get(value)
    if kind is None:
        raise ProtocolError("bad_kind", f"unknown kind {value}")
    return kind


def _check_keys(header: dict[str, Any], kind: Kind) -> None:
    """Exactly the required keys of ``kind`` plus some of its optional ones."""
    keys = header.keys()
    missing = _REQUIRED[kind] - keys
    extra = keys - _PERMITTED[kind]
    if missing or extra:
        raise ProtocolError(
            "bad_header", f"{kind.name}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )


def _int_field(header: dict[str, Any], key: str, high: int) -> int:
    """An int field in ``0 .. high`` (bool refused)."""
    value = header[key]
    if type(value) is not int or not 0 <= value <= high:
        raise ProtocolError("bad_header", f"{key!r} is {value!r}, expected an int in 0..{high}")
    return value


def _text_field(header: dict[str, Any], key: str, *, forbid_nul: bool = False) -> str:
    """A str field of 1..256 characters (optionally without NUL)."""
    value = header[key]
    if type(value) is not str or not 1 <= len(value) <= _MAX_TEXT:
        raise ProtocolError("bad_header", f"{key!r} is not a str of 1..{_MAX_TEXT} characters")
    if forbid_nul and "\x00" in value:
        raise ProtocolError("bad_header", f"{key!r} contains NUL")
    return value


def _unpack_field(header: dict[str, Any], key: str, limits: Limits) -> Any:
    """Unpack the packed message / reply held in ``header[key]``."""
    data = header[key]
    if type(data) is not bytes:
        raise ProtocolError("bad_header", f"{key!r} is not bytes")
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(
            "oversize", f"{key!r} is {len(data)} bytes, limit {limits.max_message_bytes}"
        )
    return unpack_value(data, max_bytes=limits.max_message_bytes)


def _decode_frame(meta: list[Any], payload: memoryview, limits: Limits) -> np.ndarray:
    """Check the frame metadata against the payload and view it as an array."""
    codec, dtype_name, shape = meta[:3]
    if type(codec) is not str:
        raise ProtocolError("bad_header", f"codec is {codec!r}, not a str")
    if codec not in CODECS:
        raise ProtocolError("bad_codec", f"unknown codec {codec[:32]!r}")
    if type(dtype_name) is not str:
        raise ProtocolError("bad_header", f"dtype is {dtype_name!r}, not a str")
    dtype = _DTYPE_OBJS.get(dtype_name)
    if dtype is None:
        raise ProtocolError("bad_dtype", f"dtype {dtype_name[:32]!r} is not supported")
    if payload.nbytes > limits.max_frame_bytes:
        raise ProtocolError(
            "oversize", f"frame is {payload.nbytes} bytes, limit {limits.max_frame_bytes}"
        )
    # (each dimension bounded too: an empty frame must not declare 0 x 2**63 pixels)
    if not all(type(dim) is int and 0 <= dim <= limits.max_frame_bytes for dim in shape):
        raise ProtocolError("bad_shape", f"shape {shape!r:.80} is not a list of ints in 0..max_frame_bytes")
    if math.prod(shape) * dtype.itemsize != payload.nbytes:
        raise ProtocolError(
            "size_mismatch", f"{payload.nbytes} bytes for shape {shape} of {dtype_name}"
        )
    return frame_array(payload, dtype, shape)
