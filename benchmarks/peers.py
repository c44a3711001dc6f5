"""netgear next to its two peers, vidgear's NetGear (multi-server mode) and imagezmq, in the
same run: K camera servers in separate processes, one hub in this process, loopback TCP.

    netgear bench --peers                          # every scenario below
    netgear bench --peers --only raw --repeat 3    # scenarios whose name contains "raw"

Each library is used as its own documentation shows, with its own defaults (vidgear with
``logging=False``):

* netgear: ``NetGear(receive_mode=True, port=[0] * K, multiserver_mode=True)`` and
  ``recv_packet()``; its servers ``NetGear(address, port, multiserver_mode=True)`` and
  ``send(frame)``; the send time travels in the frame (``packet.sent_at``).
* vidgear: ``NetGear(receive_mode=True, port=[...], pattern=1, multiserver_mode=True)``
  and ``recv()`` (its default pattern, PAIR, refuses multi-server mode; its docs use 1);
  its servers ``send(frame, message={"t": time.time()})``.
* imagezmq: one ``ImageHub`` (REQ/REP) that the K ``ImageSender`` connect to,
  ``recv_image()`` / ``recv_jpg()`` then ``send_reply()``; the send time rides in the text
  message. For JPEG the sender encodes with simplejpeg and the hub decodes every frame in
  its receive loop, as imagezmq's examples do.

Frames are counted by the hub once it has them decoded, inside a window that starts 0.5 s
after the servers start. The hub CPU is this process's (``getrusage``) over the window.
Nothing waits without a bound: imagezmq's sockets get receive timeouts, a blocked vidgear
``recv()`` is ended by a watchdog that closes its hub, and every server process still
running at the end is killed. Reports from the server processes go through shared memory
(``multiprocessing.Array``), not pickle.

The hub process runs with netgear's malloc settings (:mod:`netgear.memory`) for all three
libraries: they are process wide, netgear's first hub would set them for whatever runs after
it, so they are set up front and the order of the systems does not matter. Freed memory is
handed back to the system (``malloc_trim``) before each system starts, so one system's
leftovers do not hide the next one's memory growth.
"""

from __future__ import annotations

import ctypes
import math
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from benchmarks.baseline import camera_frame
from benchmarks.bench import CTX, Result, _cpu, _line, _median_of, _pct
from benchmarks.delay_proxy import DelayProxy
from benchmarks.procstat import rss_mb

LOCAL = "127.0.0.1"
VGA = (480, 640, 3)
WARMUP = 0.5
#: longest a server waits for the start signal, and for a reply it is owed
SERVER_LIMIT = 60.0


@dataclass(frozen=True)
class PeerScenario:
    name: str
    servers: int
    shape: tuple = VGA
    jpeg: bool = False
    fps: Optional[float] = None  # None: flat out
    delay: float = 0.0  # seconds added each way by a delaying proxy
    consumer_fps: Optional[float] = None  # the hub sleeps 1/consumer_fps after each frame
    seconds: float = 3.0
    #: (row name, library, options): netgear's rows first; the others are compared with them
    systems: Tuple[Tuple[str, str, Tuple[Tuple[str, Any], ...]], ...] = (
        ("netgear", "netgear", ()),
        ("vidgear", "vidgear", ()),
        ("imagezmq", "imagezmq", ()),
    )


def peer_scenarios() -> List[PeerScenario]:
    latest = (("pattern", 2), ("delivery", "latest"))
    return [
        PeerScenario("peers-raw-k4-vga", 4),
        PeerScenario("peers-jpeg-k4-vga", 4, jpeg=True),
        PeerScenario("peers-rtt20ms-k1-vga", 1, delay=0.010),
        PeerScenario(
            "peers-slow-consumer-k4-vga", 4, fps=30, consumer_fps=2, seconds=5,
            systems=(("netgear", "netgear", ()), ("netgear-latest", "netgear", latest),
                     ("vidgear", "vidgear", ()), ("imagezmq", "imagezmq", ())),
        ),
    ]


