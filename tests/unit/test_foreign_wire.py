"""Unit tests of the foreign wire formats (vidgear NetGear, imagezmq) and the registry.

Golden messages are built exactly as the real libraries build them (pyzmq ``send_json``
is ``json.dumps(obj).encode()`` with the standard defaults, keys in the libraries'
insertion order). When vidgear and imagezmq are installed (test-only dependencies), their
real classes are also run against the codecs over loopback TCP, in both directions: the
bytes they send are decoded bit-exact, and what the codecs encode is accepted by their
hubs.
"""

from __future__ import annotations

import ast
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from netgear import codecs
from netgear.errors import MessageTooLarge, ProtocolError
from netgear.wire import (
    DTYPES,
    NO_MESSAGE,
    Ack,
    Decoded,
    Encoded,
    Kind,
    Limits,
    _foreign,
    formats,
    imagezmq,
    native,
    vidgear,
)
from netgear.wire.native import REASONS

try:
    from vidgear.gears import NetGear as VidGear
except Exception:  # pragma: no cover - vidgear is a test-only dependency
    VidGear = None
try:
    import imagezmq as real_imagezmq
except Exception:  # pragma: no cover - imagezmq is a test-only dependency
    real_imagezmq = None

pytestmark = pytest.mark.timeout(60)
needs_vidgear = pytest.mark.skipif(VidGear is None, reason="vidgear is not installed")
needs_imagezmq = pytest.mark.skipif(real_imagezmq is None, reason="imagezmq is not installed")

LIMITS = Limits()
SMALL = Limits(max_message_bytes=64, max_frame_bytes=64, max_ndim=2)
RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)
SMOOTH = np.dstack([np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))] * 3)


def send_json_bytes(obj: Any) -> bytes:
    """What pyzmq's ``send_json(obj)`` puts on the wire (checked in a test below)."""
    return json.dumps(obj).encode("utf-8")


def vidgear_frame(
    frame: np.ndarray | bytes,
    message: Any = None,
    *,
    port: Any = None,
    pattern: int = 1,
    colorspace: str | None = None,
) -> list[bytes]:
    """The parts of vidgear 0.3.x ``NetGear.send()``, built as netgear.py builds them."""
    msg_dict: dict[str, Any] = {"port": port} if port is not None else {}
    jpeg = colorspace is not None
    msg_dict.update(
        {
            "terminate_flag": False,
            "compression": {"dct": True, "ups": False, "colorspace": colorspace} if jpeg else False,
            "message": message,
            "pattern": str(pattern),
            "dtype": "" if jpeg else str(frame.dtype),
            "shape": "" if jpeg else frame.shape,
        }
    )
    return [send_json_bytes(msg_dict), frame if jpeg else frame.tobytes()]


def vidgear_close(port: Any = None) -> list[bytes]:
    """The part of vidgear 0.3.x ``NetGear.close()``."""
    term = {"terminate_flag": True, "port": port} if port is not None else {"terminate_flag": True}
    return [send_json_bytes(term)]


def imagezmq_image(msg: Any, image: np.ndarray) -> list[bytes]:
    """The parts of imagezmq ``send_image(msg, image)``."""
    return [send_json_bytes(dict(msg=msg, dtype=str(image.dtype), shape=image.shape)), image.tobytes()]  # noqa: C408 (as imagezmq)


def imagezmq_jpg(msg: Any, jpg: bytes) -> list[bytes]:
    """The parts of imagezmq ``send_jpg(msg, jpg)``."""
    return [send_json_bytes(dict(msg=msg)), jpg]  # noqa: C408 (as imagezmq)


def jpeg(frame: np.ndarray, colorspace: str = "BGR", subsampling: str = "422") -> bytes:
    """A JPEG as vidgear encodes it (simplejpeg, 4:2:2; GRAY frames as 3-D)."""
    import simplejpeg

    frame = np.ascontiguousarray(frame)  # as vidgear's send() does first
    if colorspace == "GRAY":
        return simplejpeg.encode_jpeg(frame[:, :, None] if frame.ndim == 2 else frame, colorspace="GRAY")
    return simplejpeg.encode_jpeg(frame, colorspace=colorspace, colorsubsampling=subsampling)


