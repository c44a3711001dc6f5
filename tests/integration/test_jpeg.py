"""JPEG frames end to end: compression options, pass-through bytes, raw fallback, hostile
JPEG headers, parallel decoding keeping each server's order."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import zmq
from helpers import assert_frame, open_hub, open_server, wait_alive, wait_until
from procs import CTX, make_frame, serve

from netgear import ConfigError, NetGear, codecs
from netgear.transport import topic_frame
from netgear.wire import Encoded, Limits, native

pytestmark = pytest.mark.timeout(60)


def camera_frame(shape=(120, 160, 3), seed=0) -> np.ndarray:
    """Smooth content with a little noise: what JPEG is made for."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    base = (x + y * 2 + seed * 17) % 256
    if len(shape) == 3:
        base = np.stack([base, (base + 60) % 256, (base * 2) % 256, base * 0 + 255][: shape[2]], axis=2)
    noise = np.random.default_rng(seed).normal(0, 3, size=shape)
    if len(shape) == 3 and shape[2] == 4:
        noise[:, :, 3] = 0  # JPEG keeps no alpha: an opaque frame comes back equal
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def close_to(got: np.ndarray, want: np.ndarray, bound: float = 6.0) -> None:
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).mean() < bound


@pytest.mark.parametrize("pattern", [1, 2])
@pytest.mark.parametrize(
    "colorspace,shape", [(True, (120, 160, 3)), ("RGB", (120, 160, 3)), ("GRAY", (120, 160)), ("BGRA", (64, 80, 4))]
)
def test_jpeg_frames_arrive_close_and_keep_their_shape(gears, pattern, colorspace, shape):
    hub = open_hub(gears, 0, pattern)
    server = open_server(gears, hub.ports[0], pattern, jpeg_compression=colorspace, jpeg_compression_quality=95)
    wait_alive(hub, 1)
    frames = [camera_frame(shape, i) for i in range(3)]
    for i, frame in enumerate(frames):
        server.send(frame, message={"i": i})
    for i, frame in enumerate(frames):
        packet = hub.recv_packet(timeout=10)
        assert packet.message == {"i": i}
        close_to(packet.frame, frame)
        assert packet.frame.flags.writeable
        assert bytes(packet.jpeg[:2]) == b"\xff\xd8"  # the compressed bytes, as sent
        assert len(packet.jpeg) < frame.nbytes / 2


def test_frames_jpeg_cannot_carry_go_raw_with_one_debug_line(gears, caplog):
    hub = open_hub(gears, 0, 1)
    server = open_server(gears, hub.ports[0], 1, jpeg_compression=True)
    odd = [np.arange(24, dtype=np.uint16).reshape(2, 3, 4), np.ones((5, 5, 2), np.uint8), np.float32([1.5])]
    with caplog.at_level(logging.DEBUG, logger="netgear"):
        for frame in odd:
            server.send(frame)
    for frame in odd:
        packet = hub.recv_packet(timeout=10)
        assert packet.jpeg is None
        assert_frame(packet.frame, frame)  # bit-exact: it travelled raw
    notes = [r for r in caplog.records if "cannot be BGR JPEG" in r.getMessage()]
    assert len(notes) == 1


def test_hub_can_hand_over_jpeg_bytes_without_decoding(gears):
    hub = open_hub(gears, 0, 1, jpeg_decode=False)
    server = open_server(gears, hub.ports[0], 1)
    frame = camera_frame()
    data = codecs.encode_jpeg(frame, codecs.JpegSettings(quality=80))
    server.send_jpeg(data, message="pre-encoded")  # shape read from the JPEG header
    packet = hub.recv_packet(timeout=10)
    assert packet.frame is None and packet.message == "pre-encoded"
    assert bytes(packet.jpeg) == data  # byte for byte what the camera produced


