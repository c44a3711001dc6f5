"""Message value codec: msgpack plus three extension types. Never pickle.

What is sent becomes, on the receiving side:

========================================  =============================================
sent                                      received
========================================  =============================================
``None``, ``bool``, ``int``, ``float``     the same value and exact type (``bytes`` stay
``str``, ``bytes``                         ``bytes``, ``str`` stays ``str``; NaN stays NaN)
``list``                                  ``list``
``tuple`` (also named tuples)             ``tuple``
``dict``                                  ``dict``; keys must be ``str``, ``int``
                                          (``bool`` included), ``bytes`` or ``tuple``
``bytearray``, contiguous ``memoryview``  ``bytes`` (the raw bytes of the buffer)
numpy array of a :data:`~netgear.wire.    a *writable* ``ndarray`` of the same dtype
DTYPES` dtype, up to 8 dimensions         (byte order included) and shape
numpy scalar of such a dtype              the same numpy scalar type (``np.float32`` ...)
subclasses of int/float/str/bytes/        their base type (``IntEnum`` -> ``int``,
dict/list (``IntEnum``, ``OrderedDict``)  ``OrderedDict`` -> ``dict`` ...)
========================================  =============================================

Integers must fit msgpack: ``-2**63 <= i < 2**64``. Anything else (``set``, ``complex``,
``datetime``, object arrays, ...) raises ``TypeError`` naming the type when packing.
Containers nest at most :data:`MAX_NESTING` levels and tuples / arrays / numpy scalars
(the extension types) at most :data:`MAX_EXT_DEPTH` levels inside each other.

Extension types: 1 = ndarray ``[dtype.str, shape, C-order bytes]``,
2 = numpy scalar ``[dtype.str, bytes]``, 3 = tuple (the packed list of its items).

:func:`unpack_value` treats its input as hostile: every failure of any kind becomes
``ProtocolError("bad_message", detail)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import msgpack
import numpy as np

from netgear.errors import ProtocolError
from netgear.wire import DTYPES

__all__ = ["MAX_ARRAY_NDIM", "MAX_EXT_DEPTH", "MAX_NESTING", "pack_value", "unpack_value"]

EXT_NDARRAY: Final = 1
EXT_SCALAR: Final = 2
EXT_TUPLE: Final = 3

MAX_EXT_DEPTH: Final = 32
"""Most tuples / arrays / numpy scalars nested inside each other."""
MAX_NESTING: Final = 256
"""Most containers (list, dict, tuple) nested inside each other."""
MAX_ARRAY_NDIM: Final = 8
"""Most dimensions of an array inside a message."""

_SUPPORTED: Final = (
    "supported: None, bool, int, float, str, bytes, list, tuple, dict, numpy arrays and scalars"
)
_LEAVES: Final = frozenset({type(None), bool, int, float, str, bytes})
_KEY_TYPES: Final = (str, int, bytes, tuple)
_UNPACKED_KEY_TYPES: Final = frozenset({str, int, bool, bytes, tuple})
_CONTAINERS: Final = frozenset({list, dict, tuple})
_DTYPE_OBJS: Final = {name: np.dtype(name) for name in DTYPES}
_BASE_CONVERTERS: Final[tuple[tuple[type, Callable[[Any], Any]], ...]] = (
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes.__bytes__),
    (dict, dict),
    (list, list),
    (bytearray, bytes),
    (memoryview, bytes),
)


# --------------------------------------------------------------------------- packing


def pack_value(value: Any) -> bytes:
    """Serialize ``value`` (see the module docstring for what is supported).

    Raises ``TypeError`` naming the offending type (or dtype, or dict key type) and
    ``ValueError`` for values msgpack cannot hold (integers out of range, nesting too
    deep, arrays with more than :data:`MAX_ARRAY_NDIM` dimensions).
    """
    _check_structure(value, 0, 0)
    try:
        return _packb(value)
    except OverflowError as exc:
        raise ValueError(
            f"cannot send an integer outside -2**63 .. 2**64-1 in a message ({exc})"
        ) from exc
    except (TypeError, ValueError):
        raise
    except Exception as exc:  # msgpack-specific errors: keep the builtin contract
        raise ValueError(f"cannot pack message: {exc}") from exc


def _packb(value: Any) -> bytes:
    """msgpack with the fixed settings and the extension hook."""
    return msgpack.packb(value, use_bin_type=True, strict_types=True, default=_default)


def _unsupported(obj: object) -> TypeError:
    """The error for a value of an unsupported type."""
    kind = type(obj)
    return TypeError(
        f"cannot send a message containing {kind.__module__}.{kind.__qualname__}; {_SUPPORTED}"
    )


def _check_structure(value: Any, nesting: int, ext_depth: int) -> None:
    """Check nesting depths and dict key types; leave type conversion to :func:`_default`."""
    kind = type(value)
    if kind in _LEAVES:
        return
    if nesting >= MAX_NESTING:
        raise ValueError(f"cannot send a message nested deeper than {MAX_NESTING} levels")
    if isinstance(value, (np.ndarray, np.generic)):
        _check_ext_depth(ext_depth + 1)
    elif isinstance(value, memoryview) and not value.c_contiguous:
        raise ValueError("cannot send a non-contiguous memoryview; send bytes(view) instead")
    elif isinstance(value, dict):
        _check_dict(value, nesting, ext_depth)
    elif isinstance(value, (list, tuple)):
        if isinstance(value, tuple):
            ext_depth += 1
            _check_ext_depth(ext_depth)
        for item in value:
            if type(item) not in _LEAVES:
                _check_structure(item, nesting + 1, ext_depth)


def _check_dict(value: dict, nesting: int, ext_depth: int) -> None:
    """Check a dict's key types and recurse into its keys and values."""
    for key, item in value.items():
        if not isinstance(key, _KEY_TYPES):
            kind = type(key)
            raise TypeError(
                f"cannot send a dict key of type {kind.__module__}.{kind.__qualname__}; "
                "keys must be str, int, bytes or tuple"
            )
        if isinstance(key, tuple):
            _check_structure(key, nesting + 1, ext_depth)
        if type(item) not in _LEAVES:
            _check_structure(item, nesting + 1, ext_depth)