def cv2_jpeg(frame: np.ndarray) -> bytes:
    """A JPEG as imagezmq users make it."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", frame)
    assert ok
    return buffer.tobytes()


def png(frame: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", frame)[1].tobytes()


def writable(parts: list[Any]) -> list[bytearray]:
    """What pyzmq hands a receiver: writable buffers."""
    return [bytearray(part) for part in parts]


def close_enough(image: np.ndarray, original: np.ndarray, tolerance: float = 12.0) -> bool:
    return image.shape == original.shape and float(np.abs(image.astype(int) - original.astype(int)).mean()) < tolerance


def reason_of(call: Callable[[], Any]) -> str:
    with pytest.raises(ProtocolError) as info:
        call()
    assert info.value.reason in REASONS
    return info.value.reason


# ------------------------------------------------------------------ JSON settings


def test_pyzmq_send_json_is_json_dumps_with_defaults() -> None:
    obj = {"msg": "ü", "shape": (2, 3), "nan": float("nan"), "nested": {"a": [1, None, True]}}
    assert zmq.utils.jsonapi.dumps(obj) == send_json_bytes(obj)
    with zmq.Context() as ctx, ctx.socket(zmq.PAIR) as a, ctx.socket(zmq.PAIR) as b:
        a.bind("inproc://send-json")
        b.connect("inproc://send-json")
        a.send_json(obj)
        assert b.recv() == b'{"msg": "\\u00fc", "shape": [2, 3], "nan": NaN, "nested": {"a": [1, null, true]}}'


def test_dump_object_matches_json_dumps() -> None:
    values = {"port": 5566, "terminate_flag": False, "message": {"k": [1.5, "x"]}, "shape": [1, 2]}
    pairs = [(key, _foreign.dumps(value)) for key, value in values.items()]
    assert _foreign.dump_object(pairs) == send_json_bytes(values)
    assert _foreign.dump_object([]) == send_json_bytes({})


# ------------------------------------------------------------------------- vidgear


def test_vidgear_golden_frame_multiserver() -> None:
    frame = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    golden = vidgear_frame(frame, {"a": [1, 2.5, None], "t": (1, 2)}, port=5566)
    assert golden[0] == (
        b'{"port": 5566, "terminate_flag": false, "compression": false, '
        b'"message": {"a": [1, 2.5, null], "t": [1, 2]}, "pattern": "1", '
        b'"dtype": "uint8", "shape": [2, 4, 3]}'
    )
    parts = vidgear.encode_frame(frame=frame, message={"a": [1, 2.5, None], "t": (1, 2)}, port=5566, limits=LIMITS)
    assert [bytes(part) for part in parts] == golden
    got = vidgear.decode(writable(golden), LIMITS)
    assert (got.kind, got.server_id, got.topic, got.seq, got.session, got.sent_ns) == (
        Kind.FRAME, "vidgear:5566", "5566", 0, 0, 0
    )
    assert got.has_message and got.message == {"a": [1, 2.5, None], "t": [1, 2]}
    assert got.frame.dtype == np.uint8 and np.array_equal(got.frame, frame)
    assert got.frame.flags.writeable and got.encoded is None
    assert got.nbytes == len(golden[0]) + 24


def test_vidgear_golden_single_pair_without_message() -> None:
    frame = np.array([[0.5, -1.0]], dtype=np.float32)
    golden = vidgear_frame(frame, pattern=0)
    assert golden[0] == (
        b'{"terminate_flag": false, "compression": false, "message": null, "pattern": "0", '
        b'"dtype": "float32", "shape": [1, 2]}'
    )
    assert [bytes(p) for p in vidgear.encode_frame(frame=frame, pattern=0, limits=LIMITS)] == golden
    got = vidgear.decode(golden, LIMITS)
    assert (got.server_id, got.topic, got.has_message, got.message) == ("vidgear", "vidgear", False, None)
    assert got.frame.flags.writeable and np.array_equal(got.frame, frame)


@pytest.mark.parametrize("message", [0, "", [], {}, False, 1.5, "text", [1, "a", None]])
def test_vidgear_falsy_messages_are_messages(message: Any) -> None:
    got = vidgear.decode(vidgear_frame(IMAGE, message, port="5566"), LIMITS)
    assert got.has_message and got.message == message and type(got.message) is type(message)
    assert got.topic == "5566" and got.server_id == "vidgear:5566"


@pytest.mark.parametrize("colorspace,shape", [("BGR", (48, 64, 3)), ("RGB", (48, 64, 3)), ("GRAY", (48, 64)), ("BGRA", (48, 64, 4))])
def test_vidgear_golden_jpeg(colorspace: str, shape: tuple[int, ...]) -> None:
    frame = SMOOTH if len(shape) == 3 and shape[2] == 3 else (
        SMOOTH[:, :, 0] if len(shape) == 2 else np.dstack([SMOOTH, SMOOTH[:, :, :1]])
    )
    data = jpeg(frame, colorspace)
    golden = vidgear_frame(data, "m", port=5567, pattern=2, colorspace=colorspace)
    assert golden[0] == (
        b'{"port": 5567, "terminate_flag": false, "compression": {"dct": true, "ups": false, '
        b'"colorspace": "' + colorspace.encode() + b'"}, "message": "m", "pattern": "2", "dtype": "", "shape": ""}'
    )
    encoded = Encoded("jpeg", memoryview(data), colorspace, shape)
    parts = vidgear.encode_frame(encoded=encoded, message="m", port=5567, pattern=2, limits=LIMITS)
    assert [bytes(p) for p in parts] == golden
    got = vidgear.decode(writable(golden), LIMITS)
    assert got.frame is None and got.encoded is not None
    assert (got.encoded.codec, got.encoded.colorspace, got.encoded.shape) == ("jpeg", colorspace, shape)
    assert bytes(got.encoded.data) == data
    image = codecs.decode_jpeg(got.encoded.data, colorspace, shape, fastdct=True, fastupsample=False)
    assert image.shape == shape and close_enough(image[..., :3], frame[..., :3])  # JPEG has no alpha


def test_vidgear_golden_close() -> None:
    assert vidgear_close(5566) == [b'{"terminate_flag": true, "port": 5566}']
    assert vidgear_close() == [b'{"terminate_flag": true}']
    assert vidgear.encode_close(port=5566) == vidgear_close(5566)
    assert vidgear.encode_close(port="5566") == vidgear_close("5566")
    assert vidgear.encode_close() == vidgear_close()
    multi = vidgear.decode(vidgear_close(5566), LIMITS)
    single = vidgear.decode(vidgear_close(), LIMITS)
    assert (multi.kind, multi.server_id, multi.topic) == (Kind.BYE, "vidgear:5566", "5566")
    assert (single.kind, single.server_id, single.topic) == (Kind.BYE, "vidgear", "vidgear")
    assert multi.frame is None and not multi.has_message


def test_vidgear_dtype_names() -> None:
    """Both str(dtype) (what vidgear sends) and dtype.str are understood, in any byte order."""
    for name in sorted(DTYPES):
        dtype = np.dtype(name)
        frame = np.zeros((2, 3), dtype=dtype)
        for sent in {str(dtype), dtype.str}:
            parts = [send_json_bytes({**json.loads(vidgear_frame(frame)[0]), "dtype": sent}), frame.tobytes()]
            got = vidgear.decode(parts, LIMITS)
            assert got.frame.dtype == dtype and got.frame.shape == (2, 3)


def test_vidgear_any_whitelisted_array_round_trips_bit_exact() -> None:
    for name in sorted(DTYPES):
        array = RNG.integers(0, 2, (3, 2, 2)).astype(name)
        for parts in (vidgear.encode_frame(frame=array, limits=LIMITS), vidgear_frame(array)):
            got = vidgear.decode([bytes(p) for p in parts], LIMITS).frame
            assert got.dtype == array.dtype and got.tobytes() == array.tobytes()


def test_vidgear_frames_are_zero_copy_when_writable() -> None:
    parts = writable(vidgear_frame(IMAGE))
    got = vidgear.decode(parts, LIMITS).frame
    assert np.shares_memory(got, np.frombuffer(parts[1], np.uint8))
    got_ro = vidgear.decode(vidgear_frame(IMAGE), LIMITS).frame  # bytes: copied once
    assert got_ro.flags.writeable
    non_contiguous = IMAGE[:, ::-1]
    parts = vidgear.encode_frame(frame=non_contiguous, limits=LIMITS)
    assert np.array_equal(vidgear.decode([bytes(p) for p in parts], LIMITS).frame, non_contiguous)
    contiguous = vidgear.encode_frame(frame=IMAGE, limits=LIMITS)[1]
    assert np.shares_memory(np.frombuffer(contiguous, np.uint8), IMAGE)


def test_vidgear_reply_forms() -> None:
    frame = vidgear.decode(vidgear_frame(IMAGE, port=5566), LIMITS)
    assert vidgear.reply(frame) == [b'{"return_type": "NoneType", "data": null}']
    assert vidgear.reply(frame, None) == [b'{"return_type": "NoneType", "data": null}']
    assert vidgear.reply(frame, {"box": [1, 2]}) == [b'{"return_type": "dict", "data": {"box": [1, 2]}}']
    assert vidgear.reply(frame, "hi") == [b'{"return_type": "str", "data": "hi"}']
    assert vidgear.reply(frame, 0) == [b'{"return_type": "int", "data": 0}']
    array = np.arange(6, dtype=np.uint16).reshape(2, 3)
    meta, payload = vidgear.reply(frame, array)
    assert meta == send_json_bytes(
        {"return_type": "ndarray", "compression": False, "array_dtype": "uint16", "array_shape": [2, 3], "data": None}
    )
    assert bytes(payload) == array.tobytes()
    bye = vidgear.decode(vidgear_close(5566), LIMITS)
    assert vidgear.reply(bye) == [b"Termination signal successfully received at client!"]
    assert vidgear.reply(vidgear.decode(vidgear_close(), LIMITS)) == [
        b"Termination signal successfully received at Client's end!"
    ]
    with pytest.raises(TypeError):
        vidgear.reply(frame, {1, 2})
    with pytest.raises(MessageTooLarge):
        vidgear.reply(frame, "x" * 100, limits=SMALL)


def test_vidgear_decode_reply() -> None:
    assert_ack(vidgear.decode_reply([b"Data received on device: IYZKPPPU !"], LIMITS), None, False)
    assert_ack(vidgear.decode_reply([b"Termination signal successfully received at client!"], LIMITS), None, False)
    assert_ack(vidgear.decode_reply([b'{"return_type": "NoneType", "data": null}'], LIMITS), None, True)
    assert_ack(vidgear.decode_reply([b'{"return_type": "dict", "data": {"box": [1, 2]}}'], LIMITS), {"box": [1, 2]}, True)
    raw = [
        send_json_bytes({"return_type": "ndarray", "compression": False, "array_dtype": "uint8", "array_shape": [12, 16, 3], "data": None}),
        IMAGE.tobytes(),
    ]
    ack = vidgear.decode_reply(raw, LIMITS)
    assert np.array_equal(ack.reply, IMAGE) and ack.reply.flags.writeable
    compressed = [
        send_json_bytes({
            "return_type": "ndarray",
            "compression": {"dct": True, "ups": False, "colorspace": "BGR"},
            "array_dtype": "",
            "array_shape": "",
            "data": None,
        }),
        jpeg(SMOOTH),
    ]
    ack = vidgear.decode_reply(compressed, LIMITS)
    assert close_enough(ack.reply, SMOOTH) and ack.has_reply
    # our own reply() is what our decode_reply() reads
    frame = vidgear.decode(vidgear_frame(IMAGE), LIMITS)
    assert np.array_equal(vidgear.decode_reply([bytes(p) for p in vidgear.reply(frame, IMAGE)], LIMITS).reply, IMAGE)
    assert vidgear.decode_reply(vidgear.reply(frame, [1, "a"]), LIMITS).reply == [1, "a"]


def assert_ack(ack: Ack, reply: Any, has_reply: bool) -> None:
    assert isinstance(ack, Ack) and ack.seq == 0
    assert ack.reply == reply and ack.has_reply is has_reply


def test_vidgear_encode_errors() -> None:
    with pytest.raises(ValueError):
        vidgear.encode_frame(limits=LIMITS)  # no frame: vidgear cannot carry a message alone
    with pytest.raises(ValueError):
        vidgear.encode_frame(frame=IMAGE, encoded=Encoded("jpeg", memoryview(b""), "BGR", (1, 1, 3)), limits=LIMITS)
    with pytest.raises(TypeError):
        vidgear.encode_frame(frame=IMAGE.astype(np.complex64), limits=LIMITS)
    with pytest.raises(TypeError):
        vidgear.encode_frame(frame=[1, 2], limits=LIMITS)
    with pytest.raises(TypeError):
        vidgear.encode_frame(frame=IMAGE, message={1, 2}, limits=LIMITS)
    with pytest.raises(TypeError):
        vidgear.encode_frame(frame=IMAGE, message=IMAGE, limits=LIMITS)
    with pytest.raises(MessageTooLarge):
        vidgear.encode_frame(frame=np.zeros((2, 2), np.uint8), message="x" * 100, limits=SMALL)
    with pytest.raises(MessageTooLarge):
        vidgear.encode_frame(frame=np.zeros((10, 10), np.uint8), limits=SMALL)
    with pytest.raises(ValueError):
        vidgear.encode_frame(frame=np.zeros((1, 1, 1)), limits=SMALL)
    for port in (True, -1, 70000, "", "x" * 40, 1.5):
        with pytest.raises(ValueError):
            vidgear.encode_frame(frame=IMAGE, port=port, limits=LIMITS)
    with pytest.raises(ValueError):
        vidgear.encode_frame(frame=IMAGE, pattern=3, limits=LIMITS)


# ------------------------------------------------------------------------ imagezmq


def test_imagezmq_golden_image() -> None:
    image = np.arange(6, dtype=np.uint16).reshape(2, 3)
    golden = imagezmq_image("rpi-1", image)
    assert golden[0] == b'{"msg": "rpi-1", "dtype": "uint16", "shape": [2, 3]}'
    assert [bytes(p) for p in imagezmq.encode_frame(frame=image, message="rpi-1", limits=LIMITS)] == golden
    got = imagezmq.decode(writable(golden), LIMITS)
    assert (got.kind, got.server_id, got.topic, got.message, got.has_message) == (Kind.FRAME, "rpi-1", "rpi-1", "rpi-1", True)
    assert (got.seq, got.session, got.sent_ns) == (0, 0, 0)
    assert got.frame.flags.writeable and np.array_equal(got.frame, image) and got.frame.dtype == np.uint16


def test_imagezmq_golden_jpg() -> None:
    data = cv2_jpeg(SMOOTH)
    golden = imagezmq_jpg("rpi-2", data)
    assert golden[0] == b'{"msg": "rpi-2"}'
    encoded = Encoded("jpeg", memoryview(data), "BGR", SMOOTH.shape)
    assert [bytes(p) for p in imagezmq.encode_frame(encoded=encoded, message="rpi-2", limits=LIMITS)] == golden
    got = imagezmq.decode(golden, LIMITS)
    assert got.frame is None and got.server_id == "rpi-2" and got.message == "rpi-2"
    assert (got.encoded.colorspace, got.encoded.shape) == ("BGR", (48, 64, 3))
    image = codecs.decode_jpeg(got.encoded.data, "BGR", got.encoded.shape, fastdct=False, fastupsample=False)
    assert close_enough(image, SMOOTH)
    gray = imagezmq.decode(imagezmq_jpg("g", cv2_jpeg(SMOOTH[:, :, 0])), LIMITS)
    assert (gray.encoded.colorspace, gray.encoded.shape) == ("GRAY", (48, 64))


@pytest.mark.parametrize(
    "msg,ident",
    [("cam", "cam"), ({"name": "x"}, "imagezmq"), (None, "imagezmq"), ("", "imagezmq"), ("a\x00b", "imagezmq"),
     ("x" * 257, "imagezmq"), (7, "imagezmq"), ("\ud800", "imagezmq")],
)
def test_imagezmq_sender_name_is_message_and_id(msg: Any, ident: str) -> None:
    got = imagezmq.decode(imagezmq_image(msg, IMAGE), LIMITS)
    assert got.has_message and got.message == msg
    assert got.server_id == ident and got.topic == ident


def test_imagezmq_default_msg_and_errors() -> None:
    assert imagezmq.encode_frame(frame=IMAGE, limits=LIMITS)[0].startswith(b'{"msg": "NoName", ')
    with pytest.raises(ValueError):
        imagezmq.encode_frame(limits=LIMITS)
    with pytest.raises(TypeError):
        imagezmq.encode_frame(frame=IMAGE, message=object(), limits=LIMITS)
    with pytest.raises(MessageTooLarge):
        imagezmq.encode_frame(frame=np.zeros((10, 10), np.uint8), limits=SMALL)
    with pytest.raises(MessageTooLarge):
        imagezmq.encode_frame(frame=np.zeros((2, 2), np.uint8), message="x" * 100, limits=SMALL)
    assert imagezmq.encode_close(port=5) is None


def test_imagezmq_reply_and_decode_reply() -> None:
    frame = imagezmq.decode(imagezmq_image("cam", IMAGE), LIMITS)
    assert imagezmq.reply(frame) == [b"OK"]
    assert imagezmq.reply(frame, None) == [b"OK"]
    assert imagezmq.reply(frame, b"STOP") == [b"STOP"]
    assert imagezmq.reply(frame, "ok ü") == ["ok ü".encode()]
    with pytest.raises(TypeError):
        imagezmq.reply(frame, {"a": 1})
    with pytest.raises(MessageTooLarge):
        imagezmq.reply(frame, b"x" * 65, limits=SMALL)
    assert_ack(imagezmq.decode_reply([b"OK"], LIMITS), b"OK", True)
    assert reason_of(lambda: imagezmq.decode_reply([b"OK", b"x"], LIMITS)) == "bad_parts"
    assert reason_of(lambda: imagezmq.decode_reply([b"x" * 65], SMALL)) == "oversize"


# ------------------------------------------------------------------------ registry


def test_detect_picks_each_format() -> None:
    native_parts = native.encode_frame(
        seq=1, sent_ns=1, server_id="a", session=1, topic="t", frame=IMAGE, limits=LIMITS
    )
    assert formats.detect(native_parts) is native
    assert formats.detect(vidgear_frame(IMAGE, port=5566)) is vidgear
    assert formats.detect(vidgear_frame(IMAGE)) is vidgear
    assert formats.detect(vidgear_close()) is vidgear
    assert formats.detect(vidgear_close(5566)) is vidgear
    sorted_keys = json.dumps(json.loads(vidgear_frame(IMAGE)[0]), sort_keys=True).encode()
    assert formats.detect([sorted_keys, b""]) is vidgear
    assert formats.detect(imagezmq_image("x", IMAGE)) is imagezmq
    assert formats.detect(imagezmq_jpg("x", b"")) is imagezmq
    assert formats.detect([json.dumps({"msg": "x", "dtype": "uint8", "shape": [1]}, sort_keys=True).encode(), b""]) is imagezmq
    assert formats.detect([b' \n{ "msg" : 1}', b""]) is imagezmq
    for garbage in ([], [b""], [b"{}"], [b'{"other": 1}'], [b"[1]"], [b"\xabN"], None, 5, [object()], [b'{"msg"']):
        assert formats.detect(garbage) is native  # refused there with a counted reason
    assert [formats.name(f) for f in formats.FORMATS] == ["native", "vidgear", "imagezmq"]
    assert formats.BY_NAME == {"native": native, "vidgear": vidgear, "imagezmq": imagezmq}
    assert [formats.sequenced(f) for f in formats.FORMATS] == [True, False, False]


def test_garbage_detected_as_native_is_counted_as_bad_magic() -> None:
    for garbage in ([b"{}"], [b"hello"], [b'{"other": 1}', b""]):
        fmt = formats.detect(garbage)
        assert reason_of(lambda fmt=fmt, parts=garbage: fmt.decode(parts, LIMITS)) == "bad_magic"


def test_reply_per_format_and_pattern() -> None:
    nat = native.decode(
        native.encode_frame(seq=4, sent_ns=1, server_id="a", session=1, topic="t", frame=None, limits=LIMITS),
        LIMITS,
    )
    vid = vidgear.decode(vidgear_frame(IMAGE, port=1), LIMITS)
    bye = vidgear.decode(vidgear_close(1), LIMITS)
    izq = imagezmq.decode(imagezmq_image("a", IMAGE), LIMITS)
    kw = {"limits": LIMITS}
    assert formats.reply(native, nat, "r", pattern=1, **kw) == native.encode_ack(4, "r", limits=LIMITS)
    assert formats.reply(native, nat, pattern=0, **kw) is None
    assert formats.reply(native, nat, pattern=2, **kw) is None
    assert formats.reply(vidgear, vid, pattern=1, **kw) == [b'{"return_type": "NoneType", "data": null}']
    assert formats.reply(vidgear, vid, pattern=0, **kw) == [b'{"return_type": "NoneType", "data": null}']
    assert formats.reply(vidgear, vid, pattern=2, **kw) is None
    assert formats.reply(vidgear, bye, pattern=0, **kw) == [b"Termination signal successfully received at client!"]
    assert formats.reply(imagezmq, izq, pattern=1, **kw) == [b"OK"]
    assert formats.reply(imagezmq, izq, pattern=2, **kw) is None
    native_bye = native.decode(
        native.encode_control(Kind.BYE, seq=4, sent_ns=1, server_id="a", session=1, topic="t"), LIMITS
    )
    assert formats.reply(native, native_bye, pattern=1, **kw) is None


def test_format_traits() -> None:
    table = {
        f: (formats.heartbeats(f), formats.publisher_binds(f), [formats.replies(f, p) for p in (0, 1, 2)])
        for f in formats.FORMATS
    }
    assert table == {
        native: (True, False, [False, True, False]),
        vidgear: (False, False, [True, True, False]),
        imagezmq: (False, True, [False, True, False]),
    }
    assert [formats.refusal(f, 1) for f in formats.FORMATS] == [
        None, [b'{"return_type": "NoneType", "data": null}'], [b"OK"]
    ]
    assert [formats.refusal(f, 0) for f in formats.FORMATS] == [None, [b'{"return_type": "NoneType", "data": null}'], None]
    assert [formats.refusal(f, 2) for f in formats.FORMATS] == [None, None, None]


def test_wrap_envelopes() -> None:
    for fmt in formats.FORMATS:
        assert formats.wrap(fmt, 1, [b"h", b"p"], topic=b"t\x00") == [b"", b"h", b"p"]
        assert formats.wrap(fmt, 0, [b"h", b"p"], topic=b"t\x00") == [b"h", b"p"]
    assert formats.wrap(native, 2, [b"h"], topic=b"t\x00") == [b"t\x00", b"h"]
    assert formats.wrap(vidgear, 2, [b"h"], topic=b"t\x00") == [b"h"]
    assert formats.wrap(imagezmq, 2, [b"h"], topic=b"t\x00") == [b"h"]
    for fmt in formats.FORMATS:  # what a server wraps, a hub unwraps
        for pattern in (0, 2):
            parts = [b"{...}" if fmt is not native else native.MAGIC, b"p"]
            assert formats.unwrap(pattern, formats.wrap(fmt, pattern, parts, topic=b"5566\x00"))[1] == parts
        assert formats.unwrap(1, [b"rid", *formats.wrap(fmt, 1, [b"h"], topic=b"")]) == ([b"rid", b""], [b"h"])


def test_unwrap_envelopes() -> None:
    assert formats.unwrap(1, [b"rid", b"", b"h", b"p"]) == ([b"rid", b""], [b"h", b"p"])
    # vidgear's REQ sockets set REQ_CORRELATE: a 4-byte request id before the delimiter
    assert formats.unwrap(1, [b"rid", b"\x01\x02\x03\x04", b"", b"h"]) == ([b"rid", b"\x01\x02\x03\x04", b""], [b"h"])
    assert formats.unwrap(1, [b"rid", b"h"]) == ([b"rid"], [])
    assert formats.unwrap(1, [b"rid"] + [b"x"] * 20 + [b"", b"h"]) == ([b"rid"], [])
    assert formats.unwrap(2, [b"5566\x00", b"h", b"p"]) == ([b"5566\x00"], [b"h", b"p"])
    assert formats.unwrap(2, [b"\x00", b"h"]) == ([b"\x00"], [b"h"])
    assert formats.unwrap(2, [b'{"msg": 1}', b"p"]) == ([], [b'{"msg": 1}', b"p"])
    assert formats.unwrap(2, [b"h\x00"]) == ([], [b"h\x00"])
    assert formats.unwrap(0, [b"h", b"p"]) == ([], [b"h", b"p"])
    odd = [object(), object()]
    assert formats.unwrap(1, odd) == ([odd[0]], [])
    assert formats.unwrap(1, []) == ([], [])


# ---------------------------------------------------------------------- rejections


def vmeta(**changes: Any) -> bytes:
    """A vidgear frame header (2x2 uint8, port 5566) with some keys changed (DROP removes)."""
    meta = json.loads(vidgear_frame(np.zeros((2, 2), np.uint8), port=5566)[0])
    meta.update(changes)
    return send_json_bytes({k: v for k, v in meta.items() if v is not DROP})


DROP = object()
P4 = bytes(4)
BGR_JPEG = jpeg(SMOOTH)
JPEG_META = {"compression": {"dct": True, "ups": False, "colorspace": "BGR"}, "dtype": "", "shape": ""}


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real grayscale JPEG whose SOF0 header is patched to declare width x height."""
    data = bytearray(jpeg(np.zeros((8, 8), np.uint8), "GRAY"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


VIDGEAR_REJECTS: list[tuple[str, list[Any], str, Limits]] = [
    ("no parts", [], "bad_parts", LIMITS),
    ("three parts", [vmeta(), P4, P4], "bad_parts", LIMITS),
    ("frame without payload", [vmeta()], "bad_parts", LIMITS),
    ("goodbye with payload", [b'{"terminate_flag": true}', P4], "bad_parts", LIMITS),
    ("part not a buffer", [vmeta(), 5], "bad_parts", LIMITS),
    ("not JSON", [b"\x00\x01", P4], "bad_magic", LIMITS),
    ("JSON array", [b"[1, 2]", P4], "bad_magic", LIMITS),
    ("header over limit", [vmeta(message="x" * 5000), P4], "oversize", Limits(64, 64)),
    ("message over limit", [vmeta(message="x" * 63), P4], "oversize", Limits(64, 64)),
    ("invalid JSON", [b'{"terminate_flag": fals', P4], "bad_header", LIMITS),
    ("not UTF-8", [b'{"terminate_flag": false, "x": "\xff"}', P4], "bad_header", LIMITS),
    ("repeated key", [vmeta()[:-1] + b', "dtype": "uint8"}', P4], "bad_header", LIMITS),
    ("too deep", [vmeta(message=json.loads("[" * 300 + "]" * 300)), P4], "bad_header", LIMITS),
    ("far too deep", [b'{"terminate_flag": false, "message": ' + b"[" * 100000 + b"]" * 100000 + b"}", P4], "bad_header", LIMITS),
    ("too many containers", [vmeta(message=[[]] * 70000), P4], "bad_header", LIMITS),
    ("huge int", [vmeta()[:-1] + b', "x": ' + b"9" * 5000 + b"}", P4], "bad_header", LIMITS),
    ("missing key", [vmeta(pattern=DROP), P4], "bad_header", LIMITS),
    ("extra key", [vmeta(extra=1), P4], "bad_header", LIMITS),
    ("terminate_flag not bool", [vmeta(terminate_flag=0), P4], "bad_header", LIMITS),
    ("goodbye with extra key", [b'{"terminate_flag": true, "message": null}'], "bad_header", LIMITS),
    ("bad pattern", [vmeta(pattern="7"), P4], "bad_header", LIMITS),
    ("pattern int", [vmeta(pattern=1), P4], "bad_header", LIMITS),
    ("port bool", [vmeta(port=True), P4], "bad_header", LIMITS),
    ("port float", [vmeta(port=5566.0), P4], "bad_header", LIMITS),
    ("port too large", [vmeta(port=70000), P4], "bad_header", LIMITS),
    ("port long text", [vmeta(port="5" * 40), P4], "bad_header", LIMITS),
    ("port with NUL", [vmeta(port="55\x0066"), P4], "bad_header", LIMITS),
    ("compression true", [vmeta(compression=True), P4], "bad_header", LIMITS),
    ("compression keys", [vmeta(**{**JPEG_META, "compression": {"colorspace": "BGR"}}), BGR_JPEG], "bad_header", LIMITS),
    ("compression dct", [vmeta(**{**JPEG_META, "compression": {"dct": 1, "ups": False, "colorspace": "BGR"}}), BGR_JPEG], "bad_header", LIMITS),
    ("jpeg with dtype", [vmeta(**{**JPEG_META, "dtype": "uint8"}), BGR_JPEG], "bad_header", LIMITS),
    ("dtype not str", [vmeta(dtype=8), P4], "bad_header", LIMITS),
    ("colorspace unknown", [vmeta(**{**JPEG_META, "compression": {"dct": True, "ups": False, "colorspace": "XRGB"}}), BGR_JPEG], "bad_codec", LIMITS),
    ("colorspace CMYK", [vmeta(**{**JPEG_META, "compression": {"dct": True, "ups": False, "colorspace": "CMYK"}}), BGR_JPEG], "bad_codec", LIMITS),
    ("dtype object", [vmeta(dtype="object"), P4], "bad_dtype", LIMITS),
    ("dtype complex", [vmeta(dtype="complex64"), bytes(32)], "bad_dtype", LIMITS),
    ("dtype unicode", [vmeta(dtype="<U1"), bytes(16)], "bad_dtype", LIMITS),
    ("dtype long double", [vmeta(dtype="float128"), bytes(64)], "bad_dtype", LIMITS),
    ("dtype empty", [vmeta(dtype=""), P4], "bad_dtype", LIMITS),
    ("shape text", [vmeta(shape="2,2"), P4], "bad_shape", LIMITS),
    ("shape negative", [vmeta(shape=[-2, -2]), P4], "bad_shape", LIMITS),
    ("shape float", [vmeta(shape=[2.0, 2]), P4], "bad_shape", LIMITS),
    ("shape bool", [vmeta(shape=[True, 4]), P4], "bad_shape", LIMITS),
    ("shape too many dims", [vmeta(shape=[1, 1, 1, 1, 4]), P4], "bad_shape", LIMITS),
    ("shape absurd zero-size", [vmeta(shape=[0, 2**62, 2**62]), b""], "bad_shape", LIMITS),
    ("frame over limit", [vmeta(shape=[10, 10]), bytes(100)], "oversize", Limits(1 << 20, 64)),
    ("size mismatch", [vmeta(), bytes(5)], "size_mismatch", LIMITS),
    ("bool payload", [vmeta(dtype="bool"), b"\x00\x01\x02\x00"], "bad_payload", LIMITS),
    ("jpeg garbage", [vmeta(**JPEG_META), b"\xff\xd8garbage"], "bad_jpeg", LIMITS),
    ("jpeg is a PNG", [vmeta(**JPEG_META), png(SMOOTH)], "bad_jpeg", LIMITS),
    ("jpeg over pixel limit", [vmeta(**JPEG_META), _jpeg_declaring(20000, 20000)], "oversize", LIMITS),
    ("jpeg bytes over limit", [vmeta(**JPEG_META), BGR_JPEG], "oversize", Limits(1 << 20, 64)),
]


@pytest.mark.parametrize("case", VIDGEAR_REJECTS, ids=[case[0] for case in VIDGEAR_REJECTS])
def test_vidgear_rejections(case: tuple[str, list[Any], str, Limits]) -> None:
    _, parts, reason, limits = case
    assert reason_of(lambda: vidgear.decode(parts, limits)) == reason


def izmeta(**changes: Any) -> bytes:
    meta = {"msg": "cam", "dtype": "uint8", "shape": [2, 2]}
    meta.update(changes)
    return send_json_bytes({k: v for k, v in meta.items() if v is not DROP})


IMAGEZMQ_REJECTS: list[tuple[str, list[Any], str, Limits]] = [
    ("one part", [izmeta()], "bad_parts", LIMITS),
    ("three parts", [izmeta(), P4, P4], "bad_parts", LIMITS),
    ("not JSON", [b"cam", P4], "bad_magic", LIMITS),
    ("header over limit", [izmeta(msg="x" * 5000), P4], "oversize", Limits(64, 64)),
    ("message over limit", [izmeta(msg=["x" * 30, "y" * 30]), P4], "oversize", Limits(64, 64)),
    ("invalid JSON", [b'{"msg": ', P4], "bad_header", LIMITS),
    ("no msg", [izmeta(msg=DROP), P4], "bad_header", LIMITS),
    ("extra key", [izmeta(jpg=True), P4], "bad_header", LIMITS),
    ("dtype without shape", [izmeta(shape=DROP), P4], "bad_header", LIMITS),
    ("dtype not str", [izmeta(dtype=None), P4], "bad_header", LIMITS),
    ("bad dtype", [izmeta(dtype="object"), P4], "bad_dtype", LIMITS),
    ("bad shape", [izmeta(shape={"h": 2}), P4], "bad_shape", LIMITS),
    ("too many dims", [izmeta(shape=[1, 1, 4]), P4], "bad_shape", SMALL),
    ("size mismatch", [izmeta(), bytes(3)], "size_mismatch", LIMITS),
    ("frame over limit", [izmeta(shape=[10, 10]), bytes(100)], "oversize", SMALL),
    ("bool payload", [izmeta(dtype="bool"), b"\x00\x01\x07\x00"], "bad_payload", LIMITS),
    ("jpg garbage", [b'{"msg": "cam"}', b"00"], "bad_jpeg", LIMITS),
    ("jpg is a PNG", [b'{"msg": "cam"}', png(SMOOTH)], "bad_jpeg", LIMITS),
    ("jpg over pixel limit", [b'{"msg": "cam"}', _jpeg_declaring(30000, 30000)], "oversize", LIMITS),
]


@pytest.mark.parametrize("case", IMAGEZMQ_REJECTS, ids=[case[0] for case in IMAGEZMQ_REJECTS])
def test_imagezmq_rejections(case: tuple[str, list[Any], str, Limits]) -> None:
    _, parts, reason, limits = case
    assert reason_of(lambda: imagezmq.decode(parts, limits)) == reason


def test_vidgear_reply_rejections() -> None:
    cases = [
        ([], "bad_parts"),
        ([b"Data received", b"x"], "bad_parts"),
        ([b'{"return_type": "str"}'], "bad_header"),
        ([b'{"return_type": 5, "data": 1}'], "bad_header"),
        ([b'{"return_type": "str", "data": 1}', b"x"], "bad_parts"),
        ([b'{"return_type": "ndarray", "data": null}', b"x"], "bad_header"),
        ([send_json_bytes({"return_type": "ndarray", "compression": False, "array_dtype": "uint8", "array_shape": [2], "data": None})], "bad_parts"),
        ([send_json_bytes({"return_type": "ndarray", "compression": False, "array_dtype": "uint8", "array_shape": [2], "data": None}), b"abc"], "size_mismatch"),
        ([send_json_bytes({"return_type": "ndarray", "compression": False, "array_dtype": "O", "array_shape": [2], "data": None}), b"ab"], "bad_dtype"),
        ([send_json_bytes({"return_type": "ndarray", "compression": {"dct": True, "ups": False, "colorspace": "BGR"}, "array_dtype": "", "array_shape": "", "data": None}), b"xx"], "bad_jpeg"),
        ([b'{"return_type": "str", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"], "bad_header"),
    ]
    for parts, reason in cases:
        assert reason_of(lambda parts=parts: vidgear.decode_reply(parts, LIMITS)) == reason, parts[:1]
    assert reason_of(lambda: vidgear.decode_reply([b"x" * 5000], Limits(64, 64))) == "oversize"


# ---------------------------------------------------------------------------- fuzz


VALID = [
    vidgear_frame(np.arange(6, dtype=np.uint8).reshape(2, 3), {"a": [1, "b"]}, port=5566),
    vidgear_frame(np.array([True, False]), "m"),
    vidgear_frame(jpeg(SMOOTH[:16, :16]), None, port="1", colorspace="BGR"),
    vidgear_close(5566),
    vidgear_close(),
    imagezmq_image("cam", np.arange(4, dtype=np.float32)),
    imagezmq_jpg("cam", cv2_jpeg(SMOOTH[:16, :16])),
    [b'{"return_type": "dict", "data": {"box": [1, 2]}}'],
    [send_json_bytes({"return_type": "ndarray", "compression": False, "array_dtype": "uint8", "array_shape": [2], "data": None}), b"ab"],
]
PART = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda b: b"{" + b),
    st.sampled_from([b'{"msg": ', b'{"terminate_flag": ', b'{"port": 1, ', b'{"return_type": ']).flatmap(
        lambda prefix: st.binary(max_size=48).map(lambda b: prefix + b)
    ),
    st.sampled_from([part for parts in VALID for part in parts]),
)
HOSTILE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
KEYS = ["port", "terminate_flag", "compression", "message", "pattern", "dtype", "shape", "msg", "return_type", "data", "array_dtype", "array_shape"]


def decode_anything(parts: list[Any], limits: Limits = LIMITS) -> None:
    """Every decoder returns its type or raises ProtocolError with a known reason."""
    fmt = formats.detect(parts)
    assert fmt in formats.FORMATS
    for decoder, result_type in (
        (vidgear.decode, Decoded),
        (imagezmq.decode, Decoded),
        (fmt.decode, Decoded),
        (vidgear.decode_reply, Ack),
        (imagezmq.decode_reply, Ack),
    ):
        try:
            result = decoder(parts, limits)
        except ProtocolError as exc:
            assert exc.reason in REASONS
        else:
            assert isinstance(result, result_type)
    formats.unwrap(1, parts)
    formats.unwrap(2, parts)


@settings(deadline=None, max_examples=300)
@given(st.lists(PART, min_size=0, max_size=3))
def test_random_parts_decode_or_raise_protocol_error(parts: list[bytes]) -> None:
    decode_anything(parts)


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(VALID), st.data())
def test_mutated_messages_decode_or_raise_protocol_error(parts: list[bytes], data: st.DataObject) -> None:
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


@settings(deadline=None, max_examples=300)
@given(st.dictionaries(st.sampled_from(KEYS), HOSTILE_VALUES, max_size=8), st.binary(max_size=32), st.booleans())
def test_hostile_json_headers_decode_or_raise_protocol_error(meta: dict, payload: bytes, two: bool) -> None:
    head = send_json_bytes(meta)
    decode_anything([head, payload] if two else [head])


@settings(deadline=None, max_examples=200)
@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.one_of(st.binary(), st.integers(), st.none()), max_size=3)))
def test_detect_never_raises(parts: Any) -> None:
    assert vidgear.detect(parts) in (True, False)
    assert imagezmq.detect(parts) in (True, False)
    assert formats.detect(parts) in formats.FORMATS
    formats.unwrap(1, parts if isinstance(parts, list) else [])


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        dtype=st.sampled_from(sorted(DTYPES)),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    HOSTILE_VALUES,
)
def test_any_whitelisted_array_and_json_message_round_trip(array: np.ndarray, message: Any) -> None:
    got = vidgear.decode(writable(vidgear.encode_frame(frame=array, message=message, port=1, limits=LIMITS)), LIMITS)
    assert got.frame.dtype == array.dtype and got.frame.shape == array.shape
    assert got.frame.tobytes() == array.tobytes()
    assert got.has_message is (message is not None)
    assert json.dumps(got.message) == json.dumps(message)  # NaN-safe equality
    got = imagezmq.decode(imagezmq.encode_frame(frame=array, message=message, limits=LIMITS), LIMITS)
    assert got.frame.tobytes() == array.tobytes() and json.dumps(got.message) == json.dumps(message)


