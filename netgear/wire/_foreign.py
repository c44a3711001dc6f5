"""Helpers shared by the JSON-based foreign wire formats (``vidgear``, ``imagezmq``).

Pure: no sockets. Everything here treats its input as hostile and raises only
:class:`~netgear.errors.ProtocolError`, with the reason tokens of
:data:`netgear.wire.native.REASONS`.

Both peers write their metadata part with pyzmq's ``send_json``, which is exactly
``json.dumps(obj).encode("utf-8")`` with the standard library's defaults (separators
``", "`` and ``": "``, ``ensure_ascii=True``, NaN and Infinity allowed, keys in insertion
order). :func:`dumps` and :func:`dump_object` reproduce those bytes exactly.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from typing import Any, Callable, Final, TypeVar

import numpy as np

from netgear import codecs
from netgear.errors import MessageTooLarge, ProtocolError
from netgear.wire import DTYPES, Encoded, Limits
from netgear.wire.values import MAX_NESTING

_T = TypeVar("_T")

HEADER_SLACK: Final = 4096
"""A JSON metadata part may be this much larger than ``Limits.max_message_bytes``."""
MAX_DEPTH: Final = MAX_NESTING + 1
"""Most nested JSON containers in a metadata part (the part's own object included)."""
MAX_CONTAINERS: Final = 1 << 16
"""Most ``[`` and ``{`` characters (strings included) in a metadata part: bounds parse time."""
MAX_TEXT: Final = 256

# numpy names (str(dtype), what both peers send: "uint8", "float32", ">u2") and dtype.str
# ("|u1", "<f4") of every whitelisted dtype; nothing is ever handed to np.dtype() itself.
_DTYPES_BY_NAME: Final = {
    name: dtype
    for dtype in map(np.dtype, DTYPES)
    for name in (str(dtype), dtype.str)
}
_FIRST_KEY: Final = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"([A-Za-z_]{1,32})"[ \t\n\r]*:')
_DETECT_BYTES: Final = 64
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


# --------------------------------------------------------------------------- decoders


def hostile(func: Callable[..., _T]) -> Callable[..., _T]:
    """Decorate a decoder of network bytes: only ``ProtocolError`` may leave it; anything
    else (a bug, an exotic part object) becomes ``ProtocolError("bad_header")``."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> _T:
        try:
            return func(*args, **kwargs)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError("bad_header", f"undecodable: {type(exc).__name__}: {exc}") from exc

    return guarded


# --------------------------------------------------------------------------- parts


def view(part: Any) -> memoryview:
    """A flat byte memoryview of ``part`` (``zmq.Frame`` via its ``.buffer``)."""
    buffer = getattr(part, "buffer", None)
    out = buffer if isinstance(buffer, memoryview) else memoryview(part)
    if out.format == "B" and out.ndim == 1:
        return out
    if out.c_contiguous:
        try:
            return out.cast("B")
        except (TypeError, ValueError):
            pass
    return memoryview(out.tobytes())


def views(parts: Sequence[Any], counts: Sequence[int]) -> list[memoryview]:
    """Byte views of the parts, whose number must be one of ``counts`` (``bad_parts``)."""
    try:
        count = len(parts)
    except Exception as exc:
        raise ProtocolError("bad_parts", f"parts is not a sequence: {exc}") from exc
    if count not in counts:
        raise ProtocolError("bad_parts", f"{count} parts, expected {' or '.join(map(str, counts))}")
    try:
        return [view(part) for part in parts]
    except Exception as exc:
        raise ProtocolError("bad_parts", f"a part is not a buffer: {exc}") from exc


def first_key(parts: Any) -> str | None:
    """The first key of the JSON object starting the first part, or None. Never raises."""
    try:
        head = bytes(view(parts[0])[:_DETECT_BYTES])
    except Exception:
        return None
    match = _FIRST_KEY.match(head)
    return match.group(1).decode("ascii") if match else None


# --------------------------------------------------------------------------- JSON in


def load_object(data: memoryview, limits: Limits) -> dict[str, Any]:
    """Parse a JSON object strictly: size and bracket count first, then UTF-8, no
    duplicate keys, bounded depth.

    ``bad_magic`` if the part does not even start like a JSON object, ``oversize`` over
    ``max_message_bytes + HEADER_SLACK``, ``bad_header`` for anything else wrong.
    """
    if not bytes(data[:_DETECT_BYTES]).lstrip(b" \t\n\r").startswith(b"{"):
        raise ProtocolError("bad_magic", f"not a JSON object: starts with {bytes(data[:4])!r}")
    limit = limits.max_message_bytes + HEADER_SLACK
    if data.nbytes > limit:
        raise ProtocolError("oversize", f"JSON part is {data.nbytes} bytes, limit {limit}")
    raw = bytes(data)
    containers = raw.count(b"[") + raw.count(b"{")
    if containers > MAX_CONTAINERS:  # parsing ~10**6 tiny containers would take ~0.1-0.3 s
        raise ProtocolError("bad_header", f"JSON with {containers} brackets, limit {MAX_CONTAINERS}")
    try:  # nesting beyond the interpreter's recursion limit raises RecursionError here
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError, TypeError) as exc:
        raise ProtocolError("bad_header", f"invalid JSON: {type(exc).__name__}: {exc}") from None
    if type(value) is not dict:
        raise ProtocolError("bad_header", "JSON part is not an object")
    if containers > MAX_DEPTH and _too_deep(raw, MAX_DEPTH):
        raise ProtocolError("bad_header", f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def check_message_size(value: Any, header: memoryview, limits: Limits) -> None:
    """``oversize`` if ``value`` (a message inside ``header``) is over ``max_message_bytes``
    as JSON, the limit the encoders apply. Only re-measured when the header is that big."""
    if header.nbytes > limits.max_message_bytes and len(dumps(value)) > limits.max_message_bytes:
        raise ProtocolError("oversize", f"message is over {limits.max_message_bytes} bytes as JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: refuse repeated keys (``json`` would keep the last one)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("repeated key in a JSON object")
    return out


def _too_deep(raw: bytes, limit: int) -> bool:
    """True if the containers of a valid JSON text nest deeper than ``limit``, found
    without walking the parsed value: strings are cut out, then the running count of
    brackets is taken (vectorized; a few ms for 1 MiB of small containers)."""
    bare = np.frombuffer(_STRING.sub(b"", raw), np.uint8)
    step = (bare == 0x5B).astype(np.int32)  # [
    step += bare == 0x7B  # {
    step -= bare == 0x5D  # ]
    step -= bare == 0x7D  # }
    return bool(step.size) and int(np.cumsum(step).max()) > limit


def check_keys(meta: dict[str, Any], required: frozenset[str], optional: frozenset[str]) -> None:
    """Exactly the ``required`` keys plus some ``optional`` ones (``bad_header``)."""
    keys = meta.keys()
    missing, extra = required - keys, keys - required - optional
    if missing or extra:
        raise ProtocolError(
            "bad_header", f"missing keys {sorted(missing)}, unexpected keys {sorted(extra)[:8]}"
        )


def text_id(value: Any) -> str | None:
    """``value`` if it can be a server id or topic (str, 1..256 chars, no NUL, UTF-8)."""
    if type(value) is not str or not 1 <= len(value) <= MAX_TEXT or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


# --------------------------------------------------------------------------- frames in


def raw_frame(dtype_name: Any, shape: Any, payload: memoryview, limits: Limits) -> np.ndarray:
    """Check ``dtype``/``shape`` against the payload and view it as a writable array."""
    if type(dtype_name) is not str:
        raise ProtocolError("bad_header", f"dtype is {dtype_name!r:.40}, not a str")
    dtype = _DTYPES_BY_NAME.get(dtype_name)
    if dtype is None:
        raise ProtocolError("bad_dtype", f"dtype {dtype_name[:32]!r} is not supported")
    if type(shape) is not list or len(shape) > limits.max_ndim:
        raise ProtocolError("bad_shape", f"shape is not a list of at most {limits.max_ndim} ints")
    if payload.nbytes > limits.max_frame_bytes:
        raise ProtocolError("oversize", f"frame is {payload.nbytes} bytes, limit {limits.max_frame_bytes}")
    # (each dimension bounded too: an empty frame must not declare 0 x 2**63 pixels)
    if not all(type(dim) is int and 0 <= dim <= limits.max_frame_bytes for dim in shape):
        raise ProtocolError("bad_shape", f"shape {shape!r:.80} is not a list of ints in 0..max_frame_bytes")
    if math.prod(shape) * dtype.itemsize != payload.nbytes:
        raise ProtocolError("size_mismatch", f"{payload.nbytes} bytes for shape {shape} of {dtype_name}")
    return frame_array(payload, dtype, shape)


def frame_array(payload: memoryview, dtype: np.dtype, shape: list[int]) -> np.ndarray:
    """A writable array over ``payload``, copied only when the buffer is read-only."""
    if payload.readonly:
        payload = memoryview(bytearray(payload))  # the single conditional copy
    try:
        array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    except Exception as exc:  # e.g. a zero-size frame with absurd dimensions
        raise ProtocolError("bad_shape", f"shape {shape}: {exc}") from None
    if dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
        raise ProtocolError("bad_payload", "bool frame holds bytes other than 0 and 1")
    return array


def jpeg_frame(payload: memoryview, colorspace: str | None, limits: Limits) -> Encoded:
    """A JPEG frame whose shape is read from its own header (nothing is decompressed).

    ``colorspace`` is what the frame will be decoded to (``"GRAY"`` gives a 2-D shape);
    ``None`` takes it from the JPEG: ``"GRAY"`` for a one-component JPEG, else ``"BGR"``
    (what ``cv2.imdecode`` gives). ``bad_codec`` for an unknown colorspace, ``oversize``
    over the limits, ``bad_jpeg`` for an unreadable header.
    """
    import simplejpeg

    if colorspace is not None and (type(colorspace) is not str or colorspace not in codecs.COLORSPACES):
        raise ProtocolError("bad_codec", f"unknown JPEG colorspace {str(colorspace)[:32]!r}")
    if payload.nbytes > limits.max_frame_bytes:
        raise ProtocolError("oversize", f"JPEG is {payload.nbytes} bytes, limit {limits.max_frame_bytes}")
    try:
        height, width, components, _ = simplejpeg.decode_jpeg_header(payload)
    except Exception as exc:
        raise ProtocolError("bad_jpeg", f"unreadable JPEG header: {exc}") from None
    if colorspace is None:
        colorspace = "GRAY" if components == "Gray" else "BGR"
    channels = codecs.COLORSPACES[colorspace]
    shape = (height, width) if colorspace == "GRAY" else (height, width, channels)
    codecs.check_jpeg(payload, shape, limits.max_frame_bytes // channels)
    return Encoded("jpeg", payload, colorspace, shape)


# --------------------------------------------------------------------------- out


def dumps(value: Any) -> bytes:
    """What pyzmq's ``send_json(value)`` puts on the wire.

    Raises ``TypeError`` for values JSON cannot hold (naming the type) and ``ValueError``
    for circular references.
    """
    return json.dumps(value).encode("utf-8")


def dump_object(fields: Sequence[tuple[str, bytes]]) -> bytes:
    """``dumps(dict)`` from already dumped values, keys in the given order (no re-encoding)."""
    body = b", ".join(dumps(key) + b": " + value for key, value in fields)
    return b"{" + body + b"}"


def dump_message(name: str, value: Any, limits: Limits) -> bytes:
    """``dumps(value)`` for a message or reply, refusing more than ``max_message_bytes``."""
    if isinstance(value, np.ndarray):
        raise TypeError(f"a numpy array cannot travel as a JSON {name}; send it as the frame")
    try:
        data = dumps(value)
    except TypeError as exc:
        raise TypeError(f"cannot send {name} over a JSON wire format: {exc}") from None
    if len(data) > limits.max_message_bytes:
        raise MessageTooLarge(
            f"{name} is {len(data)} bytes as JSON, limit is {limits.max_message_bytes} (max_message_bytes)"
        )
    return data


def frame_payload(frame: Any, limits: Limits) -> tuple[str, list[int], memoryview]:
    """``(str(dtype), shape, zero-copy byte view)`` of a frame both peers can rebuild.

    ``TypeError`` for a non-array or a dtype outside :data:`~netgear.wire.DTYPES`,
    ``ValueError`` for too many dimensions, ``MessageTooLarge`` over ``max_frame_bytes``.
    """
    if not isinstance(frame, np.ndarray):
        kind = type(frame)
        raise TypeError(f"frame must be a numpy.ndarray, got {kind.__module__}.{kind.__qualname__}")
    if frame.dtype.str not in DTYPES:
        raise TypeError(
            f"cannot send a frame of dtype {frame.dtype}; supported: bool, (u)int8..64, float16/32/64"
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
    return str(frame.dtype), list(frame.shape), memoryview(array.reshape(-1).view(np.uint8))


def jpeg_payload(encoded: Any, limits: Limits) -> memoryview:
    """The bytes of an already compressed frame (``ValueError`` unless it is a JPEG)."""
    if not isinstance(encoded, Encoded) or encoded.codec != "jpeg":
        raise ValueError(f"encoded must be a JPEG netgear.wire.Encoded, got {encoded!r:.80}")
    data = view(encoded.data)
    if data.nbytes > limits.max_frame_bytes:
        raise MessageTooLarge(
            f"JPEG is {data.nbytes} bytes, limit is {limits.max_frame_bytes} (max_frame_bytes)"
        )
    return data
