"""Unauthenticated peers against an Ironhouse hub (secure_mode=2) while trusted servers stream.

The hub binds two ports (kernel-chosen) with CURVE and an allow-list holding cam1 and cam2.
Trusted servers cam1 (port 1) and cam2 (port 2), each in its own process, stream 24 x 32 x 3
frames at 50 fps for 3 s. Meanwhile, each in a process of its own:

- a rogue server with a valid key pair and the hub's public key, but not on the allow-list
  (port 1);
- a plain server without CURVE (port 2);
- raw TCP peers hammering both ports for the same 3 s with garbage handshakes: random bytes,
  a ZMTP greeting cut short, a ZMTP greeting announcing the NULL mechanism (then READY), one
  announcing PLAIN (then HELLO with a user name and password), and a CURVE greeting followed
  by a HELLO command full of garbage.

Numbers checked, for REQ/REP and for PUB/SUB (fifo delivery on the hub):

- 0 frames accepted from the attackers: the only server ids the hub ever shows
  (``snapshot()``, and every frame History recorded) are cam1 and cam2, the ids their keys
  give them; not one message reached the decoder either (0 rejections on both ports);
- each trusted stream: frames received >= 99 % of the frames the server reports having
  sent, each at most once, in order;
- the attackers did attack: every handshake kind was tried at least 10 times on each port,
  and the rogue and plain servers each tried to send at least 10 frames.
"""

from __future__ import annotations

import collections
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from helpers import open_hub, wait_until
from history import History, Reports
from procs import CTX, counted_stream, start

pytestmark = pytest.mark.timeout(60)

FPS = 50.0
ATTACK = 3.0  # seconds of streaming under attack
SHAPE = (24, 32, 3)
MIN_DELIVERED = 0.99
MIN_TRIES = 10
TRUSTED = ("cam1", "cam2")


def secure(keydir: Path, name: str) -> dict:
    return {"secure_mode": 2, "custom_cert_location": str(keydir), "key_name": name}


# ------------------------------------------------------------------ the processes


def _command(body: bytes) -> bytes:
    """A ZMTP 3 command frame."""
    if len(body) < 256:
        return bytes([0x04, len(body)]) + body
    return bytes([0x06]) + len(body).to_bytes(8, "big") + body