def test_decoding_is_fast() -> None:
    """Valid 640x480 frames with messages: well under 1 ms per decode; hostile headers of
    up to max_message_bytes (1 MiB of tiny containers, deep nesting, huge shapes, strings)
    are bounded by the cost of parsing that much JSON."""
    image = RNG.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    valid = [
        writable(vidgear_frame(image, {"boxes": [[1, 2, 3, 4]] * 10, "label": "cat"}, port=5566)),
        writable(imagezmq_image("cam", image)),
    ]
    start = time.perf_counter()
    for i in range(1000):
        parts = valid[i % 2]
        formats.detect(parts).decode(parts, LIMITS)
    assert (time.perf_counter() - start) / 1000 < 1e-3
    hostile = [
        [b'{"terminate_flag": false, "message": ' + b"[" * 500000 + b"]" * 500000 + b"}", b""],
        [b'{"terminate_flag": false, "message": [' + b"[[]]," * 200000 + b"1]}", b""],
        [b'{"terminate_flag": false, "message": [' + b'"a\\"[", ' * 100000 + b"1]}", b""],
        [b'{"terminate_flag": false, "message": "' + b'\\' * 500000 + b'"}', b""],
        [b'{"msg": "' + b'"a' * 500000, b""],
        [vmeta(shape=[1] * 200000), b"\x00"],
    ]
    for parts in hostile:
        assert len(parts[0]) <= LIMITS.max_message_bytes + 4096
        start = time.perf_counter()
        with pytest.raises(ProtocolError):
            formats.detect(parts).decode(parts, LIMITS)
        assert time.perf_counter() - start < 0.2, parts[0][:60]