# ------------------------------------------------------------------------- servers
#
# One process per server. ``report`` is a shared array of doubles, SLOTS per server:
# state (1 ready, 2 done, -1 failed), frames sent, CPU seconds and wall seconds from the
# start signal to the end of the sending loop.

SLOTS = 4


def peer_server(library: str, options: Tuple[Tuple[str, Any], ...], port: int, index: int, shape: tuple,
                jpeg: bool, fps: Optional[float], go: Any, stop: Any, report: Any) -> None:
    """A process target: one camera server of ``library`` sending to ``port``."""
    base = index * SLOTS
    try:
        frame = camera_frame(shape, index)
        opened = {"netgear": _netgear_server, "vidgear": _vidgear_server, "imagezmq": _imagezmq_server}[library]
        send, close = opened(dict(options), port, index, jpeg)
        try:
            report[base] = 1.0
            if not go.wait(SERVER_LIMIT):
                return
            cpu0, t0 = _cpu(), time.monotonic()
            sent = slot = 0
            while not stop.is_set():
                if fps:  # a camera: the next frame is due at the next tick, missed ticks are skipped
                    slot = max(slot, math.ceil((time.monotonic() - t0) * fps - 1e-9))
                    delay = t0 + slot / fps - time.monotonic()
                    slot += 1
                    if delay > 0 and stop.wait(delay):
                        break
                try:
                    send(frame)
                except Exception:
                    if stop.is_set():  # the hub stopped answering at the end: not a failure
                        break
                    raise
                sent += 1
            report[base + 1], report[base + 2], report[base + 3] = sent, _cpu() - cpu0, time.monotonic() - t0
        finally:
            close()
        report[base] = 2.0
    except BaseException:
        report[base] = -1.0
        print(f"peers: {library} server {index} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def _netgear_server(options: Dict[str, Any], port: int, index: int, jpeg: bool) -> Tuple[Callable, Callable]:
    from netgear import NetGear

    if jpeg:
        options["jpeg_compression"] = True
    gear = NetGear(address=LOCAL, port=port, multiserver_mode=True, **options)
    return gear.send, gear.close


def _vidgear_server(options: Dict[str, Any], port: int, index: int, jpeg: bool) -> Tuple[Callable, Callable]:
    from vidgear.gears import NetGear

    if jpeg:
        options["jpeg_compression"] = True
    # vidgear's default pattern (0, PAIR) refuses multi-server mode: its docs use pattern=1
    gear = NetGear(address=LOCAL, port=port, pattern=1, multiserver_mode=True, logging=False, **options)

    def send(frame: np.ndarray) -> None:
        gear.send(frame, message={"t": time.time()})

    return send, gear.close


def _imagezmq_server(options: Dict[str, Any], port: int, index: int, jpeg: bool) -> Tuple[Callable, Callable]:
    import imagezmq
    import zmq

    sender = imagezmq.ImageSender(connect_to=f"tcp://{LOCAL}:{port}")
    # imagezmq waits for its reply forever and lingers forever on close: bound both
    sender.zmq_socket.setsockopt(zmq.RCVTIMEO, int(SERVER_LIMIT * 1000))
    sender.zmq_socket.setsockopt(zmq.LINGER, 0)
    name = f"cam{index}"

    def send(frame: np.ndarray) -> None:
        sender.send_image(f"{name}|{time.time()!r}", frame)

    def send_jpg(frame: np.ndarray) -> None:
        import simplejpeg

        sent = time.time()
        data = simplejpeg.encode_jpeg(frame, quality=90, colorspace="BGR", fastdct=True)
        sender.send_jpg(f"{name}|{sent!r}", data)

    return (send_jpg if jpeg else send), sender.close


# ------------------------------------------------------------------------- hubs
#
# Each hub: ``ports`` to send to; ``recv(timeout)`` gives (sent_at, decoded bytes) for a
# frame, TIMEOUT, or END (the hub says every server is gone); ``done()`` after the consumer
# is through with the frame (imagezmq answers its sender there); ``close()``.

TIMEOUT, END = "timeout", "end"


class NetgearHub:
    def __init__(self, sc: PeerScenario, options: Dict[str, Any]) -> None:
        from netgear import NetGear

        self.gear = NetGear(address=LOCAL, port=[0] * sc.servers, receive_mode=True, multiserver_mode=True, **options)
        self.ports = list(self.gear.ports)

    def connected(self, count: int) -> bool:
        return len(self.gear.snapshot().alive()) >= count

    def recv(self, timeout: float) -> Any:
        try:
            packet = self.gear.recv_packet(timeout=max(0.01, timeout))
        except TimeoutError:
            return TIMEOUT
        if packet is None:
            return END
        return packet.sent_at, packet.frame.nbytes if packet.frame is not None else 0

    def done(self) -> None:
        pass

    def drops(self) -> int:
        return sum(s.dropped + s.lost for s in self.gear.snapshot().servers)

    def close(self) -> None:
        self.gear.close()


class VidgearHub:
    """vidgear's ``recv()`` waits, without a timeout, until a frame is queued or every server
    has said goodbye; :meth:`guard` arms a watchdog that closes the hub (which ends a waiting
    ``recv()`` with None) if that has not happened by a deadline."""

    def __init__(self, sc: PeerScenario, options: Dict[str, Any]) -> None:
        from vidgear.gears import NetGear

        for attempt in range(5):  # vidgear binds numbered ports: ones free a moment ago
            self.ports = [_free_port() for _ in range(sc.servers)]
            try:
                self.gear = NetGear(address=LOCAL, port=list(self.ports), pattern=1, receive_mode=True,
                                    multiserver_mode=True, logging=False, **options)
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        self._timer: Optional[threading.Timer] = None
        self.watchdog_fired = False

    def guard(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.watchdog_fired = True
        print("peers: vidgear's recv() still waiting at its deadline: closing its hub", file=sys.stderr, flush=True)
        self.gear.close()

    def connected(self, count: int) -> bool:
        return True

    def recv(self, timeout: float) -> Any:
        data = self.gear.recv()
        if data is None:
            return END
        message, frame = (data[1], data[2]) if len(data) == 3 else ({}, data[1])
        return float(message["t"]), frame.nbytes

    def done(self) -> None:
        pass

    def drops(self) -> int:
        return 0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.gear.close()


class ImagezmqHub:
    def __init__(self, sc: PeerScenario, options: Dict[str, Any]) -> None:
        import imagezmq
        import zmq

        self._zmq = zmq
        self.jpeg = sc.jpeg
        self.hub = imagezmq.ImageHub(open_port=f"tcp://{LOCAL}:*")  # the kernel picks the port
        sock = self.hub.zmq_socket
        # ImageHub waits forever in recv and lingers forever on close: bound both
        sock.setsockopt(zmq.RCVTIMEO, 200)
        sock.setsockopt(zmq.LINGER, 0)
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.ports = [int(endpoint.rsplit(":", 1)[1])] * sc.servers  # every sender to the one port
        self._owed = False

    def connected(self, count: int) -> bool:
        return True

    def recv(self, timeout: float) -> Any:
        try:
            if self.jpeg:
                import simplejpeg

                msg, buffer = self.hub.recv_jpg()
                self._owed = True
                nbytes = simplejpeg.decode_jpeg(buffer, colorspace="BGR").nbytes
            else:
                msg, image = self.hub.recv_image()
                self._owed = True
                nbytes = image.nbytes
        except self._zmq.Again:
            return TIMEOUT
        return float(msg.rpartition("|")[2]), nbytes

    def done(self) -> None:
        if self._owed:
            self._owed = False
            self.hub.send_reply(b"OK")

    def drops(self) -> int:
        return 0

    def close(self) -> None:
        self.hub.close()


HUBS = {"netgear": NetgearHub, "vidgear": VidgearHub, "imagezmq": ImagezmqHub}


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL, 0))
        return sock.getsockname()[1]


