"""A flood of 10 000 malformed messages from an attacker among 3 good servers.

One hub binds four ports (kernel-chosen). Three good servers, each in its own process,
stream 24 x 32 x 3 frames at 50 fps to ports 2..4. Once each has delivered 25 frames, an
attacker process holding a raw pyzmq socket (DEALER to the REQ/REP hub's ROUTER, XPUB to
the PUB/SUB hub's SUB, as in test_hostile.py) sends exactly 10 000 malformed messages to
port 1, as fast as it can, drawn from about 60 kinds of garbage covering all 13 documented
rejection reasons (random bytes, wrong part counts, bad header types, huge integers, deep
nesting, bad dtypes and shapes, oversize frames, messages and headers, JPEGs declaring
30000 x 30000 ...), then one good frame. The good servers stream for 1 s more and close.
The hub runs with max_frame_bytes = max_message_bytes = 4096 (cheap "oversize") and fifo
delivery.

Numbers checked, for REQ/REP and for PUB/SUB:

- the hub's rejection counters of the attacker's port (``snapshot().rejected(port)``) equal
  the attacker's own tally, reason by reason, exactly; they sum to 10 000 and cover all
  13 reasons; the good ports reject nothing;
- from the attacker, exactly one frame reaches the consumer: its good frame, sent after the
  10 000, which shows the receive loop is alive afterwards;
- each good server: frames received (recorded by History) >= 99 % of the frames it reports
  having sent, each at most once, in order.
"""

from __future__ import annotations

import collections
import os
import time

import msgpack
import numpy as np
import pytest

from helpers import wait_alive
from history import History, Reports
from procs import CTX, counted_stream, start

pytestmark = pytest.mark.timeout(60)

FLOOD = 10_000
LIMIT = 4096  # the hub's max_frame_bytes and max_message_bytes
FPS = 50.0
SHAPE = (24, 32, 3)  # 2304 bytes: under LIMIT
MIN_DELIVERED = 0.99
AFTER = -1  # the "i" of the attacker's good frame after the flood
LEAD = 25  # frames each good server delivers before the flood starts
AFTERWARDS = 1.0  # seconds the good servers go on streaming after it
REASONS = ("bad_parts", "bad_magic", "bad_version", "oversize", "bad_header", "bad_kind", "bad_codec",
           "bad_jpeg", "bad_dtype", "bad_shape", "size_mismatch", "bad_payload", "bad_message")


# ----------------------------------------------------------------------- the garbage