def test_codec_modules_import_neither_zmq_nor_pickle() -> None:
    for module in (vidgear, imagezmq, formats, _foreign):
        with open(module.__file__, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name.split(".")[0] for name in imported} & {"zmq", "pickle", "marshal", "dill"}, module


# ------------------------------------------------------- the real libraries, live


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CodecHub:
    """A hub socket served by the codecs in a thread: unwrap, detect, decode, reply.

    ``answer(decoded)`` gives the return data for each frame (NO_MESSAGE by default).
    Collects ``(format, decoded)`` until a goodbye or ``frames`` frames arrived.
    """

    def __init__(
        self,
        ctx: zmq.Context,
        pattern: int,
        *,
        frames: int = 1000,
        byes: int = 1,
        answer: Callable[[Decoded], Any] | None = None,
        connect: str | None = None,
    ) -> None:
        kind = {0: zmq.PAIR, 1: zmq.ROUTER, 2: zmq.SUB}[pattern]
        self.sock = ctx.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        if kind == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        if connect:
            self.sock.connect(connect)
            self.port = 0
        else:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.pattern, self.frames, self.byes = pattern, frames, byes
        self.answer = answer or (lambda d: NO_MESSAGE)
        self.got: list[tuple[Any, Decoded]] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="codec-hub", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not self.sock.poll(50):
                    continue
                envelope, parts = formats.unwrap(self.pattern, self.sock.recv_multipart(copy=False))
                fmt = formats.detect(parts)
                decoded = fmt.decode(parts, LIMITS)
                self.got.append((fmt, decoded))
                data = self.answer(decoded) if decoded.kind is Kind.FRAME else NO_MESSAGE
                answer = formats.reply(fmt, decoded, data, limits=LIMITS, pattern=self.pattern)
                if answer is not None:
                    self.sock.send_multipart([*envelope, *answer])
                frames = sum(d.kind is Kind.FRAME for _, d in self.got)
                byes = sum(d.kind is Kind.BYE for _, d in self.got)
                if byes >= self.byes or frames >= self.frames:
                    return
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)

    def join(self) -> list[tuple[Any, Decoded]]:
        self.thread.join(20)
        self.sock.close(200)  # let a last answer (to a goodbye) go out
        assert not self.thread.is_alive() and not self.errors, self.errors
        return self.got


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@needs_vidgear
@pytest.mark.parametrize("bidirectional", [False, True])
def test_real_vidgear_server_req_rep_into_codecs(ctx: zmq.Context, bidirectional: bool) -> None:
    replies = iter([{"box": [1, 2]}, np.arange(12, dtype=np.uint16).reshape(3, 4), None])
    hub = CodecHub(ctx, 1, answer=lambda d: next(replies))
    server = VidGear(
        address="127.0.0.1", port=hub.port, pattern=1, multiserver_mode=True,
        bidirectional_mode=bidirectional, jpeg_compression=False, logging=False,
    )
    frames = [RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.arange(10, dtype=np.float64).reshape(2, 5), IMAGE]
    returned = [server.send(frames[0], message={"cam": "front", "n": [1, 2.5]}), server.send(frames[1]), server.send(frames[2], message=0)]
    server.close()
    got = hub.join()
    assert [formats.name(fmt) for fmt, _ in got] == ["vidgear"] * 4
    decoded = [d for _, d in got]
    for d, frame in zip(decoded, frames):
        assert d.kind is Kind.FRAME and d.server_id == f"vidgear:{hub.port}" and d.topic == str(hub.port)
        assert d.frame.dtype == frame.dtype and d.frame.tobytes() == frame.tobytes() and d.frame.flags.writeable
    assert [(d.has_message, d.message) for d in decoded[:3]] == [(True, {"cam": "front", "n": [1, 2.5]}), (False, None), (True, 0)]
    assert decoded[3].kind is Kind.BYE and decoded[3].server_id == f"vidgear:{hub.port}"
    if bidirectional:
        assert returned[0] == {"box": [1, 2]}
        assert np.array_equal(returned[1], np.arange(12, dtype=np.uint16).reshape(3, 4))
        assert returned[2] is None
    else:
        assert returned == [None, None, None]