def _release_freed_memory() -> None:
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# ------------------------------------------------------------------------- one run


def run_system(sc: PeerScenario, row: str, library: str, options: Tuple[Tuple[str, Any], ...]) -> Result:
    """One system on one scenario: its hub here, its servers in processes; always cleaned up."""
    _release_freed_memory()
    hub = HUBS[library](sc, dict(options))
    proxies: List[DelayProxy] = []
    procs: List[Any] = []
    go, stop = CTX.Event(), CTX.Event()
    report = CTX.Array("d", SLOTS * sc.servers, lock=False)
    guard = getattr(hub, "guard", None)
    try:
        ports = hub.ports
        if sc.delay:
            proxies = [DelayProxy(port, sc.delay) for port in sorted(set(ports))]
            via = {p.target_port: p.port for p in proxies}
            ports = [via[port] for port in ports]
        procs = [CTX.Process(target=peer_server, args=(library, options, port, i, sc.shape, sc.jpeg, sc.fps, go, stop,
                                                       report), daemon=True) for i, port in enumerate(ports)]
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(report[i * SLOTS] != 0 for i in range(sc.servers)):
            time.sleep(0.02)
        failed = [i for i in range(sc.servers) if report[i * SLOTS] != 1]
        if failed:
            raise RuntimeError(f"{row}: servers {failed} did not start")
        while time.monotonic() < deadline and not hub.connected(sc.servers):
            time.sleep(0.02)
        time.sleep(0.2)  # the connections are made (vidgear and imagezmq have no handshake to wait on)
        rss0 = rss_mb()
        if guard:  # the window, the consumer's last sleep and a margin
            guard(WARMUP + sc.seconds + 20)
        go.set()
        result = _measure(sc, row, hub, rss0)
        stop.set()
        # keep answering until every server has left (REQ/REP servers wait for their reply)
        if guard:
            guard(15)
        drain_until = time.monotonic() + 15
        while any(p.is_alive() for p in procs) and time.monotonic() < drain_until:
            got = hub.recv(0.1)
            if got == END:
                break
            if got != TIMEOUT:
                hub.done()
        for proc in procs:
            proc.join(max(0.1, drain_until - time.monotonic()))
        result.drops = hub.drops()
        states = [report[i * SLOTS] for i in range(sc.servers)]
        result.server_cpu = sum(report[i * SLOTS + 2] / report[i * SLOTS + 3]
                                for i in range(sc.servers) if report[i * SLOTS + 3] > 0)
        if any(s != 2 for s in states):
            result.extra["servers_failed"] = sum(s != 2 for s in states)
        if getattr(hub, "watchdog_fired", False):
            result.extra["watchdog"] = 1
        return result
    finally:
        stop.set()
        go.set()  # a server still waiting to start leaves at once
        for proc in procs:
            if proc.pid is None:  # never started
                continue
            proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
        closer = threading.Thread(target=_quietly, args=(hub.close,), daemon=True)
        closer.start()
        closer.join(20)
        if closer.is_alive():
            print(f"peers: {row}: the hub's close() did not return within 20 s; left behind", file=sys.stderr)
        for proxy in proxies:
            proxy.close()


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        traceback.print_exc()


