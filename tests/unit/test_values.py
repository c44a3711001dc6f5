"""Unit tests of netgear.wire.values: the message value codec (pure, no sockets)."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import math
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netgear.errors import ProtocolError
from netgear.wire import DTYPES, NO_MESSAGE
from netgear.wire.values import (
    MAX_EXT_DEPTH,
    MAX_NESTING,
    pack_value,
    unpack_value,
)

pytestmark = pytest.mark.timeout(60)

MAX = 1 << 20


def roundtrip(value: Any) -> Any:
    """pack then unpack with the default message limit."""
    return unpack_value(pack_value(value), max_bytes=MAX)


def same(a: Any, b: Any) -> bool:
    """Equal with exactly the same types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype.str == b.dtype.str and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            any(same(k, k2) for k2 in b) and same(v, b[k]) for k, v in a.items()
        )
    return a == b


def ext(code: int, payload: Any) -> bytes:
    """A hand-made extension value, bypassing pack_value's checks."""
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload, use_bin_type=True)))


def nested_tuple_bytes(depth: int) -> bytes:
    """``depth`` >= 1 tuples nested inside each other, built without pack_value."""
    data = msgpack.packb(msgpack.ExtType(3, b"\x90"))
    for _ in range(depth - 1):
        data = msgpack.packb(msgpack.ExtType(3, b"\x91" + data))
    return data


# ----------------------------------------------------------------- exact round trips

PLAIN = [
    None,
    False,
    True,
    0,
    -1,
    1,
    127,
    -32,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    -0.0,
    float("inf"),
    float("-inf"),
    "",
    "ü",
    "日本語 \x00 nul",
    b"",
    b"\x00\xff",
    [],
    {},
    (),
    [1, "a", b"b", None],
    (1, [2, (3, (4,))]),
    {"a": 1, 2: "b", b"c": [3], (4, 5): {"nested": (6,)}},
    {True: "bool key", 7: "int key"},
    [[[[]]]],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_round_trip_exactly(value: Any) -> None:
    assert same(roundtrip(value), value)


def test_nan_round_trips() -> None:
    assert math.isnan(roundtrip(float("nan")))


def test_tuple_and_list_are_distinguished() -> None:
    out = roundtrip({"t": (1, 2), "l": [1, 2], "tl": ([1], (2,))})
    assert type(out["t"]) is tuple and type(out["l"]) is list
    assert type(out["tl"][0]) is list and type(out["tl"][1]) is tuple


def test_bytes_stay_bytes_and_str_stays_str() -> None:
    out = roundtrip([b"abc", "abc"])
    assert type(out[0]) is bytes and type(out[1]) is str


@pytest.mark.parametrize("value", [bytearray(b"\x01\x02"), memoryview(b"\x01\x02")])
def test_bytearray_and_memoryview_become_bytes(value: Any) -> None:
    assert same(roundtrip(value), b"\x01\x02")


def test_non_contiguous_memoryview_is_refused_clearly() -> None:
    view = memoryview(bytes(range(10)))[::2]
    with pytest.raises(ValueError, match="non-contiguous memoryview"):
        pack_value([view])


class Color(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):
    FAST = "fast"


class MyFloat(float):
    pass


class MyBytes(bytes):
    pass


class MyList(list):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Color.RED, 1),
        (Mode.FAST, "fast"),
        (MyFloat(2.5), 2.5),
        (MyBytes(b"x"), b"x"),
        (MyList([1, Color.RED]), [1, 1]),
        (collections.OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
        ({Color.RED: Mode.FAST}, {1: "fast"}),
        (collections.namedtuple("P", "x y")(1, 2), (1, 2)),
        (np.str_("numpy str"), "numpy str"),
        (np.bytes_(b"numpy bytes"), b"numpy bytes"),
    ],
    ids=repr,
)
def test_subclasses_become_their_base_type(value: Any, expected: Any) -> None:
    assert same(roundtrip(value), expected)