@needs_vidgear
def test_real_vidgear_server_jpeg_default_into_codecs(ctx: zmq.Context) -> None:
    hub = CodecHub(ctx, 1, byes=2)
    server = VidGear(address="127.0.0.1", port=hub.port, pattern=1, multiserver_mode=True, logging=False)
    gray = VidGear(address="127.0.0.1", port=hub.port, pattern=1, multiserver_mode=True, jpeg_compression="GRAY", logging=False)
    server.send(SMOOTH, message="color")  # JPEG is vidgear's default when simplejpeg is installed
    gray.send(SMOOTH[:, :, 0])
    gray.close()
    server.close()
    got = hub.join()
    color, mono = got[0][1], got[1][1]
    assert color.frame is None and (color.encoded.colorspace, color.encoded.shape) == ("BGR", SMOOTH.shape)
    assert color.message == "color"
    assert close_enough(codecs.decode_jpeg(color.encoded.data, "BGR", color.encoded.shape, fastdct=True, fastupsample=False), SMOOTH)
    assert (mono.encoded.colorspace, mono.encoded.shape) == ("GRAY", SMOOTH.shape[:2])
    assert close_enough(codecs.decode_jpeg(mono.encoded.data, "GRAY", mono.encoded.shape, fastdct=True, fastupsample=False), SMOOTH[:, :, 0])
    assert [d.kind for _, d in got[2:]] == [Kind.BYE, Kind.BYE]


