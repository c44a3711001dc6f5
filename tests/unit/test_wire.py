"""Unit tests of the "netgear v1" native wire format (pure, no sockets)."""

from __future__ import annotations

import ast
import contextlib
import copy
import datetime
import math
import pickle
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from netgear.errors import ConfigError, MessageTooLarge, ProtocolError
from netgear.wire import DTYPES, NO_MESSAGE, Ack, Decoded, Kind, Limits, native
from netgear.wire.native import (
    MAGIC,
    READABLE,
    REASONS,
    VERSION,
    decode,
    decode_ack,
    encode_ack,
    encode_control,
    encode_frame,
)
from netgear.wire.values import pack_value

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits()
PREFIX = MAGIC + bytes([VERSION])
COMMON = {"seq": 5, "sent_ns": 1000, "server_id": "cam", "session": 7, "topic": "t"}


def frame_parts(frame: np.ndarray | None, message: Any = NO_MESSAGE, **fields: Any) -> list:
    """encode_frame with default header fields."""
    return encode_frame(**{**COMMON, **fields}, frame=frame, message=message, limits=LIMITS)


def as_bytes(parts: list) -> list[bytes]:
    """What a receiver gets when the parts are copied (read-only buffers)."""
    return [bytes(part) for part in parts]


def as_bytearrays(parts: list) -> list[bytearray]:
    """What a receiver gets from pyzmq: writable buffers."""
    return [bytearray(part) for part in parts]


def same(a: Any, b: Any) -> bool:
    """Equal with exactly the same types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype.str == b.dtype.str and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            any(same(k, k2) for k2 in b) and same(v, b[k]) for k, v in a.items()
        )
    return a == b


def header(fields: dict[str, Any], *, prefix: bytes = PREFIX) -> bytes:
    """A hand-made header part (keys in the given order, no validation)."""
    return prefix + msgpack.packb(fields, use_bin_type=True)


def frame_header(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid FRAME header carrying a 2x2 uint8 frame."""
    fields: dict[str, Any] = {
        "k": 0,
        "q": 1,
        "t": 2,
        "id": "cam",
        "s": 3,
        "tp": "t",
        "f": ["raw", "|u1", [2, 2]],
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not DROP}