def test_dict_order_is_preserved() -> None:
    assert list(roundtrip({"z": 1, "a": 2, "m": 3})) == ["z", "a", "m"]


# ----------------------------------------------------------------------------- numpy

SHAPES = [(), (0,), (1, 1), (5,), (2, 3), (2, 0, 3), (1, 2, 3, 4), (2, 1, 1, 1, 1, 1, 1, 2)]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_arrays_round_trip_with_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    count = math.prod(shape)
    if dtype == "|b1":
        array = rng.integers(0, 2, count).astype(bool).reshape(shape)
    else:
        array = np.frombuffer(rng.bytes(count * np.dtype(dtype).itemsize), dtype).reshape(shape)
    out = roundtrip({"a": array})["a"]
    assert same(out, array)
    assert out.flags.writeable
    assert out.flags.c_contiguous


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.int32).reshape(4, 6)[::2, 1::2],
        np.arange(24, dtype=np.float64).reshape(4, 6).T,
        np.asfortranarray(np.arange(24, dtype=">u2").reshape(4, 6)),
        np.arange(10, dtype=np.int8)[::-1],
    ],
)
def test_non_contiguous_arrays_round_trip(array: np.ndarray) -> None:
    out = roundtrip(array)
    assert np.array_equal(out, array) and out.dtype.str == array.dtype.str
    out[...] = 0  # writable


def test_unpacked_arrays_do_not_share_memory_with_the_input() -> None:
    data = bytearray(pack_value(np.arange(4, dtype=np.uint8)))
    out = unpack_value(data, max_bytes=MAX)
    out[0] = 99
    assert unpack_value(data, max_bytes=MAX)[0] == 0


@pytest.mark.parametrize(
    "scalar",
    [
        np.float32(1.5),
        np.uint16(7),
        np.bool_(True),
        np.bool_(False),
        np.float64(2.25),  # a subclass of float: must stay np.float64
        np.int64(-5),
        np.float16(0.5),
        np.uint64(2**64 - 1),
        np.int8(-128),
    ],
    ids=repr,
)
def test_numpy_scalars_keep_their_type(scalar: np.generic) -> None:
    out = roundtrip(scalar)
    assert type(out) is type(scalar)
    assert same(out, scalar)


# ---------------------------------------------------------------- packing refusals


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (object(), "builtins.object"),
        ({1, 2}, "builtins.set"),
        (frozenset({1}), "builtins.frozenset"),
        (lambda: None, "builtins.function"),
        (datetime.datetime(2020, 1, 1), "datetime.datetime"),
        (1 + 2j, "builtins.complex"),
        (decimal.Decimal("1.5"), "decimal.Decimal"),
        (NO_MESSAGE, "NoMessage"),
        ([1, {"deep": [object()]}], "builtins.object"),
        ((1, {2}), "builtins.set"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_types_raise_type_error_naming_the_type(value: Any, name: str) -> None:
    with pytest.raises(TypeError, match="cannot send a message containing") as info:
        pack_value(value)
    assert name in str(info.value)
    assert "supported:" in str(info.value)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (np.array([object()], dtype=object), "object"),
        (np.array([1 + 1j]), "complex128"),
        (np.array(["a"]), "<U1"),
        (np.array([1], dtype="datetime64[s]"), "datetime64[s]"),
        (np.zeros(2, dtype="V4"), "|V4"),
        (np.complex64(1), "complex64"),
        (np.datetime64(1, "s"), "datetime64[s]"),
    ],
    ids=lambda v: str(getattr(v, "dtype", v)),
)
def test_unsupported_dtypes_raise_type_error_naming_the_dtype(value: Any, dtype: str) -> None:
    with pytest.raises(TypeError, match="dtype") as info:
        pack_value(value)
    assert dtype in str(info.value)


@pytest.mark.parametrize("key", [1.5, None, frozenset(), np.int64(1)], ids=repr)
def test_unsupported_dict_keys_raise_type_error(key: Any) -> None:
    with pytest.raises(TypeError, match="dict key"):
        pack_value({key: 1})


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_out_of_msgpack_range_raise_value_error(number: int) -> None:
    with pytest.raises(ValueError, match="integer"):
        pack_value({"n": [number]})