@needs_vidgear
def test_real_vidgear_server_pair_into_codecs(ctx: zmq.Context) -> None:
    """PAIR: vidgear's server waits for an answer after every frame; the codecs give one."""
    hub = CodecHub(ctx, 0)
    server = VidGear(address="127.0.0.1", port=hub.port, pattern=0, jpeg_compression=False, logging=False)
    started = time.monotonic()
    for i in range(3):
        server.send(IMAGE + i, message={"i": i})
    server.close()
    got = hub.join()
    assert time.monotonic() - started < 3  # no 4 s wait for a missing answer
    assert [d.kind for _, d in got] == [Kind.FRAME] * 3 + [Kind.BYE]
    assert all(np.array_equal(d.frame, IMAGE + i) and d.message == {"i": i} for i, (_, d) in enumerate(got[:3]))
    assert got[0][1].server_id == "vidgear" and got[0][1].topic == "vidgear"


@needs_vidgear
def test_real_vidgear_server_pub_sub_into_codecs(ctx: zmq.Context) -> None:
    hub = CodecHub(ctx, 2, frames=1)
    server = VidGear(address="127.0.0.1", port=hub.port, pattern=2, multiserver_mode=True, jpeg_compression=False, logging=False)
    try:
        deadline = time.monotonic() + 10
        while hub.thread.is_alive() and time.monotonic() < deadline:  # until the subscription is up
            server.send(IMAGE, message="pub")
            time.sleep(0.02)
    finally:
        server.close()
    (fmt, decoded), *_ = hub.join()
    assert fmt is vidgear and np.array_equal(decoded.frame, IMAGE) and decoded.message == "pub"
    assert decoded.topic == str(hub.port)