def _check_ext_depth(depth: int) -> None:
    """Refuse tuples / arrays / numpy scalars nested deeper than the receiver accepts."""
    if depth > MAX_EXT_DEPTH:
        raise ValueError(
            f"cannot send tuples, arrays or numpy scalars nested deeper than {MAX_EXT_DEPTH} levels"
        )


def _default(obj: Any) -> Any:
    """msgpack ``default`` hook: extension types and subclass-to-base conversion."""
    if isinstance(obj, np.ndarray):
        return _ext_array(obj)
    if isinstance(obj, np.generic) and obj.dtype.str in DTYPES:
        return msgpack.ExtType(EXT_SCALAR, _packb([obj.dtype.str, obj.tobytes()]))
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _packb(list(obj)))
    for base, convert in _BASE_CONVERTERS:
        if isinstance(obj, base):
            return convert(obj)
    if isinstance(obj, np.generic):
        raise TypeError(f"cannot send a numpy scalar of dtype {obj.dtype}; {_dtype_hint()}")
    raise _unsupported(obj)


def _dtype_hint() -> str:
    """The list of supported dtypes, for error messages."""
    return "supported dtypes: bool, (u)int8..64, float16/32/64"


def _ext_array(array: np.ndarray) -> msgpack.ExtType:
    """Extension 1: ``[dtype.str, shape, C-order bytes]``."""
    if array.dtype.str not in DTYPES:
        raise TypeError(f"cannot send a numpy array of dtype {array.dtype}; {_dtype_hint()}")
    if array.ndim > MAX_ARRAY_NDIM:
        raise ValueError(
            f"cannot send a numpy array with {array.ndim} dimensions in a message "
            f"(at most {MAX_ARRAY_NDIM})"
        )
    payload = [array.dtype.str, list(array.shape), array.tobytes(order="C")]
    return msgpack.ExtType(EXT_NDARRAY, _packb(payload))


# ------------------------------------------------------------------------- unpacking


def unpack_value(data: bytes | memoryview, *, max_bytes: int) -> Any:
    """Deserialize what :func:`pack_value` produced, treating ``data`` as hostile.

    Every failure (malformed msgpack, unknown extension, bad array metadata, nesting too
    deep, over ``max_bytes`` ...) raises ``ProtocolError("bad_message", detail)``.
    """
    try:
        value = _unpack(data, max_bytes, 0)
        if memoryview(data).nbytes > MAX_NESTING:  # each container takes a byte at least
            _check_nesting(value)
        return value
    except ProtocolError:
        raise
    except Exception as exc:  # anything at all from hostile input
        raise ProtocolError("bad_message", f"{type(exc).__name__}: {exc}") from exc


def _check_nesting(value: Any) -> None:
    """Refuse containers nested deeper than :data:`MAX_NESTING`, as :func:`pack_value` does
    (msgpack itself accepts about a thousand levels). Iterative: no recursion on hostile input."""
    stack = [(value, 1)] if type(value) in _CONTAINERS else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise _bad(f"containers nested deeper than {MAX_NESTING} levels")
        children = [*item.keys(), *item.values()] if type(item) is dict else item
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)


def _bad(detail: str) -> ProtocolError:
    """A ``bad_message`` error."""
    return ProtocolError("bad_message", detail)