def test_too_deep_nesting_raises_value_error() -> None:
    value: Any = []
    for _ in range(MAX_NESTING + 1):
        value = [value]
    with pytest.raises(ValueError, match="nested deeper"):
        pack_value(value)


def test_received_messages_nested_deeper_than_the_limit_are_refused() -> None:
    """msgpack itself accepts ~1000 levels; the receiving side enforces MAX_NESTING too."""
    ok = msgpack.packb(_nested(MAX_NESTING - 1))
    assert unpack_value(ok, max_bytes=1 << 20) == _nested(MAX_NESTING - 1)
    for depth in (MAX_NESTING + 1, 1000):
        with pytest.raises(ProtocolError) as err:
            unpack_value(msgpack.packb(_nested(depth)), max_bytes=1 << 20)
        assert err.value.reason == "bad_message"


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def test_self_referencing_list_raises_value_error() -> None:
    value: list = []
    value.append(value)
    with pytest.raises(ValueError, match="nested deeper"):
        pack_value(value)


def chain(levels: int, inner: Any) -> Any:
    """``inner`` wrapped in ``levels`` one-element tuples."""
    for _ in range(levels):
        inner = (inner,)
    return inner


def test_ext_depth_limit_is_shared_by_both_sides() -> None:
    assert same(roundtrip(chain(MAX_EXT_DEPTH, 1)), chain(MAX_EXT_DEPTH, 1))
    assert same(
        roundtrip(chain(MAX_EXT_DEPTH - 1, np.ones(2))), chain(MAX_EXT_DEPTH - 1, np.ones(2))
    )
    assert same(
        roundtrip(chain(MAX_EXT_DEPTH - 1, np.int8(3))), chain(MAX_EXT_DEPTH - 1, np.int8(3))
    )
    for too_deep in (chain(MAX_EXT_DEPTH + 1, 1), chain(MAX_EXT_DEPTH, np.ones(2))):
        with pytest.raises(ValueError, match="nested deeper"):
            pack_value(too_deep)
    assert len(unpack_value(nested_tuple_bytes(MAX_EXT_DEPTH), max_bytes=MAX)) == 1
    with pytest.raises(ProtocolError):
        unpack_value(nested_tuple_bytes(MAX_EXT_DEPTH + 1), max_bytes=MAX)


def test_tuples_as_dict_keys_count_towards_the_ext_depth() -> None:
    assert same(roundtrip({chain(MAX_EXT_DEPTH, 1): 1}), {chain(MAX_EXT_DEPTH, 1): 1})
    with pytest.raises(ValueError, match="nested deeper"):
        pack_value({chain(MAX_EXT_DEPTH + 1, 1): 1})


def test_array_with_too_many_dimensions_raises_value_error() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        pack_value(np.zeros((1,) * 9))


# ------------------------------------------------------------- unpacking refusals

TIMESTAMP = msgpack.packb(msgpack.Timestamp(1, 2))