@needs_vidgear
def test_real_vidgear_server_bytes_are_the_golden_bytes(ctx: zmq.Context) -> None:
    """What vidgear puts on the wire is exactly what the tests' golden builders (and our
    encoders) produce, REQ_CORRELATE envelope included."""
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    server = VidGear(address="127.0.0.1", port=port, pattern=1, multiserver_mode=True, jpeg_compression=False, logging=False)
    frame = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    result: list[Any] = []
    sender = threading.Thread(target=lambda: result.append(server.send(frame, message={"a": (1, 2)})), daemon=True)
    sender.start()
    assert router.poll(5000)
    received = router.recv_multipart()
    assert len(received) == 5 and len(received[1]) == 4 and received[2] == b""  # [rid, request-id, "", json, frame]
    assert received[3:] == vidgear_frame(frame, {"a": (1, 2)}, port=port)
    assert received[3:] == [bytes(p) for p in vidgear.encode_frame(frame=frame, message={"a": (1, 2)}, port=port, limits=LIMITS)]
    envelope, parts = formats.unwrap(1, received)
    router.send_multipart([*envelope, *formats.reply(vidgear, vidgear.decode(parts, LIMITS), limits=LIMITS, pattern=1)])
    sender.join(5)
    assert result == [None]
    closer = threading.Thread(target=server.close, daemon=True)
    closer.start()
    assert router.poll(5000)
    envelope, parts = formats.unwrap(1, router.recv_multipart())
    assert parts == vidgear.encode_close(port=port)
    bye = vidgear.decode(parts, LIMITS)
    router.send_multipart([*envelope, *formats.reply(vidgear, bye, limits=LIMITS, pattern=1)])
    closer.join(5)
    router.close(0)