def test_send_jpeg_is_decoded_by_a_decoding_hub(gears):
    hub = open_hub(gears, 0, 1)
    server = open_server(gears, hub.ports[0], 1)
    frame = camera_frame((48, 64))
    data = codecs.encode_jpeg(frame, codecs.JpegSettings(colorspace="GRAY", quality=95))
    server.send_jpeg(data, colorspace="GRAY")
    packet = hub.recv_packet(timeout=10)
    close_to(packet.frame, frame)


@pytest.mark.parametrize("fastdct,fastupsample", [(True, False), (False, True)])
def test_send_jpeg_tells_the_hub_to_decode_as_the_server_options_say(gears, fastdct, fastupsample):
    """A server without jpeg_compression still carries its jpeg_compression_fastdct and
    _fastupsample options (defaults: True, False) in the header of pre-encoded frames."""
    ctx = zmq.Context.instance()
    router = gears.enter_context(ctx.socket(zmq.ROUTER))
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    server = open_server(gears, port, 1, jpeg_compression_fastdct=fastdct, jpeg_compression_fastupsample=fastupsample)
    data = codecs.encode_jpeg(camera_frame(), codecs.JpegSettings())
    server.send_jpeg(data)  # a window of frames in flight: returns before any answer
    assert router.poll(10_000), "no frame reached the socket"
    frames = router.recv_multipart()
    got = native.decode(frames[2:], Limits(1 << 20, 64 << 20))
    assert (got.encoded.fastdct, got.encoded.fastupsample) == (fastdct, fastupsample)
    assert bytes(got.encoded.data) == data