def garbage_kinds(topic: str, pattern: int):
    """``[(reason, build(rng) -> parts)]``: every kind of malformed message and the reason
    the documentation says it is counted under. Each build draws a fresh variant."""
    from netgear import codecs
    from netgear.wire import Encoded, Limits, native

    big = Limits(1 << 24, 1 << 30)  # the attacker's own encoder must not refuse anything
    prefix = native.MAGIC + bytes([native.VERSION])

    def common(rng):
        return {"k": 0, "q": int(rng.integers(2, 1 << 40)), "t": time.time_ns(), "id": "attacker",
                "s": 7, "tp": topic}

    def header(fields):
        return prefix + msgpack.packb(fields, use_bin_type=True)

    def frame_header(rng, codec="raw", dtype="|u1", shape=(4, 4)):
        return header({**common(rng), "f": [codec, dtype, list(shape)]})

    def noise(rng, low, high):
        return rng.integers(0, 256, int(rng.integers(low, high)), dtype=np.uint8).tobytes()

    def not_a_header(rng, low=1, high=300):
        """Random bytes that start neither the native magic nor a JSON object."""
        data = bytearray(noise(rng, low, high))
        while data[0] in b"\xab{ \t\r\n":
            data[0] = int(rng.integers(0, 256))
        return bytes(data)

    def good_frame(rng):
        return native.encode_frame(seq=1, sent_ns=1, server_id="attacker", session=7, topic=topic,
                                   frame=np.zeros((4, 4), np.uint8), limits=big)

    def nested(depth, leaf=b"\xc0"):
        return b"\x91" * depth + leaf  # [[[...[None]...]]] as msgpack

    def jpeg(shape, data, colorspace="GRAY"):
        return native.encode_frame(seq=1, sent_ns=1, server_id="attacker", session=7, topic=topic, frame=None,
                                   limits=big, encoded=Encoded("jpeg", memoryview(data), colorspace, shape))

    small_jpeg = codecs.encode_jpeg(np.zeros((8, 8), np.uint8), codecs.JpegSettings(colorspace="GRAY"))

    def declaring(width, height):
        data = bytearray(small_jpeg)
        sof = data.find(b"\xff\xc0")
        data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
        return bytes(data)

    bomb = declaring(30000, 30000)
    assert len(bomb) < 1000  # 600 bytes declaring 900 megapixels

    def ext(code, payload):
        return msgpack.packb(msgpack.ExtType(code, payload))

    def message(rng, packed):
        return [header({**common(rng), "m": packed})]

    def missing_key(rng):
        fields = common(rng)
        del fields[["k", "q", "t", "id", "s", "tp"][int(rng.integers(0, 6))]]
        return [header(fields)]

    kinds = [
        # bad_magic: not our header at all
        ("bad_magic", lambda r: [not_a_header(r)]),
        ("bad_magic", lambda r: [not_a_header(r), noise(r, 1, 300)]),
        ("bad_magic", lambda r: [b"XNG\x01" + good_frame(r)[0][4:], good_frame(r)[1]]),
        ("bad_magic", lambda r: [b""]),
        # bad_version
        ("bad_version", lambda r: [native.MAGIC + bytes([int(r.choice([0, *range(3, 256)]))]) + good_frame(r)[0][4:]]),
        ("bad_version", lambda r: [native.MAGIC]),
        # bad_parts: wrong part counts
        ("bad_parts", lambda r: [*good_frame(r), *[noise(r, 1, 50) for _ in range(int(r.integers(1, 5)))]]),
        ("bad_parts", lambda r: [good_frame(r)[0]]),  # frame announced, payload missing
        ("bad_parts", lambda r: [header(common(r) | {"k": 1}), noise(r, 1, 50)]),  # heartbeat + payload
        # bad_header: wrong types, keys, structure
        ("bad_header", lambda r: [prefix + bytes([int(r.choice([*range(0x00, 0x80), *range(0x90, 0xA0)]))])
                                  + noise(r, 0, 100)]),  # not a map
        ("bad_header", lambda r: [prefix]),  # nothing after the version
        ("bad_header", missing_key),
        ("bad_header", lambda r: [header({**common(r), "zz": 1})]),
        ("bad_header", lambda r: [header({**common(r), "q": "one"})]),
        ("bad_header", lambda r: [header({**common(r), "id": int(r.integers(0, 1 << 30))})]),
        ("bad_header", lambda r: [header({**common(r), "id": "x" * int(r.integers(257, 2000))})]),
        ("bad_header", lambda r: [header({**common(r), "tp": "a\x00b"})]),
        ("bad_header", lambda r: [header({**common(r), "k": 0.0})]),
        ("bad_header", lambda r: [header({**common(r), "k": True})]),
        ("bad_header", lambda r: [header({**common(r), "m": "a str, not bytes"})]),
        ("bad_header", lambda r: [header({**common(r), "f": 5}), b"x"]),
        ("bad_header", lambda r: [header(common(r) | {"k": 1, "f": ["raw", "|u1", [1]]})]),  # heartbeat with a frame
        ("bad_header", lambda r: [header(common(r)) + noise(r, 1, 20)]),  # trailing bytes
        ("bad_header", lambda r: [header(common(r))[: -int(r.integers(1, 10))]]),  # truncated
        # huge integers in the header
        ("bad_header", lambda r: [header({**common(r), "q": int(r.integers(1 << 63, (1 << 64) - 1, dtype=np.uint64))})]),
        ("bad_header", lambda r: [header({**common(r), "t": -int(r.integers(1, 1 << 62))})]),
        ("bad_header", lambda r: [header({**common(r), "s": (1 << 32) + int(r.integers(0, 1 << 31))})]),
        # deep nesting in the header: a 1000-deep list where the id should be
        ("bad_header", lambda r: [prefix + b"\x86\xa1k\x00\xa1q\x01\xa1t\x01\xa2id" + nested(1000)
                                  + b"\xa1s\x07\xa2tp\xa1t"]),
        # bad_kind: unknown kinds (huge ones too), an ACK where data was expected
        ("bad_kind", lambda r: [header({**common(r), "k": int(r.integers(4, 1 << 62))})]),
        ("bad_kind", lambda r: [header({**common(r), "k": -int(r.integers(1, 1 << 62))})]),
        ("bad_kind", lambda r: native.encode_ack(int(r.integers(0, 1 << 40)), "hi", limits=big)),
        # bad_codec
        ("bad_codec", lambda r: [frame_header(r, codec=str(r.choice(["webp", "", "RAW", "png", "h264"]))), bytes(16)]),
        ("bad_codec", lambda r: jpeg((8, 8, 4), small_jpeg, colorspace="CMYK")),
        # bad_dtype
        ("bad_dtype", lambda r: [frame_header(r, dtype=str(r.choice(["<c16", "|O", "<U4", "|S8", "<M8[s]", "float32",
                                                                     ">c8", "<f16"])), shape=(2,)), bytes(32)]),
        # bad_shape: negative, too many dimensions, not ints, nested, absurd
        ("bad_shape", lambda r: [frame_header(r, shape=(2, -int(r.integers(1, 1 << 40)))), bytes(2)]),
        ("bad_shape", lambda r: [frame_header(r, shape=(1,) * int(r.integers(5, 15))), bytes(1)]),
        ("bad_shape", lambda r: [frame_header(r, shape=(2.0, 8)), bytes(16)]),
        ("bad_shape", lambda r: [frame_header(r, shape=("4", 4)), bytes(16)]),
        ("bad_shape", lambda r: [frame_header(r, shape=([[[[4]]]], 4)), bytes(16)]),
        ("bad_shape", lambda r: [frame_header(r, shape=(1 << 62, 1 << 62)), bytes(16)]),  # dims over the limit
        ("bad_shape", lambda r: [frame_header(r, shape=(0, (1 << 63) - 1)), b""]),  # empty, absurd
        # size_mismatch: the payload does not match the shape
        ("size_mismatch", lambda r: [frame_header(r, shape=(4, 4)), bytes(int(r.choice([*range(0, 16), *range(17, 64)])))]),
        ("size_mismatch", lambda r: [frame_header(r, dtype="<u2", shape=(4, 4)), bytes(16)]),
        # bad_payload: a bool frame holding bytes other than 0/1
        ("bad_payload", lambda r: [frame_header(r, dtype="|b1", shape=(8,)),
                                   bytes([0, 1, 0, 1, 0, 1, 0, int(r.integers(2, 256))])]),
        # bad_message: the message does not unpack (deep nesting, huge arrays, unknown types)
        ("bad_message", lambda r: message(r, b"\xc1")),
        ("bad_message", lambda r: message(r, msgpack.packb({"a": list(range(50))})[: -int(r.integers(1, 40))])),
        ("bad_message", lambda r: message(r, nested(int(r.integers(300, 1000))))),  # over MAX_NESTING (256)
        ("bad_message", lambda r: message(r, nested(int(r.integers(2000, 3000))))),
        ("bad_message", lambda r: message(r, ext(int(r.integers(4, 128)), b"\x00"))),
        ("bad_message", lambda r: message(r, ext(1, msgpack.packb(["|u1", [1 << 62, 1 << 62], b"\x00"])))),
        ("bad_message", lambda r: message(r, msgpack.packb({1.5: "float key"}))),
        # oversize: frame, message, header, JPEG over the hub's 4096-byte limits
        ("oversize", lambda r: [frame_header(r, shape=(n := int(r.integers(LIMIT + 1, 2 * LIMIT)),)), bytes(n)]),
        ("oversize", lambda r: message(r, bytes(int(r.integers(LIMIT + 1, LIMIT + 2000))))),  # header in its slack
        ("oversize", lambda r: message(r, bytes(int(r.integers(3 * LIMIT, 4 * LIMIT))))),  # header over it
        ("oversize", lambda r: jpeg((30000, 30000), bomb)),  # the header says it, too
        ("oversize", lambda r: jpeg((8, 8), bomb)),  # only the JPEG says it
        ("oversize", lambda r: jpeg((8, 8), noise(r, LIMIT + 1, 2 * LIMIT))),
        # bad_jpeg: unreadable, or another size than the header says
        ("bad_jpeg", lambda r: jpeg((8, 8), noise(r, 10, 500))),
        ("bad_jpeg", lambda r: jpeg((16, 16), small_jpeg)),
        ("bad_jpeg", lambda r: jpeg((8, 8), small_jpeg[: int(r.integers(4, len(small_jpeg) // 2))])),
    ]
    if pattern == 1:
        kinds.append(("bad_parts", lambda r: []))  # the REQ delimiter and nothing after it
        kinds.append(("bad_parts", None))  # no delimiter at all: sent raw
    return kinds


def flood_plan(topic: str, pattern: int, seed: int, count: int):
    """``count`` (reason, parts, raw) in a shuffled order, the kinds as evenly spread as possible."""
    kinds = garbage_kinds(topic, pattern)
    rng = np.random.default_rng(seed)
    order = np.arange(count) % len(kinds)
    rng.shuffle(order)
    plan = []
    for k in order:
        reason, build = kinds[k]
        if build is None:
            plan.append((reason, [b"\x00" + bytes(rng.integers(0, 256, 20, dtype=np.uint8))], True))
        else:
            plan.append((reason, build(rng), False))
    return plan, len(kinds)


def attacker(port: int, pattern: int, *, seed: int, count: int, go, stop, results) -> None:
    """A raw pyzmq socket: ``count`` malformed messages, then one good frame."""
    import zmq

    from netgear.transport import topic_frame
    from netgear.wire import Limits, native

    topic = topic_frame(str(port))
    plan, kinds = flood_plan(str(port), pattern, seed, count)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER if pattern == 1 else zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)  # never drop on the attacker's side: every message is sent
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        if pattern == 2:  # the hub's SUB subscribes as soon as the connection is up
            if not sock.poll(20_000, zmq.POLLIN) or sock.recv() != b"\x01":
                results.put(("error", "attacker", "no subscription from the hub", os.getpid()))
                return
        results.put(("ready", "attacker", kinds, os.getpid()))
        go.wait(30)
        envelope = [b""] if pattern == 1 else [topic]
        tally = collections.Counter()
        began = time.monotonic()
        for reason, parts, raw in plan:
            sock.send_multipart(parts if raw else [*envelope, *parts])
            tally[reason] += 1
        took = time.monotonic() - began
        good = native.encode_frame(seq=1, sent_ns=time.time_ns(), server_id="attacker", session=99, topic=str(port),
                                   frame=np.arange(12, dtype=np.int32).reshape(3, 4), message={"i": AFTER},
                                   limits=Limits(1 << 20, 1 << 24))
        sock.send_multipart([*envelope, *good])
        results.put(("flood", "attacker", dict(tally), took))
        stop.wait(60)
    finally:
        sock.close(0)
        ctx.term()


# ----------------------------------------------------------------------------- the test


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
def test_10000_malformed_messages_counted_by_reason_while_3_servers_deliver_99_percent(procs, gears, pattern):
    hub = gears.enter_context(_hub(pattern))
    attack_port, good_ports = hub.ports[0], hub.ports[1:]
    names = {port: f"good-{k}" for k, port in enumerate(good_ports)}
    go, attack, stop_attacker, queue = CTX.Event(), CTX.Event(), CTX.Event(), CTX.Queue()
    stops = {port: CTX.Event() for port in good_ports}
    reports = Reports(queue)
    try:
        procs.append(start(attacker, attack_port, pattern, seed=pattern, count=FLOOD, go=attack, stop=stop_attacker,
                           results=queue))
        for k, port in enumerate(good_ports):
            procs.append(start(counted_stream, port, pattern, name=names[port], go=go, stop=stops[port],
                               results=queue, fps=FPS, salt=k, shape=SHAPE))
        wait_alive(hub, 3, timeout=30)
        kinds = reports.wait("ready", "attacker")[0]
        history = History(hub)
        go.set()  # the good servers stream first, then the flood comes
        history.run(until=lambda: all(history.count(port) >= LEAD for port in good_ports), timeout=15,
                    what=f"{LEAD} frames from each good server")
        attack.set()
        began = time.monotonic()

        # the good frame the attacker sends after its 10 000 arrives: the loop survived them
        history.run(until=lambda: any(s.index == AFTER for s in history.frames[attack_port]), timeout=40,
                    what="the attacker's good frame after the flood")
        flood_over = time.monotonic()
        tally, took = reports.wait("flood", "attacker")
        history.run_for(AFTERWARDS)  # the good servers go on after the flood
        for stop in stops.values():
            stop.set()
        history.run(until=lambda: all(history.first("left", port) for port in good_ports), timeout=15,
                    what="the good servers' goodbyes")
        sent = {port: reports.wait("sent", names[port]) for port in good_ports}
    finally:
        stop_attacker.set()
        for stop in stops.values():
            stop.set()

    snap = hub.snapshot()
    # every malformed message dropped and counted under its reason, exactly
    assert sum(tally.values()) == FLOOD
    assert set(tally) == set(REASONS)  # all 13 documented reasons exercised
    assert dict(snap.rejected(attack_port)) == tally, _diff(snap.rejected(attack_port), tally)
    for port in good_ports:
        assert dict(snap.rejected(port)) == {}, port

    # from the attacker, only its one good frame reached the consumer
    assert [(s.server_id, s.seq, s.index) for s in history.frames[attack_port]] == [("attacker", 1, AFTER)]
    assert {s.server_id for s in snap.servers if s.port == attack_port} == {"attacker"}

    # the good servers: >= 99 % of what they sent, each frame once, in order
    delivered = {}
    for port in good_ports:
        count, errors = sent[port]
        seen = history.frames[port]
        indices = [s.index for s in seen]
        assert {s.server_id for s in seen} == {names[port]}
        assert len(indices) == len(set(indices)), f"port {port}: a frame delivered twice"
        history.assert_in_order(port)
        assert set(indices) <= set(range(count))
        delivered[port] = len(indices) / count
        assert delivered[port] >= MIN_DELIVERED, f"port {port}: {len(indices)} of {count} frames ({errors} send errors)"
        assert snap.server(port, names[port]).state == "closed"
    during = {port: sum(1 for s in history.frames[port] if began <= s.at <= flood_over) for port in good_ports}
    print(f"\n{['', 'reqrep', 'pubsub'][pattern]}: {FLOOD} messages of {kinds} kinds sent in {took:.2f}s, "
          f"all counted {flood_over - began:.2f}s after go; delivered "
          + ", ".join(f"{delivered[p]:.1%} of {sent[p][0]}" for p in good_ports)
          + f"; frames during the flood {list(during.values())}; "
          + f"max gap during it {max(history.max_gap(p, began, flood_over) for p in good_ports) * 1000:.0f} ms")


def _hub(pattern: int):
    from netgear import NetGear

    return NetGear(address="127.0.0.1", port=[0, 0, 0, 0], pattern=pattern, receive_mode=True, multiserver_mode=True,
                   delivery="fifo", max_frame_bytes=LIMIT, max_message_bytes=LIMIT)


def _diff(got, want) -> str:
    keys = sorted(set(got) | set(want))
    return "; ".join(f"{k}: hub {got.get(k, 0)} attacker {want.get(k, 0)}" for k in keys if got.get(k, 0) != want.get(k, 0))