def control_header(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid HEARTBEAT header."""
    fields = frame_header(k=1, f=DROP)
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not DROP}


DROP = object()
PAYLOAD = b"\x01\x02\x03\x04"


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny real grayscale JPEG whose SOF0 header is patched to declare width x height."""
    import simplejpeg

    data = bytearray(simplejpeg.encode_jpeg(np.zeros((8, 8, 1), np.uint8), colorspace="GRAY", colorsubsampling="Gray"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


# -------------------------------------------------------------------- shared types


def test_kind_values() -> None:
    assert [(k.name, int(k)) for k in Kind] == [
        ("FRAME", 0),
        ("HEARTBEAT", 1),
        ("BYE", 2),
        ("ACK", 3),
    ]


def test_dtypes_whitelist() -> None:
    assert len(DTYPES) == 21
    assert {"|b1", "|i1", "|u1", "<u2", ">u2", "<f2", ">f8", "<i8", ">u8"} <= DTYPES
    assert not DTYPES & {"<c16", "|O", "|V8", "<U4", "<M8[s]", "<f16", "bool", "uint8"}
    assert all(np.dtype(name).str == name for name in DTYPES)


def test_no_message_sentinel() -> None:
    assert repr(NO_MESSAGE) == "NO_MESSAGE"
    assert not NO_MESSAGE
    assert copy.deepcopy(NO_MESSAGE) is NO_MESSAGE
    assert pickle.loads(pickle.dumps(NO_MESSAGE)) is NO_MESSAGE
    assert NO_MESSAGE is not None


def test_limits_defaults_and_validation() -> None:
    assert Limits() == Limits(1 << 20, 256 << 20, 4)
    for bad in (
        {"max_message_bytes": -1},
        {"max_frame_bytes": 1.5},
        {"max_ndim": 33},
        {"max_ndim": True},
    ):
        with pytest.raises(ConfigError):
            Limits(**bad)
    with pytest.raises(AttributeError):
        LIMITS.max_ndim = 3  # type: ignore[misc]


def test_reasons_are_unique_tokens() -> None:
    assert len(set(REASONS)) == len(REASONS)
    assert all(reason.isidentifier() and reason.islower() for reason in REASONS)


# ------------------------------------------------------------------------- golden


def test_golden_frame() -> None:
    parts = frame_parts(np.array([[1, 2]], dtype=np.uint8), {"a": 1})
    golden_header = (
        b"\xabNG\x02"  # magic, version
        b"\x88"  # map of 8
        b"\xa1k\x00"  # k: FRAME
        b"\xa1q\x05"  # q: 5
        b"\xa1t\xcd\x03\xe8"  # t: 1000 (uint16)
        b"\xa2id\xa3cam"  # id: "cam"
        b"\xa1s\x07"  # s: 7
        b"\xa2tp\xa1t"  # tp: "t"
        b"\xa1f\x93\xa3raw\xa3|u1\x92\x01\x02"  # f: ["raw", "|u1", [1, 2]]
        b"\xa1m\xc4\x04\x81\xa1a\x01"  # m: bin(msgpack({"a": 1}))
    )
    assert as_bytes(parts) == [golden_header, b"\x01\x02"]


def test_golden_deferred_frame() -> None:
    """v2: a frame whose sender needs no ACK yet ends with ``d: true``."""
    parts = frame_parts(np.array([[1, 2]], dtype=np.uint8), defer=True)
    assert as_bytes(parts)[0] == (
        b"\xabNG\x02"
        b"\x88"  # map of 8
        b"\xa1k\x00\xa1q\x05\xa1t\xcd\x03\xe8\xa2id\xa3cam\xa1s\x07\xa2tp\xa1t"
        b"\xa1f\x93\xa3raw\xa3|u1\x92\x01\x02"
        b"\xa1d\xc3"  # d: true
    )
    assert decode(as_bytearrays(parts), LIMITS).defer is True
    assert decode(as_bytearrays(frame_parts(np.array([[1, 2]], dtype=np.uint8))), LIMITS).defer is False
    assert decode([H(FH(d=False)), PAYLOAD], LIMITS).defer is False


def test_version_1_is_still_read() -> None:
    """A v1 sender (no ``d``, every frame acknowledged) and a v1 hub's ACKs decode as before."""
    v1 = MAGIC + b"\x01"
    decoded = decode([H(FH(), prefix=v1), PAYLOAD], LIMITS)
    assert (decoded.kind, decoded.seq, decoded.defer) == (Kind.FRAME, 1, False)
    assert decode_ack([H({"k": 3, "q": 9}, prefix=v1)], LIMITS).seq == 9
    assert VERSION in READABLE and 1 in READABLE


def test_golden_heartbeat_and_bye() -> None:
    body = b"\xa1q\x05\xa1t\xcd\x03\xe8\xa2id\xa3cam\xa1s\x07\xa2tp\xa1t"
    assert encode_control(Kind.HEARTBEAT, **COMMON) == [b"\xabNG\x02\x86\xa1k\x01" + body]
    assert encode_control(Kind.BYE, **COMMON) == [b"\xabNG\x02\x86\xa1k\x02" + body]


def test_golden_ack() -> None:
    assert encode_ack(9, True, limits=LIMITS) == [
        b"\xabNG\x02\x83\xa1k\x03\xa1q\x09\xa1r\xc4\x01\xc3"
    ]
    assert encode_ack(9, limits=LIMITS) == [b"\xabNG\x02\x82\xa1k\x03\xa1q\x09"]
    assert encode_ack(9, None, limits=LIMITS) == [
        b"\xabNG\x02\x83\xa1k\x03\xa1q\x09\xa1r\xc4\x01\xc0"
    ]


def test_golden_message_only_frame() -> None:
    golden_header = (
        b"\xabNG\x02\x87\xa1k\x00\xa1q\x05\xa1t\xcd\x03\xe8\xa2id\xa3cam\xa1s\x07\xa2tp\xa1t"
        b"\xa1m\xc4\x01\xc0"  # m: bin(msgpack(None)); no "f" key
    )
    assert frame_parts(None, None) == [golden_header]


# --------------------------------------------------------------------- frames

SHAPES = [
    (),
    (0,),
    (1,),
    (1, 1),
    (7,),
    (3, 5),
    (0, 3),
    (2, 0, 5),
    (4, 3, 2),
    (2, 3, 2, 2),
    (1, 1, 1, 0),
]


def random_array(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random bits of ``dtype`` (0/1 for bool), NaNs and all."""
    rng = np.random.default_rng(seed)
    count = math.prod(shape)
    if dtype == "|b1":
        return rng.integers(0, 2, count).astype(bool).reshape(shape)
    return np.frombuffer(rng.bytes(count * np.dtype(dtype).itemsize), dtype).reshape(shape).copy()


def assert_bit_exact(out: np.ndarray, expected: np.ndarray) -> None:
    assert type(out) is np.ndarray
    assert out.dtype == expected.dtype and out.dtype.str == expected.dtype.str
    assert out.shape == expected.shape
    assert out.tobytes() == expected.tobytes()
    if out.dtype.kind != "f":
        assert np.array_equal(out, expected)
    assert out.flags.writeable


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_frames_round_trip_bit_exact(dtype: str, shape: tuple[int, ...]) -> None:
    array = random_array(dtype, shape)
    parts = frame_parts(array)
    for received in (parts, as_bytes(parts), as_bytearrays(parts)):
        decoded = decode(received, LIMITS)
        assert_bit_exact(decoded.frame, array)
        assert decoded.nbytes == sum(len(bytes(p)) for p in received)


def make_non_contiguous() -> list[np.ndarray]:
    """Arrays of several layouts that are not C-contiguous."""
    base = random_array("<u2", (6, 8, 3))
    return [
        base[::2, 1::3],
        base.transpose(1, 0, 2),
        np.asfortranarray(random_array(">f4", (5, 7))),
        base[::-1],
        base[:, :, 1],
        random_array("|b1", (6, 6))[::2, ::3],
        random_array("<f8", (4, 4)).T,
    ]


@pytest.mark.parametrize("array", make_non_contiguous(), ids=lambda a: str(a.strides))
def test_non_contiguous_frames_round_trip(array: np.ndarray) -> None:
    assert not array.flags.c_contiguous
    decoded = decode(as_bytes(frame_parts(array)), LIMITS)
    assert_bit_exact(decoded.frame, array)


def test_contiguous_frame_is_not_copied_on_encode() -> None:
    array = random_array("<u2", (4, 5))
    parts = frame_parts(array)
    payload = np.asarray(parts[1])
    assert np.shares_memory(payload, array)
    assert memoryview(parts[1]).format == "B" and memoryview(parts[1]).nbytes == array.nbytes


class SubArray(np.ndarray):
    """An ndarray subclass (like masked arrays or user types)."""


def test_subclassed_frame_is_sent_as_plain_array() -> None:
    sub = np.arange(6, dtype=np.uint8).reshape(2, 3).view(SubArray)
    decoded = decode(frame_parts(sub), LIMITS)
    assert type(decoded.frame) is np.ndarray and decoded.frame.shape == (2, 3)


def test_writable_parts_are_decoded_without_copy() -> None:
    parts = as_bytearrays(frame_parts(random_array("|u1", (3, 4))))
    decoded = decode(parts, LIMITS)
    assert np.shares_memory(decoded.frame, np.frombuffer(parts[1], np.uint8))
    decoded.frame[0, 0] ^= 0xFF
    assert parts[1][0] == decoded.frame[0, 0]


def test_read_only_parts_are_copied_once_and_writable() -> None:
    array = random_array("<f4", (3, 4))
    decoded = decode(as_bytes(frame_parts(array)), LIMITS)
    decoded.frame[...] = 0
    assert decoded.frame.flags.writeable and decoded.frame.flags.owndata is False


class FakeZmqFrame:
    """Like zmq.Frame: a ``.buffer`` memoryview attribute and no buffer protocol of its own."""

    def __init__(self, data: bytes) -> None:
        self.buffer = memoryview(bytearray(data))


def test_parts_with_a_buffer_attribute_are_supported() -> None:
    array = random_array("<i4", (2, 3))
    parts = [FakeZmqFrame(bytes(part)) for part in frame_parts(array, [1])]
    decoded = decode(parts, LIMITS)
    assert_bit_exact(decoded.frame, array)
    assert np.shares_memory(decoded.frame, np.asarray(parts[1].buffer))
    assert decoded.message == [1]


def test_zmq_frames_are_supported() -> None:
    zmq = pytest.importorskip("zmq")
    array = random_array("<u2", (2, 3))
    parts = [zmq.Frame(bytes(part)) for part in frame_parts(array)]
    assert_bit_exact(decode(parts, LIMITS).frame, array)


@pytest.mark.parametrize(
    "payload",
    [
        np.frombuffer(b"\x01\x02\x03\x04", dtype="<u2"),
        np.frombuffer(b"\x01\x02\x03\x04", dtype=">u2"),
        np.frombuffer(b"\x01\x02\x03\x04", dtype="<u2").reshape(2, 1),
        memoryview(b"\x00\x01\x02\x03\x04")[1:],
        memoryview(b"\x01\x00\x02\x00\x03\x00\x04")[::2],
    ],
    ids=["native-u2", "big-u2", "2d", "sliced-view", "strided-view"],
)
def test_parts_of_any_buffer_format_are_read_as_bytes(payload: Any) -> None:
    decoded = decode([header(frame_header()), payload], LIMITS)
    assert decoded.frame.tolist() == [[1, 2], [3, 4]]


# ------------------------------------------------------------------- messages

MESSAGES = [
    None,
    0,
    "",
    [],
    {},
    b"",
    False,
    True,
    -1,
    2**63 - 1,
    -(2**63),
    1.5,
    "ü",
    b"\x00\xff",
    {"a": {1: "int key", "s": ["str key"]}, 2: {b"k": (1, [2])}},
    (1, 2),
    [1, 2],
    ([1, (2,)], {"t": (3,)}),
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.arange(6, dtype=">i8").reshape(2, 3),
    np.array([[True, False]]),
    np.float32(1.5),
    np.uint16(7),
    np.bool_(True),
    {"meta": np.float64(0.25), "ids": np.arange(3, dtype=np.uint8)},
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{type(m).__name__}:{m!r}"[:40])
@pytest.mark.parametrize("with_frame", [False, True], ids=["no-frame", "frame"])
def test_messages_round_trip_with_type(message: Any, with_frame: bool) -> None:
    frame = random_array("|u1", (2, 2)) if with_frame else None
    decoded = decode(as_bytes(frame_parts(frame, message)), LIMITS)
    assert decoded.has_message is True
    assert same(decoded.message, message)
    assert (decoded.frame is None) is (not with_frame)


def test_nan_message() -> None:
    decoded = decode(frame_parts(None, float("nan")), LIMITS)
    assert math.isnan(decoded.message)


def test_message_arrays_are_writable() -> None:
    decoded = decode(frame_parts(None, {"a": np.zeros((2, 2))}), LIMITS)
    decoded.message["a"][0, 0] = 1.0


def test_no_message_differs_from_none_message() -> None:
    without = decode(frame_parts(random_array("|u1", (1,))), LIMITS)
    with_none = decode(frame_parts(random_array("|u1", (1,)), None), LIMITS)
    assert (without.has_message, without.message) == (False, None)
    assert (with_none.has_message, with_none.message) == (True, None)


def test_frame_and_message_both_absent() -> None:
    decoded = decode(frame_parts(None), LIMITS)
    assert (decoded.frame, decoded.message, decoded.has_message) == (None, None, False)


def test_decoded_fields() -> None:
    parts = frame_parts(
        random_array("|u1", (2,)),
        "hi",
        seq=2**63 - 1,
        sent_ns=2**63 - 1,
        server_id="é" * 256,
        session=2**32 - 1,
        topic="x" * 256,
    )
    decoded = decode(parts, LIMITS)
    assert isinstance(decoded, Decoded)
    assert decoded.kind is Kind.FRAME
    assert (decoded.seq, decoded.sent_ns, decoded.session) == (2**63 - 1, 2**63 - 1, 2**32 - 1)
    assert (decoded.server_id, decoded.topic) == ("é" * 256, "x" * 256)
    assert decoded.nbytes == len(parts[0]) + 2
    with pytest.raises(AttributeError):
        decoded.seq = 1  # type: ignore[misc]


def test_numpy_and_enum_ints_are_accepted_as_header_fields() -> None:
    decoded = decode(frame_parts(None, seq=np.int64(3), session=Kind.BYE, sent_ns=0), LIMITS)
    assert (decoded.seq, decoded.session, decoded.sent_ns) == (3, 2, 0)
    assert type(decoded.seq) is int and type(decoded.session) is int


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(0, 2**63 - 1),
    sent_ns=st.integers(0, 2**63 - 1),
    server_id=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    topic=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=9),
    session=st.integers(0, 2**32 - 1),
    message=st.one_of(st.just(NO_MESSAGE), st.none(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5)),
    defer=st.booleans(),
    with_frame=st.booleans(),
)
def test_a_senders_frame_encoder_writes_what_encode_frame_writes(
    seq, sent_ns, server_id, topic, session, message, defer, with_frame
) -> None:
    frame = np.arange(24, dtype=np.uint16).reshape(2, 3, 4) if with_frame else None
    want = encode_frame(seq=seq, sent_ns=sent_ns, server_id=server_id, session=session, topic=topic, frame=frame,
                        message=message, limits=LIMITS, defer=defer)
    encoder = native.FrameEncoder(server_id=server_id, session=session, topic=topic, limits=LIMITS)
    got = encoder.encode(seq, sent_ns, frame, message, None, defer)
    assert [bytes(p) for p in got] == [bytes(p) for p in want]


def test_a_senders_frame_encoder_checks_what_encode_frame_checks() -> None:
    with pytest.raises(ValueError, match="server_id"):
        native.FrameEncoder(server_id="", session=1, topic="t", limits=LIMITS)
    with pytest.raises(ValueError, match="topic"):
        native.FrameEncoder(server_id="cam", session=1, topic="a\x00b", limits=LIMITS)
    with pytest.raises(ValueError, match="session"):
        native.FrameEncoder(server_id="cam", session=2**32, topic="t", limits=LIMITS)
    encoder = native.FrameEncoder(server_id="cam", session=1, topic="t", limits=LIMITS)
    with pytest.raises(ValueError, match="seq"):
        encoder.encode(-1, 0, None)
    with pytest.raises(TypeError, match="sent_ns"):
        encoder.encode(1, 1.5, None)
    with pytest.raises(TypeError, match="seq"):
        encoder.encode(True, 0, None)
    assert decode(encoder.encode(np.int64(3), 0, None), LIMITS).seq == 3
    small = native.FrameEncoder(server_id="cam", session=1, topic="t", limits=Limits(max_frame_bytes=1000))
    with pytest.raises(MessageTooLarge):
        small.encode(1, 0, np.zeros(1001, np.uint8))


# ------------------------------------------------------------- control / acks


@pytest.mark.parametrize("kind", [Kind.HEARTBEAT, Kind.BYE])
def test_control_round_trip(kind: Kind) -> None:
    decoded = decode(encode_control(kind, **COMMON), LIMITS)
    assert decoded.kind is kind
    assert (decoded.seq, decoded.sent_ns, decoded.server_id, decoded.session, decoded.topic) == (
        5,
        1000,
        "cam",
        7,
        "t",
    )
    assert (decoded.frame, decoded.message, decoded.has_message) == (None, None, False)


@pytest.mark.parametrize("kind", [Kind.FRAME, Kind.ACK, 7])
def test_encode_control_refuses_other_kinds(kind: Any) -> None:
    with pytest.raises(ValueError, match="HEARTBEAT or BYE"):
        encode_control(kind, **COMMON)


@pytest.mark.parametrize("reply", [NO_MESSAGE, None, 0, "ok", {"a": (1, np.int16(2))}, np.eye(2)])
def test_ack_round_trip(reply: Any) -> None:
    ack = decode_ack(as_bytes(encode_ack(42, reply, limits=LIMITS)), LIMITS)
    assert isinstance(ack, Ack)
    assert ack.seq == 42
    if reply is NO_MESSAGE:
        assert (ack.has_reply, ack.reply) == (False, None)
    else:
        assert ack.has_reply is True and same(ack.reply, reply)


# ------------------------------------------------------------------ encode errors


@pytest.mark.parametrize(
    ("frame", "name"),
    [([1, 2], "builtins.list"), (b"abc", "builtins.bytes"), (3, "builtins.int")],
)
def test_encode_frame_refuses_non_arrays(frame: Any, name: str) -> None:
    with pytest.raises(TypeError, match=r"numpy\.ndarray") as info:
        frame_parts(frame)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.array([object()]), "object"),
        (np.zeros(2, np.complex128), "complex128"),
        (np.zeros(2, "datetime64[s]"), "datetime64[s]"),
        (np.zeros(2, "V8"), "|V8"),
        (np.zeros(2, "<U2"), "<U2"),
    ],
)
def test_encode_frame_refuses_dtypes_naming_them(array: np.ndarray, dtype: str) -> None:
    with pytest.raises(TypeError, match="dtype") as info:
        frame_parts(array)
    assert dtype in str(info.value)


def test_encode_frame_refuses_too_many_dimensions() -> None:
    with pytest.raises(ValueError, match="5 dimensions"):
        frame_parts(np.zeros((1, 1, 1, 1, 1), np.uint8))


def test_encode_frame_refuses_bool_frames_with_other_bytes() -> None:
    with pytest.raises(ValueError, match="bool"):
        frame_parts(np.array([0, 2], np.uint8).view(bool))


def test_frame_over_limit_raises_message_too_large() -> None:
    limits = Limits(max_frame_bytes=100)
    encode_frame(**COMMON, frame=np.zeros(100, np.uint8), limits=limits)
    with pytest.raises(MessageTooLarge, match="max_frame_bytes"):
        encode_frame(**COMMON, frame=np.zeros(101, np.uint8), limits=limits)
    with pytest.raises(MessageTooLarge):
        encode_frame(**COMMON, frame=np.zeros((2, 51), np.uint8).T, limits=limits)


def test_message_over_limit_raises_message_too_large() -> None:
    limits = Limits(max_message_bytes=100)
    fits = b"x" * (100 - 2)  # bin8 header is 2 bytes
    assert (
        decode(encode_frame(**COMMON, frame=None, message=fits, limits=limits), limits).message
        == fits
    )
    with pytest.raises(MessageTooLarge, match="max_message_bytes"):
        encode_frame(**COMMON, frame=None, message=fits + b"x", limits=limits)
    with pytest.raises(MessageTooLarge, match="max_message_bytes"):
        encode_ack(1, fits + b"x", limits=limits)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("seq", -1, ValueError),
        ("seq", 2**63, ValueError),
        ("seq", True, TypeError),
        ("seq", 1.0, TypeError),
        ("sent_ns", -5, ValueError),
        ("sent_ns", "1", TypeError),
        ("session", 2**32, ValueError),
        ("session", None, TypeError),
        ("server_id", "", ValueError),
        ("server_id", "x" * 257, ValueError),
        ("server_id", b"cam", TypeError),
        ("server_id", "\ud800", ValueError),
        ("topic", "a\x00b", ValueError),
        ("topic", "", ValueError),
        ("topic", 1, TypeError),
    ],
)
def test_encode_refuses_bad_header_fields(field: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=field):
        frame_parts(None, **{field: value})
    with pytest.raises(error, match=field):
        encode_control(Kind.HEARTBEAT, **{**COMMON, field: value})


def test_encode_ack_refuses_bad_seq() -> None:
    with pytest.raises(ValueError, match="seq"):
        encode_ack(-1, limits=LIMITS)
    with pytest.raises(TypeError, match="seq"):
        encode_ack(False, limits=LIMITS)


@pytest.mark.parametrize("message", [{1, 2}, object(), datetime.date(2020, 1, 1), 1j])
def test_encode_frame_propagates_pack_type_errors(message: Any) -> None:
    with pytest.raises(TypeError, match=type(message).__qualname__):
        frame_parts(None, message)


# --------------------------------------------------------------------- rejections


def deep_tuples(depth: int) -> bytes:
    """``depth`` nested tuple extension values, made without pack_value."""
    data = msgpack.packb(msgpack.ExtType(3, b"\x90"))
    for _ in range(depth - 1):
        data = msgpack.packb(msgpack.ExtType(3, b"\x91" + data))
    return data


def nested_maps(depth: int) -> dict:
    """A wide, deep map: megabytes of work if unpacked as a whole."""
    return {i: nested_maps(depth - 1) for i in range(8)} if depth else {}


H = header
FH = frame_header
CH = control_header
SMALL = Limits(max_message_bytes=100, max_frame_bytes=8)
CASES: dict[str, tuple[str, list[Any], Limits, Callable[..., Any]]] = {
    # name: (reason, parts, limits, decoder)
    "no parts": ("bad_parts", [], LIMITS, decode),
    "three parts": ("bad_parts", [H(FH()), PAYLOAD, b""], LIMITS, decode),
    "frame header without payload": ("bad_parts", [H(FH())], LIMITS, decode),
    "control with payload": ("bad_parts", [H(CH()), PAYLOAD], LIMITS, decode),
    "message-only frame with payload": ("bad_parts", [H(FH(f=DROP)), b""], LIMITS, decode),
    "part is a str": ("bad_parts", ["abc"], LIMITS, decode),
    "part is an int": ("bad_parts", [H(FH()), 4], LIMITS, decode),
    "parts is None": ("bad_parts", None, LIMITS, decode),
    "ack with two parts": ("bad_parts", [H({"k": 3, "q": 1}), b""], LIMITS, decode_ack),
    "ack with no part": ("bad_parts", [], LIMITS, decode_ack),
    "empty header": ("bad_magic", [b""], LIMITS, decode),
    "short header": ("bad_magic", [b"\xab"], LIMITS, decode),
    "wrong magic": ("bad_magic", [H(CH(), prefix=b"\xabNH\x01")], LIMITS, decode),
    "no magic at all": ("bad_magic", [b"hello world"], LIMITS, decode),
    "ack wrong magic": ("bad_magic", [b"XYZ\x01"], LIMITS, decode_ack),
    "missing version": ("bad_version", [MAGIC], LIMITS, decode),
    "version 3": ("bad_version", [H(CH(), prefix=MAGIC + b"\x03")], LIMITS, decode),
    "version 0": ("bad_version", [H(CH(), prefix=MAGIC + b"\x00")], LIMITS, decode),
    "ack version 255": ("bad_version", [MAGIC + b"\xff\x80"], LIMITS, decode_ack),
    "header over limit + slack": ("oversize", [H(CH(m=b"x" * 4300))], SMALL, decode),
    "message over limit": ("oversize", [H(FH(f=DROP, m=pack_value(b"x" * 200)))], SMALL, decode),
    "reply over limit": (
        "oversize",
        [H({"k": 3, "q": 1, "r": pack_value(b"x" * 200)})],
        SMALL,
        decode_ack,
    ),
    "payload over limit": (
        "oversize",
        [H(FH(f=["raw", "|u1", [3, 3]])), b"\x00" * 9],
        SMALL,
        decode,
    ),
    "header not a map (list)": ("bad_header", [PREFIX + msgpack.packb([0, 1])], LIMITS, decode),
    "header not a map (int)": ("bad_header", [PREFIX + b"\x00"], LIMITS, decode),
    "header body empty": ("bad_header", [PREFIX], LIMITS, decode),
    "header truncated": ("bad_header", [H(CH())[:-3]], LIMITS, decode),
    "header map truncated": ("bad_header", [PREFIX + b"\x86\xa1k\x01"], LIMITS, decode),
    "header trailing bytes": ("bad_header", [H(CH()) + b"\x00"], LIMITS, decode),
    "header never-used byte": ("bad_header", [PREFIX + b"\x81\xa1k\xc1"], LIMITS, decode),
    "header too many keys": ("bad_header", [PREFIX + b"\x8f"], LIMITS, decode),
    "missing key t": ("bad_header", [H(CH(t=DROP))], LIMITS, decode),
    "missing key k": ("bad_header", [H(CH(k=DROP))], LIMITS, decode),
    "extra key x": ("bad_header", [H(CH(x=1))], LIMITS, decode),
    "heartbeat with f": ("bad_header", [H(FH(k=1)), PAYLOAD], LIMITS, decode),
    "heartbeat with d": ("bad_header", [H(CH(d=True))], LIMITS, decode),
    "defer is an int": ("bad_header", [H(FH(d=1)), PAYLOAD], LIMITS, decode),
    "defer is nil": ("bad_header", [H(FH(d=None)), PAYLOAD], LIMITS, decode),
    "ack with d": ("bad_header", [H({"k": 3, "q": 1, "d": True})], LIMITS, decode_ack),
    "bye with m": ("bad_header", [H(CH(k=2, m=b"\xc0"))], LIMITS, decode),
    "ack with t": ("bad_header", [H({"k": 3, "q": 1, "t": 2})], LIMITS, decode_ack),
    "ack without q": ("bad_header", [H({"k": 3})], LIMITS, decode_ack),
    "non-str key": ("bad_header", [H({**CH(), 1: 2})], LIMITS, decode),
    "bytes key": ("bad_header", [H({**CH(), b"x": 2})], LIMITS, decode),
    "container key": ("bad_header", [PREFIX + b"\x81\x91\x01\x01"], LIMITS, decode),
    "duplicate key": (
        "bad_header",
        [PREFIX + b"\x87\xa1k\x01\xa1q\x01\xa1t\x02\xa2id\xa3cam\xa1s\x03\xa2tp\xa1t\xa1q\x05"],
        LIMITS,
        decode,
    ),
    "bool seq": ("bad_header", [H(CH(q=True))], LIMITS, decode),
    "bool kind": ("bad_header", [H(CH(k=False))], LIMITS, decode),
    "float seq": ("bad_header", [H(CH(q=1.0))], LIMITS, decode),
    "str seq": ("bad_header", [H(CH(q="1"))], LIMITS, decode),
    "nil seq": ("bad_header", [H(CH(q=None))], LIMITS, decode),
    "huge seq": ("bad_header", [H(CH(q=2**64 - 1))], LIMITS, decode),
    "seq 2**63": ("bad_header", [H(CH(q=2**63))], LIMITS, decode),
    "negative seq": ("bad_header", [H(CH(q=-1))], LIMITS, decode),
    "negative time": ("bad_header", [H(CH(t=-1))], LIMITS, decode),
    "session 2**32": ("bad_header", [H(CH(s=2**32))], LIMITS, decode),
    "ack negative seq": ("bad_header", [H({"k": 3, "q": -1})], LIMITS, decode_ack),
    "seq is a list": ("bad_header", [H(CH(q=[1]))], LIMITS, decode),
    "seq is a huge nested map": ("bad_header", [H(CH(q=nested_maps(5)))], LIMITS, decode),
    "seq is a timestamp": ("bad_header", [H(CH(q=msgpack.Timestamp(1, 0)))], LIMITS, decode),
    "seq is an ext": ("bad_header", [H(CH(q=msgpack.ExtType(5, b"x")))], LIMITS, decode),
    "empty id": ("bad_header", [H(CH(id=""))], LIMITS, decode),
    "id too long": ("bad_header", [H(CH(id="x" * 257))], LIMITS, decode),
    "id is bytes": ("bad_header", [H(CH(id=b"cam"))], LIMITS, decode),
    "id invalid utf-8": (
        "bad_header",
        [PREFIX + b"\x86\xa1k\x01\xa1q\x01\xa1t\x02\xa2id\xa3\xff\xfe\xfd\xa1s\x03\xa2tp\xa1t"],
        LIMITS,
        decode,
    ),
    "topic with nul": ("bad_header", [H(CH(tp="a\x00"))], LIMITS, decode),
    "empty topic": ("bad_header", [H(CH(tp=""))], LIMITS, decode),
    "m is str": ("bad_header", [H(FH(f=DROP, m="x"))], LIMITS, decode),
    "r is int": ("bad_header", [H({"k": 3, "q": 1, "r": 1})], LIMITS, decode_ack),
    "f is str": ("bad_header", [H(FH(f="raw")), PAYLOAD], LIMITS, decode),
    "f too short": ("bad_header", [H(FH(f=["raw", "|u1"])), PAYLOAD], LIMITS, decode),
    "f too long": ("bad_header", [H(FH(f=["raw", "|u1", [4], 0])), PAYLOAD], LIMITS, decode),
    "codec not str": ("bad_header", [H(FH(f=[0, "|u1", [4]])), PAYLOAD], LIMITS, decode),
    "dtype not str": ("bad_header", [H(FH(f=["raw", 1, [4]])), PAYLOAD], LIMITS, decode),
    "dtype is a list": ("bad_header", [H(FH(f=["raw", ["|u1"], [4]])), PAYLOAD], LIMITS, decode),
    "unknown kind 7": ("bad_kind", [H(CH(k=7))], LIMITS, decode),
    "negative kind": ("bad_kind", [H(CH(k=-1))], LIMITS, decode),
    "ack to decode": ("bad_kind", [H({"k": 3, "q": 1})], LIMITS, decode),
    "heartbeat to decode_ack": ("bad_kind", [H(CH())], LIMITS, decode_ack),
    "frame to decode_ack": ("bad_kind", [H(FH(f=DROP))], LIMITS, decode_ack),
    "jpeg colorspace |u1": ("bad_codec", [H(FH(f=["jpeg", "|u1", [4]])), PAYLOAD], LIMITS, decode),
    "jpeg garbage": ("bad_jpeg", [H(FH(f=["jpeg", "BGR", [4, 4, 3]])), PAYLOAD], LIMITS, decode),
    "jpeg declares another size": (
        "bad_jpeg",
        [H(FH(f=["jpeg", "GRAY", [8, 16]])), _jpeg_declaring(8, 16)],
        LIMITS,
        decode,
    ),
    "jpeg declares 30000x30000": (
        "oversize",
        [H(FH(f=["jpeg", "GRAY", [30000, 30000]])), _jpeg_declaring(30000, 30000)],
        Limits(max_frame_bytes=64 << 20),
        decode,
    ),
    "jpeg shape/colorspace mismatch": (
        "bad_shape",
        [H(FH(f=["jpeg", "BGR", [4, 4]])), PAYLOAD],
        LIMITS,
        decode,
    ),
    "codec empty": ("bad_codec", [H(FH(f=["", "|u1", [4]])), PAYLOAD], LIMITS, decode),
    "dtype <c16": ("bad_dtype", [H(FH(f=["raw", "<c16", [4]])), PAYLOAD], LIMITS, decode),
    "dtype O": ("bad_dtype", [H(FH(f=["raw", "O", [4]])), PAYLOAD], LIMITS, decode),
    "dtype |O": ("bad_dtype", [H(FH(f=["raw", "|O", [4]])), PAYLOAD], LIMITS, decode),
    "dtype |V8": ("bad_dtype", [H(FH(f=["raw", "|V8", [4]])), PAYLOAD], LIMITS, decode),
    "dtype name uint8": ("bad_dtype", [H(FH(f=["raw", "uint8", [4]])), PAYLOAD], LIMITS, decode),
    "dtype <U1": ("bad_dtype", [H(FH(f=["raw", "<U1", [1]])), PAYLOAD], LIMITS, decode),
    "dtype <M8[s]": ("bad_dtype", [H(FH(f=["raw", "<M8[s]", [1]])), PAYLOAD], LIMITS, decode),
    "ndim 5": ("bad_shape", [H(FH(f=["raw", "|u1", [1, 1, 1, 1, 4]])), PAYLOAD], LIMITS, decode),
    "ndim 1000": ("bad_shape", [H(FH(f=["raw", "|u1", [1] * 1000])), PAYLOAD], LIMITS, decode),
    "ndim 3 with max_ndim 2": (
        "bad_shape",
        [H(FH(f=["raw", "|u1", [1, 1, 4]])), PAYLOAD],
        Limits(max_ndim=2),
        decode,
    ),
    "negative dimension": (
        "bad_shape",
        [H(FH(f=["raw", "|u1", [-1, -4]])), PAYLOAD],
        LIMITS,
        decode,
    ),
    "bool dimension": ("bad_shape", [H(FH(f=["raw", "|u1", [True, 4]])), PAYLOAD], LIMITS, decode),
    "float dimension": ("bad_shape", [H(FH(f=["raw", "|u1", [4.0]])), PAYLOAD], LIMITS, decode),
    "nested dimension": ("bad_shape", [H(FH(f=["raw", "|u1", [[4]]])), PAYLOAD], LIMITS, decode),
    "shape not a list": ("bad_shape", [H(FH(f=["raw", "|u1", 4])), PAYLOAD], LIMITS, decode),
    "absurd zero-size shape": (
        "bad_shape",
        [H(FH(f=["raw", "|u1", [2**63, 0]])), b""],
        LIMITS,
        decode,
    ),
    "empty frame declaring 0 x 2**63-1": (
        "bad_shape",
        [H(FH(f=["raw", "|u1", [0, 2**63 - 1]])), b""],
        LIMITS,
        decode,
    ),
    "size too small": ("size_mismatch", [H(FH()), b"\x00" * 3], LIMITS, decode),
    "size too big": ("size_mismatch", [H(FH()), b"\x00" * 5], LIMITS, decode),
    "itemsize ignored": (
        "size_mismatch",
        [H(FH(f=["raw", "<f4", [1]])), b"\x00\x00"],
        LIMITS,
        decode,
    ),
    "zero-size with bytes": (
        "size_mismatch",
        [H(FH(f=["raw", "|u1", [0, 3]])), b"\x00"],
        LIMITS,
        decode,
    ),
    "huge declared shape": (  # each dimension is bounded by max_frame_bytes
        "bad_shape",
        [H(FH(f=["raw", "<f8", [2**40, 2**40]])), PAYLOAD],
        LIMITS,
        decode,
    ),
    "bool value 2": (
        "bad_payload",
        [H(FH(f=["raw", "|b1", [2, 2]])), b"\x00\x01\x02\x01"],
        LIMITS,
        decode,
    ),
    "bool value 255": (
        "bad_payload",
        [H(FH(f=["raw", "|b1", [4]])), b"\x00\x00\x00\xff"],
        LIMITS,
        decode,
    ),
    "corrupt message": ("bad_message", [H(FH(f=DROP, m=b"\xc1"))], LIMITS, decode),
    "truncated message": (
        "bad_message",
        [H(FH(f=DROP, m=pack_value([1, 2])[:-1]))],
        LIMITS,
        decode,
    ),
    "empty message bytes": ("bad_message", [H(FH(f=DROP, m=b""))], LIMITS, decode),
    "deep tuples": ("bad_message", [H(FH(f=DROP, m=deep_tuples(100)))], LIMITS, decode),
    "unknown ext in message": (
        "bad_message",
        [H(FH(m=msgpack.packb(msgpack.ExtType(9, b"")))), PAYLOAD],
        LIMITS,
        decode,
    ),
    "corrupt reply": ("bad_message", [H({"k": 3, "q": 1, "r": b"\x92\x01"})], LIMITS, decode_ack),
}


@pytest.mark.parametrize(("reason", "parts", "limits", "decoder"), CASES.values(), ids=CASES.keys())
def test_rejections_have_exact_reasons(
    reason: str, parts: list[Any], limits: Limits, decoder: Callable[..., Any]
) -> None:
    assert reason in REASONS
    with pytest.raises(ProtocolError) as info:
        decoder(parts, limits)
    assert info.value.reason == reason, info.value


def test_every_reason_is_produced_by_a_crafted_input() -> None:
    assert {case[0] for case in CASES.values()} == set(REASONS)


def test_crafted_valid_inputs_are_accepted() -> None:
    """The helpers used by the rejection cases build valid messages by default."""
    assert decode([H(FH()), PAYLOAD], LIMITS).frame.tolist() == [[1, 2], [3, 4]]
    assert decode([H(CH())], LIMITS).kind is Kind.HEARTBEAT
    assert decode([H(FH(f=DROP, m=pack_value(b"x" * 98)))], SMALL).message == b"x" * 98
    assert decode(
        [H(FH(f=["raw", "|b1", [2, 2]])), b"\x00\x01\x01\x00"], LIMITS
    ).frame.tolist() == [
        [False, True],
        [True, False],
    ]
    assert decode_ack([H({"k": 3, "q": 1, "r": b"\xc0"})], LIMITS).has_reply


def test_foreign_but_valid_msgpack_encodings_are_accepted() -> None:
    """Another encoder may pick wider int/str formats or another key order."""
    body = (
        b"\x86"
        b"\xd9\x02tp\xda\x00\x01t"  # str8 key, str16 value
        b"\xa1s\xce\x00\x00\x00\x03"  # uint32
        b"\xa2id\xa3cam"
        b"\xa1t\xd3\x00\x00\x00\x00\x00\x00\x00\x02"  # int64 holding a positive value
        b"\xa1q\xcf\x00\x00\x00\x00\x00\x00\x00\x01"  # uint64
        b"\xa1k\xd0\x01"  # int8
    )
    decoded = decode([PREFIX + body], LIMITS)
    assert (decoded.kind, decoded.seq, decoded.sent_ns, decoded.session, decoded.topic) == (
        Kind.HEARTBEAT,
        1,
        2,
        3,
        "t",
    )


def test_protocol_errors_are_value_errors_with_detail() -> None:
    with pytest.raises(ValueError, match="bad_magic: "):
        decode([b"nope"], LIMITS)


# ------------------------------------------------------------------- properties

VALID = [
    frame_parts(random_array("<u2", (3, 4)), {"a": [1, (2, b"x")]}),
    frame_parts(random_array("|b1", (2, 5))),
    frame_parts(None, "message only"),
    encode_control(Kind.BYE, **COMMON),
]
VALID_ACKS = [encode_ack(3, limits=LIMITS), encode_ack(3, {"reply": (1.5, None)}, limits=LIMITS)]
VALID_BYTES = [as_bytes(parts) for parts in VALID + VALID_ACKS]

PART = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda b: PREFIX + b),
    st.sampled_from([part for parts in VALID_BYTES for part in parts]),
)


def decode_anything(parts: list[Any], limits: Limits = LIMITS) -> None:
    """Both decoders must return their type or raise ProtocolError with a known reason."""
    for decoder, result_type in ((decode, Decoded), (decode_ack, Ack)):
        try:
            result = decoder(parts, limits)
        except ProtocolError as exc:
            assert exc.reason in REASONS
        else:
            assert isinstance(result, result_type)


@settings(deadline=None, max_examples=300)
@given(st.lists(PART, min_size=0, max_size=4))
def test_random_parts_decode_or_raise_protocol_error(parts: list[bytes]) -> None:
    decode_anything(parts)


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(VALID_BYTES), st.data())
def test_mutated_messages_decode_or_raise_protocol_error(
    parts: list[bytes], data: st.DataObject
) -> None:
    parts = list(parts)
    index = data.draw(st.integers(0, len(parts) - 1))
    part = bytearray(parts[index])
    action = data.draw(st.sampled_from(["flip", "truncate", "append", "all"]))
    if action in ("flip", "all") and part:
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, len(part) - 1))
            part[position] ^= data.draw(st.integers(1, 255))
    if action in ("truncate", "all"):
        del part[data.draw(st.integers(0, len(part))) :]
    if action in ("append", "all"):
        part += data.draw(st.binary(min_size=1, max_size=16))
    parts[index] = bytes(part)
    decode_anything(parts)
    decode_anything(parts, SMALL)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        dtype=st.sampled_from(sorted(DTYPES)),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    )
)
def test_any_whitelisted_array_round_trips(array: np.ndarray) -> None:
    assert_bit_exact(decode(as_bytes(frame_parts(array)), LIMITS).frame, array)
    assert_bit_exact(decode(frame_parts(array), LIMITS).frame, array)


SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                   st.text(max_size=8), st.binary(max_size=8))
HEADER_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                            max_leaves=12)


@settings(deadline=None, max_examples=400)
@given(st.data())
def test_fast_header_path_accepts_exactly_what_the_careful_reader_accepts(data: st.DataObject) -> None:
    """The one-call msgpack path returns a header only when the field-by-field reader
    returns the same one; whatever it declines, the careful reader judges."""
    keys = sorted(native._ANY_KEY) + ["zz", "", "kk"]
    fields = data.draw(st.dictionaries(st.sampled_from(keys), HEADER_VALUE, max_size=10))
    if data.draw(st.booleans()):
        fields["f"] = [data.draw(st.sampled_from(["raw", "jpeg", 5])), data.draw(st.sampled_from(["|u1", "<f4", b"x"])),
                       data.draw(st.lists(SCALAR | st.lists(SCALAR, max_size=2), max_size=6))]
        if data.draw(st.booleans()):
            fields["f"].append(data.draw(SCALAR))
    body = msgpack.packb(fields, use_bin_type=True)
    if data.draw(st.booleans()):  # a repeated key, or trailing bytes
        body = data.draw(st.sampled_from([b"\x82\xa1k\x00\xa1k\x01", body + b"\x00"]))
    view = memoryview(body)
    fast = native._fast_map(view, LIMITS)
    try:
        careful = native._read_map(view, LIMITS)
    except Exception:  # the careful reader refuses (its callers turn this into bad_header)
        careful = None
    if fast is not None:
        assert careful is not None and fast == careful and list(fast) == list(careful)


def test_decoding_is_fast() -> None:
    """2000 decodes of valid 640x480x3 frames, garbage and hostile headers: < 1 ms each."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    valid = frame_parts(image, {"boxes": [[1, 2, 3, 4]] * 10, "label": "cat"})
    inputs: list[list[Any]] = [
        as_bytearrays(valid),
        as_bytes(valid),
        valid,
        [valid[0][:-5], valid[1]],
        [valid[0], bytes(valid[1])[:-1]],
        [H(CH(q=nested_maps(6)))],  # ~600 kB of nested maps in a header field
        [H(FH(f=["raw", "|u1", [1] * 100_000])), b"\x00"],
        [PREFIX + b"\x8f" + b"\xa1k" * 100_000],
    ]
    inputs += [[rng.bytes(int(n))] for n in rng.integers(0, 5000, 20)]
    inputs += [[PREFIX + rng.bytes(int(n)), rng.bytes(100)] for n in rng.integers(0, 5000, 20)]
    count = 2000
    start = time.perf_counter()
    for i in range(count):
        with contextlib.suppress(ProtocolError):
            decode(inputs[i % len(inputs)], LIMITS)
    mean = (time.perf_counter() - start) / count
    assert mean < 1e-3, f"mean decode time {mean * 1e3:.3f} ms"


def test_codec_modules_import_neither_zmq_nor_pickle() -> None:
    import netgear.wire
    import netgear.wire.values

    for module in (native, netgear.wire, netgear.wire.values):
        with open(module.__file__, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        imported |= {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        }
        assert not {name.split(".")[0] for name in imported} & {"zmq", "pickle", "marshal", "dill"}


@pytest.mark.parametrize("colorspace,shape", [("BGR", (48, 64, 3)), ("GRAY", (48, 64)), ("RGBA", (16, 16, 4))])
def test_jpeg_frames_travel_encoded_and_are_checked_not_decoded(colorspace, shape) -> None:
    from netgear import codecs
    from netgear.wire import Encoded

    frame = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    settings = codecs.JpegSettings(colorspace=colorspace)
    data = codecs.encode_jpeg(frame, settings)
    parts = encode_frame(
        seq=1, sent_ns=2, server_id="a", session=3, topic="t", frame=None, limits=LIMITS,
        encoded=Encoded("jpeg", memoryview(data), colorspace, shape),
    )
    got = decode(parts, LIMITS)
    assert got.frame is None and got.encoded is not None
    assert bytes(got.encoded.data) == data and got.encoded.shape == shape
    image = codecs.decode_jpeg(got.encoded.data, colorspace, shape, fastdct=False, fastupsample=False)
    assert image.shape == shape and image.dtype == np.uint8 and image.flags.writeable
    assert np.abs(image.astype(int) - frame.astype(int)).mean() < 80  # lossy, random content