@pytest.mark.parametrize(
    "options,name",
    [
        ({"jpeg_compression": "YUV"}, "jpeg_compression"),
        ({"jpeg_compression": 1}, "jpeg_compression"),
        ({"jpeg_compression": True, "jpeg_compression_quality": 5}, "jpeg_compression_quality"),
        ({"jpeg_compression": True, "jpeg_compression_quality": 90.0}, "jpeg_compression_quality"),
        ({"jpeg_compression": True, "jpeg_compression_fastdct": "yes"}, "jpeg_compression_fastdct"),
        ({"jpeg_compression": True, "jpeg_compression_subsampling": "421"}, "jpeg_compression_subsampling"),
    ],
)
def test_invalid_jpeg_options_are_configuration_errors(options, name):
    with pytest.raises(ConfigError) as err:
        NetGear(address="127.0.0.1", port=5999, pattern=2, **options)
    assert err.value.option == name


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(codecs.encode_jpeg(np.zeros((8, 8), np.uint8), codecs.JpegSettings(colorspace="GRAY")))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_a_jpeg_declaring_30000x30000_is_dropped_before_decoding(gears):
    hub = open_hub(gears, 0, 1)
    port = hub.ports[0]
    ctx = gears.enter_context(zmq.Context())
    sock = ctx.socket(zmq.DEALER)
    gears.callback(sock.close, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    bomb = _jpeg_declaring(30000, 30000)
    assert len(bomb) < 1000
    parts = native.encode_frame(
        seq=1, sent_ns=1, server_id="bomb", session=1, topic="t", frame=None, limits=Limits(),
        encoded=Encoded("jpeg", memoryview(bomb), "GRAY", (30000, 30000)),
    )
    sock.send_multipart([b"", *parts])
    good = camera_frame((16, 16))
    parts = native.encode_frame(
        seq=2, sent_ns=1, server_id="bomb", session=1, topic="t", frame=good, limits=Limits()
    )
    sock.send_multipart([b"", *parts])
    packet = hub.recv_packet(timeout=10)
    assert packet.seq == 2
    assert_frame(packet.frame, good)
    assert hub.snapshot().rejected(port) == {"oversize": 1}


def test_parallel_decoding_keeps_each_servers_order(procs, gears):
    count, servers = 40, 4
    hub = open_hub(gears, [0] * servers, 1, decode_threads=2)
    go = CTX.Event()
    for i, port in enumerate(hub.ports):
        procs.append(CTX.Process(
            target=serve, args=(port, 1, count), daemon=True,
            kwargs={"go": go, "salt": i, "shape": (96, 128, 3), "messages": list(range(count)),
                    "options": {"jpeg_compression": True}},
        ))
        procs[-1].start()
    wait_alive(hub, servers)
    go.set()
    seen = {port: [] for port in hub.ports}
    for _ in range(count * servers):
        packet = hub.recv_packet(timeout=20)
        seen[packet.port].append(packet.message)
        assert packet.frame.shape == (96, 128, 3)
    for i, port in enumerate(hub.ports):
        assert seen[port] == list(range(count))
    snap = hub.snapshot()
    assert sum(s.frames for s in snap.servers) == count * servers
    assert all(sum(p.rejected.values()) == 0 for p in snap.ports)


def test_any_idle_decoder_thread_takes_any_servers_frame(procs, gears, monkeypatch):
    """Frames of two servers are decoded at the same time whichever servers came and went
    before them (a server is not tied to one thread: X and Y below would have shared one
    under a fixed server-to-thread assignment)."""
    count, x_shape, y_shape = 30, (240, 320, 3), (248, 320, 3)
    # X's first frame after the go and Y's first frame meet halfway through their decodes.
    # Two free threads always bring them together, however the processes are scheduled
    # (X could otherwise be done before Y's first frame arrives on a busy host); one
    # thread serving both would keep them apart, and the meeting times out unmet.
    meet = threading.Barrier(2, timeout=1.5)  # (under request_timeout: no server resets)
    spans = time_decodes(monkeypatch, meet={x_shape: {2}, y_shape: {1}}, barrier=meet)
    hub = open_hub(gears, [0] * 3, 1, decode_threads=2)
    go = CTX.Event()

    def start(port, frames, shape, before_go=0):
        procs.append(CTX.Process(
            target=serve, args=(port, 1, frames), daemon=True,
            kwargs={"go": go, "shape": shape, "before_go": before_go, "options": {"jpeg_compression": True}},
        ))
        procs[-1].start()

    start(hub.ports[0], count, x_shape, before_go=1)  # X: one frame now, the rest later
    assert hub.recv_packet(timeout=20).port == hub.ports[0]
    start(hub.ports[1], 0, (48, 64, 3), before_go=1)  # W: one frame, then silent
    assert hub.recv_packet(timeout=20).port == hub.ports[1]
    start(hub.ports[2], count, y_shape)  # Y
    wait_alive(hub, 3)
    go.set()
    seen = {hub.ports[0]: [], hub.ports[2]: []}
    for _ in range(2 * count):
        packet = hub.recv_packet(timeout=20)
        seen[packet.port].append(packet.seq)
    assert seen[hub.ports[0]] == list(range(2, count + 2)) and seen[hub.ports[2]] == list(range(1, count + 1))
    xs = [(a, b) for shape, a, b in spans if shape == x_shape]
    ys = [(a, b) for shape, a, b in spans if shape == y_shape]
    assert len(xs) == count + 1 and len(ys) == count

    def overlap(p, q):
        return p[0] < q[1] and q[0] < p[1]

    assert not meet.broken, "X's and Y's first frames after the go were never decoded at the same time"
    assert any(overlap(x, y) for x in xs for y in ys), "X's and Y's frames were never decoded at the same time"


def time_decodes(monkeypatch, meet=None, barrier=None) -> list:
    """Record (shape, start, end) of every decode the hub's decoder threads make.

    ``meet`` maps a shape to the numbers (from 1) of its decodes that wait at ``barrier``
    before decoding; a meeting that times out is left broken for the test to assert on."""
    spans = []
    real = codecs.decode_jpeg
    counts: dict = {}
    lock = threading.Lock()

    def timed(data, colorspace, shape, **kw):
        start = time.monotonic()
        key = tuple(shape)
        with lock:
            counts[key] = counts.get(key, 0) + 1
            nth = counts[key]
        try:
            if meet and nth in meet.get(key, ()):
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return real(data, colorspace, shape, **kw)
        finally:
            spans.append((key, start, time.monotonic()))

    monkeypatch.setattr(codecs, "decode_jpeg", timed)
    return spans


@pytest.mark.parametrize("delivery", ["fifo", "latest"])
def test_one_servers_frames_decode_on_every_thread_and_arrive_in_order(procs, gears, monkeypatch, delivery):
    """fifo: one server's frames are decoded by several threads at once (one camera can
    use them all) and still reach the consumer in order, each with its own content.
    latest: one at a time, since an older frame would only be replaced."""
    count, shape = 40, (240, 320, 3)
    # The first two decodes meet halfway: two threads free for one server's frames always
    # bring them together (a sender encoding slower than the hub decodes could otherwise
    # keep them apart); a server held to one thread never does, and the meeting times out.
    meet = threading.Barrier(2, timeout=1.5 if delivery == "fifo" else 1)  # (under request_timeout)
    spans = time_decodes(monkeypatch, meet={shape: {1, 2}}, barrier=meet)
    hub = open_hub(gears, 0, 1, decode_threads=2, delivery=delivery)
    go = CTX.Event()
    procs.append(CTX.Process(
        target=serve, args=(hub.ports[0], 1, count), daemon=True,
        kwargs={"go": go, "shape": shape, "messages": list(range(count)), "options": {"jpeg_compression": True}},
    ))
    procs[-1].start()
    wait_alive(hub, 1)
    go.set()
    got = []
    while not got or got[-1] != count - 1:
        packet = hub.recv_packet(timeout=20)
        close_to(packet.frame, make_frame(packet.message, shape), bound=60.0)  # noise: JPEG's worst case
        got.append(packet.message)
    pairs = [(p, q) for i, p in enumerate(spans) for q in spans[i + 1:]]
    concurrent = any(p[1] < q[2] and q[1] < p[2] for p, q in pairs)
    if delivery == "fifo":
        assert got == list(range(count))
        assert not meet.broken, "one server's first two frames were not decoded at the same time"
        assert concurrent, "one server's frames were never decoded at the same time"
    else:
        assert meet.broken, "one server's first two frames were decoded at the same time under latest"
        assert got == sorted(set(got)) and len(got) + hub.snapshot().server(hub.ports[0]).dropped == count
        assert not concurrent, "one server's frames were decoded at the same time under latest"


def test_topic_frame_is_exact(gears):
    assert topic_frame("5566") == b"5566\x00"


def drain(hub) -> list:
    """Every packet the hub holds, until it has nothing left to decode or deliver."""
    out = []
    while True:
        try:
            out.append(hub.recv_packet(timeout=1.0))
        except TimeoutError:
            return out


@pytest.mark.parametrize("delivery,queue_size", [("latest", 8), ("fifo", 4)])
def test_jpeg_frames_outrunning_the_decoder_are_dropped_and_counted_exactly(gears, delivery, queue_size):
    """A burst of large JPEG frames reaches a PUB/SUB hub with one decoder thread faster
    than it decodes them, while nobody reads: what waits for the decoder is bounded by the
    policy like decoded frames are, and every frame is either delivered or counted."""
    hub = open_hub(gears, 0, 2, delivery=delivery, queue_size=queue_size, decode_threads=1)
    server = open_server(gears, hub.ports[0], 2, jpeg_compression=True, send_hwm=100, publish_wait=1.0)
    wait_alive(hub, 1)
    frame = camera_frame((720, 1280, 3))
    count = 40
    for i in range(count):
        server.send(frame, message=i)
    port = hub.ports[0]
    entry = wait_until(lambda: (e := hub.snapshot().server(port)).frames == count and e, 20, f"{count} frames in")
    # what waits (decoded, in the decoder, or for it) is bounded by the policy: the decoded
    # queue plus at most the frame in the decoder and the newest waiting for it
    assert entry.queued <= (1 if delivery == "latest" else queue_size) + 2, entry
    got = [packet.message for packet in drain(hub)]
    entry = hub.snapshot().server(port)
    assert entry.frames == count and entry.lost == 0 and entry.queued == 0
    assert len(got) + entry.dropped == count, (got, entry.dropped)
    assert got == sorted(got) and got[-1] == count - 1  # the newest always gets through