def _measure(sc: PeerScenario, row: str, hub: Any, rss0: float) -> Result:
    t_start = time.monotonic() + WARMUP
    t_end = t_start + sc.seconds
    latencies: List[float] = []
    frames = nbytes = 0
    cpu0: Optional[float] = None
    rss_max = rss0
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        if cpu0 is None and now >= t_start:
            cpu0 = _cpu()
        got = hub.recv(t_end - now)
        if got == END:
            break
        if got == TIMEOUT:
            continue
        sent_at, size = got
        latency_ms = (time.time() - sent_at) * 1000
        if time.monotonic() >= t_start:
            frames += 1
            nbytes += size
            latencies.append(latency_ms)
        if sc.consumer_fps:
            time.sleep(1.0 / sc.consumer_fps)
            rss_max = max(rss_max, rss_mb())
        hub.done()
    cpu = (_cpu() - (cpu0 if cpu0 is not None else _cpu())) / sc.seconds
    res = Result(sc.name, row, frames, frames / sc.seconds, nbytes / sc.seconds / 1e6,
                 _pct(latencies, 50), _pct(latencies, 99), hub_cpu=cpu)
    if sc.consumer_fps:  # the age of a frame when the consumer got it
        res.extra["age_p50_ms"] = res.p50_ms
        res.extra["age_p99_ms"] = res.p99_ms
        res.extra["hub_rss_growth_mb"] = rss_max - rss0
    return res