def _greeting(mechanism: bytes) -> bytes:
    """A ZMTP 3.1 greeting (64 bytes) announcing ``mechanism``, as a client."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def handshake_kinds(rng: np.random.Generator):
    """``{kind: bytes to send}``, a fresh variant each call."""
    socket_type = b"\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"
    user, password = b"admin", bytes(rng.integers(97, 123, 8, dtype=np.uint8))
    curve_hello = (b"\x05HELLO" + b"\x01\x00" + b"\x00" * 72
                   + bytes(rng.integers(0, 256, 32 + 8 + 80, dtype=np.uint8)))  # C', nonce, box: garbage
    assert len(curve_hello) == 200
    return {
        "random": bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8)),
        "truncated": _greeting(b"CURVE")[: int(rng.integers(1, 64))],
        "null": _greeting(b"NULL") + _command(b"\x05READY" + socket_type),
        "plain": _greeting(b"PLAIN") + _command(b"\x05HELLO" + bytes([len(user)]) + user
                                                + bytes([len(password)]) + password),
        "curve": _greeting(b"CURVE") + _command(curve_hello),
    }


def handshakes(ports, *, go, stop, results, seed: int) -> None:
    """Raw TCP peers: every kind of garbage handshake to every port until ``stop``."""
    rng = np.random.default_rng(seed)
    tries = collections.Counter()
    go.wait(30)
    while not stop.is_set():
        for port in ports:
            for kind, data in handshake_kinds(rng).items():
                with socket.create_connection(("127.0.0.1", port), timeout=1.0) as peer:
                    peer.settimeout(0.05)
                    try:
                        peer.sendall(data)
                        peer.recv(4096)  # whatever the hub answers (its greeting), if anything
                    except OSError:  # timeouts, or the hub closing on us: both expected
                        pass
                tries[f"{kind}@{port}"] += 1
        stop.wait(0.01)  # load shaping only
    results.put(("handshakes", "raw", dict(tries), os.getpid()))


# ----------------------------------------------------------------------------- the test


@pytest.mark.parametrize("pattern", [1, 2], ids=["reqrep", "pubsub"])
def test_ironhouse_accepts_0_frames_from_unauthenticated_peers_and_99_percent_of_trusted(procs, gears, keydir,
                                                                                        pattern):
    hub = open_hub(gears, [0, 0], pattern, delivery="fifo", secure_mode=2, custom_cert_location=str(keydir))
    port1, port2 = hub.ports
    go, queue = CTX.Event(), CTX.Queue()
    stops = {name: CTX.Event() for name in ("cam1", "cam2", "rogue", "plain", "raw")}
    quick = {"request_timeout": 0.1, "max_retries": 0} if pattern == 1 else {}  # refused: retry on fresh sockets
    servers = {
        "cam1": (port1, secure(keydir, "cam1")),  # no server_id: the key names it
        "cam2": (port2, secure(keydir, "cam2")),
        "rogue": (port1, {"server_id": "rogue", **secure(keydir, "rogue"), **quick}),
        "plain": (port2, {"server_id": "plain", **quick}),
    }
    reports = Reports(queue)
    try:
        for salt, (name, (port, options)) in enumerate(servers.items()):
            procs.append(start(counted_stream, port, pattern, name=name, go=go, stop=stops[name], results=queue,
                               fps=FPS, salt=salt, shape=SHAPE, options=options))
        procs.append(start(handshakes, [port1, port2], go=go, stop=stops["raw"], results=queue, seed=pattern))
        wait_until(lambda: set(TRUSTED) <= {s.server_id for s in hub.snapshot().alive()}, 30, "cam1 and cam2 alive")
        history = History(hub)
        go.set()
        history.run_for(ATTACK)
        for name in ("rogue", "plain", "raw"):
            stops[name].set()
        tries = reports.wait("handshakes", "raw")[0]
        refused = {name: reports.wait("sent", name) for name in ("rogue", "plain")}
        for name in TRUSTED:
            stops[name].set()
        history.run(until=lambda: all(history.first("left", port) for port in (port1, port2)), timeout=15,
                    what="the trusted servers' goodbyes")
        sent = {name: reports.wait("sent", name) for name in TRUSTED}
    finally:
        for stop in stops.values():
            stop.set()

    snap = hub.snapshot()
    # 0 frames (and not a byte of a message) from the attackers
    assert {s.server_id for s in snap.servers} == set(TRUSTED)
    seen_ids = {s.server_id for port in (port1, port2) for s in history.frames[port]}
    assert seen_ids == set(TRUSTED), seen_ids
    assert {port: dict(snap.rejected(port)) for port in (port1, port2)} == {port1: {}, port2: {}}
    # the trusted streams: >= 99 % of what they sent, each frame once, in order
    delivered = {}
    for name, port in (("cam1", port1), ("cam2", port2)):
        count, errors = sent[name]
        indices = [s.index for s in history.frames[port]]
        assert {s.server_id for s in history.frames[port]} == {name}
        assert len(indices) == len(set(indices)), f"{name}: a frame delivered twice"
        history.assert_in_order(port)
        assert set(indices) <= set(range(count))
        delivered[name] = len(indices) / count
        assert delivered[name] >= MIN_DELIVERED, f"{name}: {len(indices)} of {count} frames ({errors} send errors)"
        assert snap.server(port, name).frames == len(indices)
        assert snap.server(port, name).state == "closed"
    # the attacks did happen
    for port in (port1, port2):
        for kind in ("random", "truncated", "null", "plain", "curve"):
            assert tries.get(f"{kind}@{port}", 0) >= MIN_TRIES, tries
    for name, (count, errors) in refused.items():
        assert count >= MIN_TRIES, f"{name} tried {count} frames"
    print(f"\n{['', 'reqrep', 'pubsub'][pattern]}: delivered "
          + ", ".join(f"{name} {delivered[name]:.1%} of {sent[name][0]}" for name in TRUSTED)
          + f"; refused servers tried {', '.join(f'{n} {c} ({e} errors)' for n, (c, e) in refused.items())}"
          + f"; {sum(tries.values())} garbage handshakes ({min(tries.values())} to {max(tries.values())} per kind and port)")