BAD_MESSAGES = {
    "never-used byte": b"\xc1",
    "empty": b"",
    "truncated": pack_value([1, 2, 3])[:-1],
    "trailing": pack_value(1) + b"\x00",
    "invalid utf-8": b"\xa2\xff\xfe",
    "unknown ext": msgpack.packb(msgpack.ExtType(7, b"x")),
    "tuple of non-list": ext(3, {"a": 1}),
    "tuple of garbage": msgpack.packb(msgpack.ExtType(3, b"\xc1")),
    "array bad dtype": ext(1, ["<c16", [1], b"\x00" * 16]),
    "array object dtype": ext(1, ["|O", [1], b"\x00" * 8]),
    "array dtype not str": ext(1, [1, [1], b"\x00"]),
    "array negative dim": ext(1, ["|u1", [-1], b""]),
    "array bool dim": ext(1, ["|u1", [True], b"\x00"]),
    "array float dim": ext(1, ["|u1", [1.0], b"\x00"]),
    "array shape not list": ext(1, ["|u1", 1, b"\x00"]),
    "array 9 dims": ext(1, ["|u1", [1] * 9, b"\x00"]),
    "array size mismatch": ext(1, ["<u2", [2], b"\x00" * 3]),
    "array data is str": ext(1, ["|u1", [1], "a"]),
    "array meta too short": ext(1, ["|u1", [1]]),
    "array absurd zero-size dims": ext(1, ["|u1", [2**62, 2**62, 0], b""]),
    "array meta holds an ext": msgpack.packb(
        msgpack.ExtType(1, msgpack.packb(["|u1", [1], msgpack.ExtType(3, b"\x90")]))
    ),
    "bool array with 2": ext(1, ["|b1", [2], b"\x00\x02"]),
    "scalar wrong size": ext(2, ["<f4", b"\x00" * 3]),
    "scalar bool 2": ext(2, ["|b1", b"\x02"]),
    "scalar bad dtype": ext(2, ["<c8", b"\x00" * 8]),
    "timestamp": TIMESTAMP,
    "timestamp in list": b"\x91" + TIMESTAMP,
    "timestamp in dict": b"\x81\xa1a" + TIMESTAMP,
    "timestamp in tuple": msgpack.packb(msgpack.ExtType(3, b"\x91" + TIMESTAMP)),
    "float key": msgpack.packb({1.5: 1}),
    "nil key": msgpack.packb({None: 1}),
    "list key (unhashable)": b"\x81\x91\x01\x01",
    "tuple key holding a list": b"\x81" + msgpack.packb(msgpack.ExtType(3, b"\x91\x90")) + b"\x01",
    "deep tuples": nested_tuple_bytes(100),
    "deep lists": b"\x91" * 5000 + b"\x90",
    "huge declared array": b"\xdd\xff\xff\xff\xff",
    "huge declared str": b"\xdb\xff\xff\xff\xff",
}


@pytest.mark.parametrize("data", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_messages_raise_bad_message(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        unpack_value(data, max_bytes=MAX)
    assert info.value.reason == "bad_message"


def test_deep_tuples_helper_builds_what_it_says() -> None:
    assert same(unpack_value(nested_tuple_bytes(3), max_bytes=MAX), (((),),))


def test_message_over_max_bytes_is_refused() -> None:
    data = pack_value(b"x" * 100)
    assert unpack_value(data, max_bytes=len(data)) == b"x" * 100
    with pytest.raises(ProtocolError) as info:
        unpack_value(data, max_bytes=len(data) - 1)
    assert info.value.reason == "bad_message"


def test_memoryview_input_is_accepted() -> None:
    assert unpack_value(memoryview(pack_value([1, "a"])), max_bytes=MAX) == [1, "a"]


# ------------------------------------------------------------------------ properties

KEYS = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=8),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(KEYS, children, max_size=5),
        st.dictionaries(st.tuples(KEYS, KEYS), children, max_size=3),
    ),
    max_leaves=30,
)


@settings(deadline=None, max_examples=300)
@given(VALUES)
def test_any_supported_value_round_trips_exactly(value: Any) -> None:
    assert same(roundtrip(value), value)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200))
def test_unpacking_random_bytes_never_raises_anything_but_protocol_error(data: bytes) -> None:
    try:
        unpack_value(data, max_bytes=MAX)
    except ProtocolError as exc:
        assert exc.reason == "bad_message"


@settings(deadline=None, max_examples=300)
@given(VALUES, st.data())
def test_unpacking_mutated_values_never_raises_anything_but_protocol_error(
    value: Any, data: st.DataObject
) -> None:
    packed = bytearray(pack_value(value))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(packed) - 1))
        packed[position] = data.draw(st.integers(0, 255))
    try:
        unpack_value(bytes(packed), max_bytes=MAX)
    except ProtocolError as exc:
        assert exc.reason == "bad_message"