def run_scenario(sc: PeerScenario) -> List[Result]:
    """Every system on ``sc``, one after the other; netgear's rows carry the ratios."""
    rows = []
    for row, library, options in sc.systems:
        try:
            rows.append(run_system(sc, row, library, options))
        except Exception:  # cleaned up by run_system; the other systems still run
            print(f"peers: {sc.name}: {row} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            failed = Result(sc.name, row, p50_ms=float("nan"), p99_ms=float("nan"))
            failed.extra["failed"] = 1
            if sc.consumer_fps:
                failed.extra.update(age_p50_ms=float("nan"), age_p99_ms=float("nan"), hub_rss_growth_mb=float("nan"))
            rows.append(failed)
    _ratios(sc, rows)
    return rows


def _ratios(sc: PeerScenario, rows: List[Result]) -> None:
    by = {r.system: r for r in rows}
    for r in rows:
        if not r.system.startswith("netgear"):
            continue
        for peer in ("vidgear", "imagezmq"):
            if sc.consumer_fps:  # how many times older the peer's frames are
                ratio = by[peer].extra["age_p50_ms"] / r.extra["age_p50_ms"] if r.extra["age_p50_ms"] else float("nan")
            else:
                ratio = r.fps / by[peer].fps if by[peer].fps else float("nan")
            r.extra[f"ratio_vs_{peer}"] = ratio


def _medians(runs: List[List[Result]]) -> List[Result]:
    """Per system, bench's medians over the runs (ratios with their smallest and largest
    value), and the same spread for fps and the slow consumer's frame age."""
    out = []
    for i, first in enumerate(runs[0]):
        rows = [run[i] for run in runs]
        summary = _median_of(rows)
        summary.system = first.system
        summary.extra["median_of"] = len(rows)
        summary.extra["fps_min"], summary.extra["fps_max"] = min(r.fps for r in rows), max(r.fps for r in rows)
        ages = [r.extra["age_p50_ms"] for r in rows if "age_p50_ms" in r.extra]
        if ages:
            summary.extra["age_p50_ms_min"], summary.extra["age_p50_ms_max"] = min(ages), max(ages)
        out.append(summary)
    return out


def main(only: Optional[str], seconds: Optional[float], repeat: int, json_path: Optional[str]) -> int:
    """``netgear bench --peers``: run the matching scenarios, print a line per system and run,
    and with ``repeat`` > 1 a line of medians per system; write the rows to ``json_path``."""
    import json

    from netgear.memory import keep_freed_memory

    chosen = [sc for sc in peer_scenarios() if not only or only in sc.name]
    if not chosen:
        names = ", ".join(sc.name for sc in peer_scenarios())
        print(f"netgear bench: error: no --peers scenario matches {only!r} (there are: {names})", file=sys.stderr)
        return 2
    keep_freed_memory()
    results: List[Dict[str, Any]] = []
    for sc in chosen:
        if seconds:
            sc = replace(sc, seconds=seconds)
        runs = []
        for i in range(repeat):
            rows = run_scenario(sc)
            for r in rows:
                if repeat > 1:
                    r.extra["repeat"] = i + 1
                print(_line(r), flush=True)
                results.append(asdict(r))
            runs.append(rows)
        if repeat > 1:
            for r in _medians(runs):
                print(_line(r), flush=True)
                results.append(asdict(r))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0