def _unpack(data: Any, max_bytes: int, depth: int) -> Any:
    """One level of unpacking; ``depth`` counts enclosing extension values."""
    size = memoryview(data).nbytes
    if size > max_bytes:
        raise _bad(f"message is {size} bytes, limit {max_bytes}")
    value = msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=False,
        ext_hook=_ext_hook_for(max_bytes, depth + 1),
        list_hook=_check_list,
        object_hook=_check_map,
        max_str_len=max_bytes,
        max_bin_len=max_bytes,
        max_array_len=max_bytes,
        max_map_len=max_bytes,
        max_ext_len=max_bytes,
    )
    if type(value) is msgpack.Timestamp:
        raise _bad("msgpack timestamps are not supported")
    return value


def _check_list(items: list) -> list:
    """``list_hook``: refuse msgpack timestamps (which bypass ``ext_hook``)."""
    if msgpack.Timestamp in map(type, items):
        raise _bad("msgpack timestamps are not supported")
    return items


def _check_map(mapping: dict) -> dict:
    """``object_hook``: refuse timestamps and key types :func:`pack_value` never sends."""
    for key in mapping:
        if type(key) not in _UNPACKED_KEY_TYPES:
            raise _bad(f"dict key of type {type(key).__name__} is not supported")
    if msgpack.Timestamp in map(type, mapping.values()):
        raise _bad("msgpack timestamps are not supported")
    return mapping


def _ext_hook_for(max_bytes: int, depth: int) -> Callable[[int, bytes], Any]:
    """An ``ext_hook`` for extension values at nesting ``depth`` (1 = outermost)."""

    def hook(code: int, payload: bytes) -> Any:
        if depth > MAX_EXT_DEPTH:
            raise _bad(f"extension values nested deeper than {MAX_EXT_DEPTH} levels")
        if code == EXT_TUPLE:
            items = _unpack(payload, max_bytes, depth)
            if type(items) is not list:
                raise _bad("tuple extension does not hold a list")
            return tuple(items)
        if code == EXT_NDARRAY:
            return _rebuild_array(payload, max_bytes)
        if code == EXT_SCALAR:
            return _rebuild_scalar(payload, max_bytes)
        raise _bad(f"unknown extension type {code}")

    return hook


def _unpack_meta(payload: bytes, max_bytes: int, length: int) -> list:
    """Unpack an array / scalar extension's metadata list (no extensions inside)."""
    meta = msgpack.unpackb(
        payload,
        raw=False,
        ext_hook=_refuse_ext,
        max_str_len=16,
        max_bin_len=max_bytes,
        max_array_len=MAX_ARRAY_NDIM,
        max_map_len=0,
        max_ext_len=0,
    )
    if type(meta) is not list or len(meta) != length:
        raise _bad("malformed numpy extension")
    return meta


def _refuse_ext(code: int, payload: bytes) -> Any:
    """``ext_hook`` for places where no extension value may appear."""
    raise _bad(f"unexpected extension type {code}")


def _dtype_of(name: Any) -> np.dtype:
    """The whitelisted dtype called ``name``."""
    if type(name) is not str or name not in _DTYPE_OBJS:
        raise _bad(f"dtype {name!r} is not supported")
    return _DTYPE_OBJS[name]


def _rebuild_array(payload: bytes, max_bytes: int) -> np.ndarray:
    """Extension 1 -> a writable ndarray (one copy, into a fresh bytearray)."""
    name, shape, raw = _unpack_meta(payload, max_bytes, 3)
    dtype = _dtype_of(name)
    if type(shape) is not list or len(shape) > MAX_ARRAY_NDIM:
        raise _bad("array shape must be a list of at most 8 ints")
    if not all(type(dim) is int and 0 <= dim <= max_bytes for dim in shape):
        raise _bad(f"bad array shape {shape!r:.80}")
    if type(raw) is not bytes or math.prod(shape) * dtype.itemsize != len(raw):
        raise _bad(f"array data does not match shape {shape!r} and dtype {name}")
    array = np.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
    _check_bool_bytes(array)
    return array


def _rebuild_scalar(payload: bytes, max_bytes: int) -> np.generic:
    """Extension 2 -> the numpy scalar of the given dtype."""
    name, raw = _unpack_meta(payload, max_bytes, 2)
    dtype = _dtype_of(name)
    if type(raw) is not bytes or len(raw) != dtype.itemsize:
        raise _bad(f"scalar data does not match dtype {name}")
    array = np.frombuffer(raw, dtype=dtype)
    _check_bool_bytes(array)
    return array[0]


def _check_bool_bytes(array: np.ndarray) -> None:
    """Bool data must be made of 0 and 1 bytes only."""
    if array.dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
        raise _bad("bool data holds bytes other than 0 and 1")