def recv_within(gear: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
    """``gear.recv()`` (vidgear's blocks forever) with a timeout."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(gear.recv(**kwargs)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert box, "vidgear's hub returned nothing in time"
    return box[0]


def request(dealer: zmq.Socket, parts: list[Any], decode_reply: Callable[..., Ack]) -> Ack:
    dealer.send_multipart([b"", *parts], copy=False)
    assert dealer.poll(5000), "no answer from the hub"
    answer = dealer.recv_multipart()
    assert answer[0] == b""
    return decode_reply(answer[1:], LIMITS)


@needs_vidgear
def test_encoders_into_real_vidgear_hub_req_rep(ctx: zmq.Context) -> None:
    port = free_port()
    hub = VidGear(receive_mode=True, address="127.0.0.1", port=[port], pattern=1, multiserver_mode=True, logging=False)
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        frame = np.arange(30, dtype=np.int16).reshape(5, 6)
        ack = request(dealer, vidgear.encode_frame(frame=frame, message={"cam": "a"}, port=port, limits=LIMITS), vidgear.decode_reply)
        assert_ack(ack, None, False)  # "Data received on device: ... !"
        got_port, message, got = recv_within(hub)
        assert (got_port, message) == (port, {"cam": "a"}) and got.dtype == np.int16 and np.array_equal(got, frame)
        encoded = Encoded("jpeg", memoryview(codecs.encode_jpeg(SMOOTH, codecs.JpegSettings())), "BGR", SMOOTH.shape)
        request(dealer, vidgear.encode_frame(encoded=encoded, port=port, limits=LIMITS), vidgear.decode_reply)
        got_port, got = recv_within(hub)
        assert got_port == port and close_enough(got, SMOOTH)
        assert_ack(request(dealer, vidgear.encode_close(port=port), vidgear.decode_reply), None, False)
        assert recv_within(hub) is None  # every server said goodbye: the stream ends
    finally:
        hub.close()
        dealer.close(0)


@needs_vidgear
def test_encoders_into_real_vidgear_hub_bidirectional(ctx: zmq.Context) -> None:
    port = free_port()
    hub = VidGear(receive_mode=True, address="127.0.0.1", port=port, pattern=1, bidirectional_mode=True, logging=False)
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        parts = vidgear.encode_frame(frame=IMAGE, message="hello", limits=LIMITS)
        assert_ack(request(dealer, parts, vidgear.decode_reply), None, True)
        assert recv_within(hub, return_data={"box": [1, 2]})[0] == "hello"
        assert_ack(request(dealer, parts, vidgear.decode_reply), {"box": [1, 2]}, True)
        assert np.array_equal(recv_within(hub, return_data=SMOOTH)[1], IMAGE)
        ack = request(dealer, parts, vidgear.decode_reply)  # an array, JPEG-compressed by vidgear
        assert close_enough(ack.reply, SMOOTH)
        request(dealer, vidgear.encode_close(), vidgear.decode_reply)
        recv_within(hub)
        assert recv_within(hub) is None
    finally:
        hub.close()
        dealer.close(0)


@needs_vidgear
@pytest.mark.parametrize("pattern", [0, 2])
def test_encoders_into_real_vidgear_hub_pair_and_pub_sub(ctx: zmq.Context, pattern: int) -> None:
    """PAIR (bidirectional, so vidgear's hub hands out messages) and PUB/SUB (multi-server)."""
    port = free_port()
    if pattern == 0:
        hub = VidGear(receive_mode=True, address="127.0.0.1", port=port, pattern=0, bidirectional_mode=True, logging=False)
    else:
        hub = VidGear(receive_mode=True, address="127.0.0.1", port=[port], pattern=2, multiserver_mode=True, logging=False)
    sock = ctx.socket(zmq.PAIR if pattern == 0 else zmq.PUB)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(f"tcp://127.0.0.1:{port}")
    server_port = None if pattern == 0 else port
    try:
        parts = vidgear.encode_frame(frame=IMAGE, message=[1, "x"], pattern=pattern, port=server_port, limits=LIMITS)
        if pattern == 0:
            sock.send_multipart(parts, copy=False)
            assert sock.poll(5000)  # vidgear answers on PAIR too
            assert_ack(vidgear.decode_reply(sock.recv_multipart(), LIMITS), None, True)
            message, got = recv_within(hub)
        else:
            box: list[Any] = []
            thread = threading.Thread(target=lambda: box.append(hub.recv()), daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while thread.is_alive() and time.monotonic() < deadline:  # until the subscription is up
                sock.send_multipart(parts)
                thread.join(0.05)
            got_port, message, got = box[0]
            assert got_port == port
        assert message == [1, "x"] and np.array_equal(got, IMAGE)
        for _ in range(3 if pattern == 2 else 1):  # PUB/SUB may drop one
            sock.send_multipart(vidgear.encode_close(port=server_port))
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while recv_within(hub) is not None:  # frames still queued, then the end of the stream
            assert time.monotonic() < deadline
    finally:
        hub.close()
        sock.close(0)


@needs_imagezmq
def test_real_imagezmq_sender_req_rep_into_codecs(ctx: zmq.Context) -> None:
    answers = iter([NO_MESSAGE, b"STOP", "text"])
    hub = CodecHub(ctx, 1, frames=3, answer=lambda d: next(answers))
    sender = real_imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{hub.port}")
    try:
        image = np.arange(60, dtype=np.uint16).reshape(5, 4, 3)
        data = cv2_jpeg(SMOOTH)
        replies = [
            sender.send_image("rpi-1", image),
            sender.send_image("rpi-1", IMAGE[:, ::-1]),  # not contiguous: imagezmq copies it
            sender.send_jpg("rpi-2", data),
        ]
    finally:
        sender.close()
    got = [d for _, d in hub.join()]
    assert replies == [b"OK", b"STOP", b"text"]
    assert [(d.server_id, d.message) for d in got] == [("rpi-1", "rpi-1"), ("rpi-1", "rpi-1"), ("rpi-2", "rpi-2")]
    assert got[0].frame.dtype == np.uint16 and np.array_equal(got[0].frame, image)
    assert np.array_equal(got[1].frame, IMAGE[:, ::-1]) and got[1].frame.flags.writeable
    assert bytes(got[2].encoded.data) == data and got[2].encoded.shape == SMOOTH.shape


@needs_imagezmq
def test_real_imagezmq_sender_pub_sub_into_codecs(ctx: zmq.Context) -> None:
    """PUB/SUB: the imagezmq sender binds, the hub connects to it."""
    port = free_port()
    sender = real_imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    hub = CodecHub(ctx, 2, frames=1, connect=f"tcp://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 10
        while hub.thread.is_alive() and time.monotonic() < deadline:
            sender.send_image({"name": "pi"}, IMAGE)
            time.sleep(0.02)
    finally:
        sender.close()
    (fmt, decoded), *_ = hub.join()
    assert fmt is imagezmq and decoded.message == {"name": "pi"} and decoded.server_id == "imagezmq"
    assert np.array_equal(decoded.frame, IMAGE)


@needs_imagezmq
def test_encoders_into_real_image_hub(ctx: zmq.Context) -> None:
    port = free_port()
    hub = real_imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        image = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        dealer.send_multipart([b"", *imagezmq.encode_frame(frame=image, message="cam-1", limits=LIMITS)], copy=False)
        name, got = hub.recv_image()
        assert name == "cam-1" and got.dtype == np.float32 and np.array_equal(got, image)
        hub.send_reply(b"OK")
        assert dealer.poll(5000)
        assert_ack(imagezmq.decode_reply(dealer.recv_multipart()[1:], LIMITS), b"OK", True)
        data = codecs.encode_jpeg(SMOOTH, codecs.JpegSettings())
        encoded = Encoded("jpeg", memoryview(data), "BGR", SMOOTH.shape)
        dealer.send_multipart([b"", *imagezmq.encode_frame(encoded=encoded, message="cam-1", limits=LIMITS)], copy=False)
        name, buffer = hub.recv_jpg()
        assert name == "cam-1" and bytes(buffer) == data
        hub.send_reply(b"MORE")
        assert dealer.poll(5000)
        assert_ack(imagezmq.decode_reply(dealer.recv_multipart()[1:], LIMITS), b"MORE", True)
    finally:
        hub.close()
        dealer.close(0)


@needs_imagezmq
def test_encoders_into_real_image_hub_pub_sub(ctx: zmq.Context) -> None:
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    hub = real_imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    try:
        parts = imagezmq.encode_frame(frame=IMAGE, message="pub-cam", limits=LIMITS)
        deadline = time.monotonic() + 10
        while not hub.zmq_socket.poll(20):
            assert time.monotonic() < deadline
            pub.send_multipart(parts)
        name, got = hub.recv_image()
        assert name == "pub-cam" and np.array_equal(got, IMAGE)
    finally:
        hub.close()
        pub.close(0)
