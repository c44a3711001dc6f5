"""ZeroMQ, and only here.

The hub (:class:`HubTransport`) binds one socket per port: ROUTER for REQ/REP (it answers
REQ and DEALER peers alike, out of order, and never stalls on a peer that connected and left),
SUB for PUB/SUB, PAIR for a single pair. A socket monitor per port turns connection drops into
:class:`Disconnected` observations; every received message carries the file descriptor of the
connection it came on, so a drop can be pinned to the server that used it.

A server (:class:`ServerTransport`) connects one socket: DEALER (speaks to ROUTER and REP),
PUB or PAIR. Envelopes (the REQ delimiter, the PUB/SUB topic frame) are added and removed
here, so the wire codec only ever sees ``[header, *payload]``.

Each object owns its own ``zmq.Context``: closing one never touches another.

Security (``secure_mode`` 1 or 2): the hub is the CURVE server (its secret key) and runs a
ZAP handler (``zmq.auth.thread.ThreadAuthenticator``) in its own context, started before any
socket binds; every socket enforces its ZAP domain, so a missing handler refuses connections
instead of letting them through. Servers are CURVE clients (their own pair + the hub's public
key). Under Ironhouse the ZAP handler answers with the server's key name as User-Id, which
:class:`Incoming` carries as ``identity``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from . import keys

from .errors import TransportError
from .options import Endpoint, Options
from .wire import formats, native

__all__ = [
    "HubTransport",
    "ServerTransport",
    "Incoming",
    "Disconnected",
    "bye_topic",
    "topic_frame",
    "CONTROL_TOPIC",
    "curve_keypair",
]

#: ZAP domain of every secured socket (enforced: no ZAP handler, no connection)
_ZAP_DOMAIN = b"netgear"

_log = logging.getLogger(__name__)

#: first frame of PUB/SUB control messages (heartbeat, goodbye): always subscribed
CONTROL_TOPIC = b"\x00"
#: how many messages one socket may deliver per poll round before the others get a turn
_BATCH = 64
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_SRCFD = int(zmq.SRCFD)  # (the descriptor a message came in on: which connection)
_SNDMORE = int(zmq.SNDMORE)
#: how often a server reads its connection monitor (seconds)
_MONITOR_EVERY = 0.001
#: parts at least this large go zero-copy (ZeroMQ reads the caller's buffer); smaller ones
#: are copied, which costs less than the bookkeeping of a zero-copy send (every socket's
#: ``copy_threshold``: pyzmq decides in C, per part)
_ZERO_COPY_MIN = 65536
#: JPEG payloads under this size are copied whatever ``_ZERO_COPY_MIN`` says (see
#: :func:`copied`)
JPEG_COPY_BELOW = 256 * 1024
#: the kernel's send buffer per socket type when ``send_buffer`` is None (0: autotuned);
#: see docs/performance.md, "A congested link" (PUB/SUB) and "Kernel send buffers"
_SEND_BUFFER = {zmq.XPUB: 128 << 10, zmq.DEALER: 512 << 10}
#: PUB/SUB's default buffer grows with the frames: to half the largest frame sent (the
#: kernel doubles the figure: about one frame), up to this (see ServerTransport._fit_buffer)
_SEND_BUFFER_MAX = 256 << 10


def _send_parts(sock: zmq.Socket, parts: Sequence[Any], flags: int) -> None:
    """``send_multipart(parts, flags, copy=False)`` without pyzmq's per-part checks and enum
    arithmetic (every frame and every answer goes through here). ZeroMQ takes a multipart
    message whole or not at all: only the first part can raise ``zmq.Again``. Parts under
    the socket's ``copy_threshold`` (:data:`_ZERO_COPY_MIN`) are copied by pyzmq itself."""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        sock.send(part, flags if i == last else flags | _SNDMORE, copy=False)


def copied(data: Any) -> zmq.Frame:
    """``data`` copied into a message ZeroMQ owns, to send instead of ``data`` itself.

    A zero-copy send lends ZeroMQ the caller's buffer, and once ZeroMQ is done with it
    pyzmq's garbage-collector thread has to wake up to let it go: a thread wake-up per
    message. For a compressed frame that costs more than the copy (a 640x480 JPEG of
    about 120 KB: 30 % less server CPU per frame, measured on loopback with the hub
    setting the pace; nothing to gain at 1920x1080's 800 KB). Raw frames, far larger
    for their pixels, stay zero-copy."""
    return zmq.Frame(data, copy=True)


def _recv_parts(sock: zmq.Socket) -> List[bytes]:
    """``recv_multipart(NOBLOCK)`` for small messages (answers), with ``Frame.more``
    instead of a getsockopt per part."""
    frame = sock.recv(_NOBLOCK, copy=False)
    parts = [frame.bytes]
    while frame.more:
        frame = sock.recv(_NOBLOCK, copy=False)
        parts.append(frame.bytes)
    return parts


def _poll1(sock: zmq.Socket, events: int, ms: int) -> bool:
    """Whether ``sock`` has ``events`` within ``ms`` milliseconds (``Socket.poll`` builds a
    ``Poller`` every call)."""
    return bool(zmq.zmq_poll([(sock, events)], ms))


def bye_topic(session: int) -> bytes:
    """The subscription a native PUB/SUB hub makes (and drops at once) to confirm the
    goodbye of the server incarnation ``session`` (the header's ``s``: under Ironhouse the
    hub names servers by their keys, so the id a server claims is no use here). A
    subscription, because it is the only thing a SUB socket can say to its publishers. No
    server publishes under it: it is longer than ``CONTROL_TOPIC``, and topics are matched
    by prefix."""
    return CONTROL_TOPIC + b"bye\x00" + session.to_bytes(4, "big")


def topic_frame(topic: str) -> bytes:
    """PUB/SUB topic frame. The NUL terminator makes subscriptions exact: "5566" != "55660"."""
    return topic.encode("utf-8") + b"\x00"


@dataclass(slots=True, eq=False)
class Incoming:
    """A message that arrived on ``port``: ``parts`` is ``[header, *payload]`` (one per
    message: slots, not frozen, which would cost a call per field)."""

    port: int
    conn: Optional[int]
    envelope: List[Any]
    parts: List[Any]
    #: Ironhouse: the name of the authenticated key the message came with (else None)
    identity: Optional[str] = None


@dataclass(frozen=True)
class Disconnected:
    """The connection ``conn`` (a file descriptor) on ``port`` went away.

    ``reused``: a new connection was accepted on the same descriptor number by the time
    this was read, so messages read in the same poll round that carry ``conn`` may be the
    new connection's (libzmq reports the old one's end before it accepts the new one, and
    accepts it before any of its messages arrive; each round reads messages first, then
    these events).
    """

    port: int
    conn: int
    reused: bool = False


Observation = Union[Incoming, Disconnected]


def _heartbeats(sock: zmq.Socket, opts: Options) -> None:
    """ZMTP-level heartbeats: a frozen or unplugged peer is dropped even when idle."""
    ivl = max(100, int(opts.heartbeat_interval * 1000))
    sock.setsockopt(zmq.HEARTBEAT_IVL, ivl)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(opts.liveness_timeout * 1000))
    sock.setsockopt(zmq.HEARTBEAT_TTL, int(opts.liveness_timeout * 1000))


def _identity_of(frame: Any) -> str:
    """The User-Id the ZAP handler gave the connection; never empty under Ironhouse."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError, ValueError):
        user = None
    return user or "?unauthenticated"


def _conn_of(frame: Any) -> Optional[int]:
    try:
        return int(frame.get(_SRCFD))
    except (zmq.ZMQError, AttributeError, TypeError, ValueError):
        return None


def curve_keypair() -> Tuple[bytes, bytes]:
    """A new CURVE key pair, Z85-encoded: (public, secret)."""
    if not zmq.has("curve"):  # pragma: no cover - every pyzmq wheel has it
        raise TransportError("this libzmq was built without CURVE support")
    return zmq.curve_keypair()


class _Keys:
    """ZAP credentials callback: the allow-list (None: any key, Stonehouse)."""

    def __init__(self, allowed: Optional[Dict[bytes, str]]) -> None:
        self.allowed = allowed

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = self.allowed  # one read: reload_keys() swaps the whole dict
        return allowed is None or key in allowed

    def name(self, key: bytes) -> str:
        allowed = self.allowed
        z85_key = z85.encode(key)
        return (allowed or {}).get(z85_key) or z85_key.decode("ascii")


class _Authenticator(ThreadAuthenticator):
    """A ZAP handler whose User-Id is the server's key name (Ironhouse)."""

    def __init__(self, context: zmq.Context, known: _Keys) -> None:
        super().__init__(context=context, log=_log.getChild("zap"))
        self._known = known

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._known.name(client_public_key)


class _HubSecurity:
    """The hub's keys and ZAP handler (one per hub object, in the hub's context)."""

    def __init__(self, ctx: zmq.Context, opts: Options) -> None:
        pair, self.folder = keys.hub_keys(opts)
        self.public, self.secret = pair.public, pair.secret
        self.known = _Keys(keys.allow_list(self.folder) if self.folder is not None else None)
        self.auth = _Authenticator(ctx, self.known)
        self.auth.start()
        self.auth.configure_curve_callback(_ZAP_DOMAIN.decode(), self.known)

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.ZAP_DOMAIN, _ZAP_DOMAIN)
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)

    def reload(self) -> int:
        if self.folder is None:
            return 0
        self.known.allowed = keys.allow_list(self.folder)
        return len(self.known.allowed)

    def stop(self) -> None:
        try:
            self.auth.stop()
        except zmq.ZMQError:  # pragma: no cover
            pass


class HubTransport:
    """The hub's sockets: one per port, bound; plus monitors and a wake-up pipe."""

    def __init__(
        self,
        pattern: int,
        endpoints: Sequence[Endpoint],
        opts: Options,
        subscriptions: Optional[Callable[[int], List[bytes]]] = None,
    ) -> None:
        self.pattern = pattern
        self._ctx = zmq.Context(io_threads=1)
        self._sockets: Dict[int, zmq.Socket] = {}
        self._monitors: Dict[zmq.Socket, int] = {}
        self._monitor_of: Dict[zmq.Socket, zmq.Socket] = {}  # (two endpoints may share a port)
        #: each monitor by its ZMQ_FD, which is what the poll watches (see _open)
        self._monitor_fds: Dict[int, zmq.Socket] = {}
        #: connection events read while opening the sockets, for the first poll
        self._early: List[Observation] = []
        self._by_socket: Dict[zmq.Socket, int] = {}
        self._poller = zmq.Poller()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = False
        # wake() may run in any thread: it must never write to the pipe's file descriptor
        # once close() has released it (the number may already belong to another file).
        self._wake_lock = threading.Lock()
        self._wake_pending = False  # a byte is in the wake pipe, not drained yet
        self.endpoints: List[Endpoint] = []
        self._security: Optional[_HubSecurity] = None
        self._identities = opts.secure_mode == 2
        try:
            if opts.secure_mode:
                self._security = _HubSecurity(self._ctx, opts)
            for endpoint in endpoints:
                self._open(endpoint, opts, subscriptions)
            for url in opts.connect_to or ():
                self._open(Endpoint("tcp", url, int(url.rsplit(":", 1)[1])), opts, subscriptions, connect=True)
        except BaseException:
            self.close()
            raise
        self._poller.register(self._wake_r, zmq.POLLIN)

    # -- setup -----------------------------------------------------------------------

    def _open(
        self,
        endpoint: Endpoint,
        opts: Options,
        subs: Optional[Callable[[int], List[bytes]]],
        connect: bool = False,
    ) -> None:
        kind = {0: zmq.PAIR, 1: zmq.ROUTER, 2: zmq.SUB}[self.pattern]
        sock = self._ctx.socket(kind)
        sock.copy_threshold = _ZERO_COPY_MIN
        sock.setsockopt(zmq.LINGER, 0)
        # Far above what the hub holds back: its I/O thread drains each socket into the
        # per-server queues (where the delivery policy bounds them), so ZeroMQ's queue only
        # fills when that thread is starved. Kept large on purpose: libzmq 4.3.5 aborts the
        # process ("Assertion failed: !_io_error", stream_engine_base.cpp) when a peer's
        # connection fails while its full queue is stopped and the queue is read later.
        sock.setsockopt(zmq.RCVHWM, max(1000, opts.queue_size * 2))
        # Frames up to twice the limit reach the codec and are counted as "oversize";
        # anything larger makes ZeroMQ drop the connection before buffering it.
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * max(opts.max_frame_bytes, opts.max_message_bytes + 65536))
        _heartbeats(sock, opts)
        if self._security is not None:
            self._security.apply(sock)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        try:
            if connect:  # a publisher that binds (imagezmq): endpoint.address is its URL
                sock.connect(endpoint.address)
            elif endpoint.protocol == "tcp" and endpoint.port == 0:
                port = sock.bind_to_random_port(f"tcp://{endpoint.address}")
                endpoint = Endpoint(endpoint.protocol, endpoint.address, port)
            else:
                sock.bind(endpoint.url())
        except zmq.ZMQError as exc:
            sock.close(0)
            hint = " (is another hub running on it?)" if exc.errno == errno.EADDRINUSE else ""
            raise TransportError(f"cannot bind {endpoint.url()}: {exc.strerror}{hint}") from exc
        if kind == zmq.SUB:
            for prefix in subs(endpoint.port) if subs else [b""]:
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_ACCEPTED)
        self._sockets[endpoint.port] = sock
        self._by_socket[sock] = endpoint.port
        self._monitors[monitor] = endpoint.port
        self._monitor_of[sock] = monitor
        self._poller.register(sock, zmq.POLLIN)
        # The monitor is polled by its ZMQ_FD, not as a ZeroMQ socket, so zmq_poll does no
        # ZeroMQ work for it on every pass (a getsockopt for the descriptor and one for its
        # events) for a socket that speaks only when a connection comes or goes (see
        # docs/performance.md). libzmq signals that descriptor when a message arrives in a
        # queue that a read (or an events check) last found empty, and never again while
        # the queue holds an unread message. So only this class reads the monitor, and
        # every read drains it to EAGAIN (_drain_monitor), starting with one right here: a
        # fresh queue was never found empty, so its first event would not signal. A signal
        # with nothing to read costs one EAGAIN.
        self._drain_monitor(monitor, self._early)
        fd = monitor.get(zmq.FD)
        self._monitor_fds[fd] = monitor
        self._poller.register(fd, zmq.POLLIN)
        self.endpoints.append(endpoint)

    @property
    def ports(self) -> List[int]:
        return [e.port for e in self.endpoints]

    # -- the I/O loop's side -----------------------------------------------------------

    def poll(self, timeout: Optional[float]) -> Tuple[List[Observation], bool]:
        """Wait up to ``timeout`` seconds; return what arrived and whether a wake-up came."""
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        ready = dict(zmq.zmq_poll(self._poller.sockets, -1 if ms is None else ms))  # (Poller.poll's own work)
        woken = False
        out: List[Observation] = []
        if self._early:  # (before anything this poll read, as they happened)
            out, self._early = self._early, out
        if self._wake_r in ready:
            woken = True
            self._drain_wake()
        spoke = []
        for sock in ready:
            port = self._by_socket.get(sock)
            if port is not None:
                self._drain(sock, port, out)
                spoke.append(sock)
        # Connection events after the messages: from every monitor the poll found ready,
        # and from those of the sockets that had messages this round, ready or not by now,
        # so a new connection's "accepted" is always read in the same round as its first
        # message, or before (see Disconnected).
        monitors = [self._monitor_fds[fd] for fd in ready if fd in self._monitor_fds]
        for sock in spoke:
            monitor = self._monitor_of[sock]
            if monitor not in monitors and monitor.get(_EVENTS) & _POLLIN:
                monitors.append(monitor)
        for monitor in monitors:
            self._drain_monitor(monitor, out)
        return out, woken

    def _drain(self, sock: zmq.Socket, port: int, out: List[Observation]) -> None:
        # The hot path: plain int flags (pyzmq's enum arithmetic costs microseconds per
        # call), ``Frame.more`` instead of a getsockopt per part, and EVENTS instead of
        # an ``Again`` exception to find the end of what is queued.
        for _ in range(_BATCH):
            try:
                frame = sock.recv(_NOBLOCK, copy=False)
                frames = [frame]
                while frame.more:
                    frame = sock.recv(_NOBLOCK, copy=False)
                    frames.append(frame)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:  # pragma: no cover - socket torn down under us
                _log.debug("recv on port %s failed: %s", port, exc)
                return
            conn = _conn_of(frames[0])
            identity = _identity_of(frames[-1]) if self._identities else None
            # routing id + delimiter (ROUTER), topic frame (SUB): kept to address answers
            if self.pattern == 1 and len(frames) > 2 and len(frames[1]) == 0:
                envelope, parts = frames[:2], frames[2:]  # a REQ or DEALER peer: the common case
            else:
                envelope, parts = formats.unwrap(self.pattern, frames)
            out.append(Incoming(port, conn, envelope, parts, identity))
            if not sock.get(_EVENTS) & _POLLIN:
                return

    def _drain_monitor(self, monitor: zmq.Socket, out: List[Observation]) -> None:
        port = self._monitors[monitor]
        while True:
            try:
                msg = monitor.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:  # pragma: no cover
                return
            try:
                event = parse_monitor_message(msg)
            except Exception:  # pragma: no cover - malformed monitor message
                continue
            if event["event"] == zmq.EVENT_DISCONNECTED:
                out.append(Disconnected(port, int(event["value"])))
            elif event["event"] == zmq.EVENT_ACCEPTED:
                fd = int(event["value"])
                for index, item in enumerate(out):  # the descriptor is someone else's now
                    if isinstance(item, Disconnected) and item.port == port and item.conn == fd and not item.reused:
                        out[index] = Disconnected(port, fd, True)

    def _drain_wake(self) -> None:
        # One read empties the pipe: wake() writes only while no wake-up is pending, so it
        # never holds more than one byte (a loop until EAGAIN cost a raised exception per
        # wake-up, and decoders wake the polling consumer once per frame).
        try:
            os.read(self._wake_r, 4096)
        except (BlockingIOError, OSError):
            pass
        # Cleared after reading, never before: a wake() that skipped its write since the
        # read published its state before calling, and this round reads that state after
        # the poll (commands, the consumer's queue, _wanted); cleared first, a write could
        # be read here and every later wake() skipped for good.
        self._wake_pending = False

    def reply(self, port: int, envelope: Sequence[Any], parts: Sequence[Any]) -> bool:
        """Answer the peer a message came from (its ``envelope``). False if it is gone."""
        sock = self._sockets.get(port)
        if sock is None or self.pattern == 2:
            return False
        try:
            _send_parts(sock, [*envelope, *parts], _NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def confirm(self, port: int, topic: bytes) -> None:
        """PUB/SUB: subscribe to ``topic`` and drop it at once, which tells the publishers on
        ``port`` that their goodbye arrived (see :func:`bye_topic`)."""
        sock = self._sockets.get(port)
        if sock is None or self.pattern != 2:
            return
        try:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
            sock.setsockopt(zmq.UNSUBSCRIBE, topic)
        except zmq.ZMQError:  # pragma: no cover - a closing socket
            pass

    def reload_keys(self) -> int:
        """Ironhouse: re-read the allow-list; new connections are checked against it at once.

        Returns how many keys are allowed (0 for Stonehouse or no security)."""
        return self._security.reload() if self._security is not None else 0

    def wake(self) -> None:
        """Interrupt :meth:`poll` from any thread (a no-op once closed)."""
        if self._wake_pending:  # the poll will return anyway (decoders wake it per frame)
            return
        with self._wake_lock:
            if self._closed or self._wake_pending:
                return
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass  # the pipe is full: a wake-up is already pending

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Stop the monitors before closing their reading ends: libzmq's I/O thread sends
        # monitor events blocking, so an event (a peer disconnecting right now) sent to a
        # monitor whose reader is gone would block it forever, holding the lock that
        # disable_monitor() and close() need: close() would hang.
        # Every socket, not self._sockets: two endpoints may share a port number (connect_to
        # addresses on different hosts), and one socket left open would hang ctx.term().
        sockets = list(self._by_socket)
        for sock in sockets:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        for monitor in list(self._monitors):
            monitor.close(0)
        for sock in sockets:
            sock.close(0)
        if self._security is not None:
            self._security.stop()
        self._ctx.term()
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass


class ServerTransport:
    """A server's one connected socket, replaceable by a fresh one (REQ/REP retries)."""

    def __init__(
        self, pattern: int, endpoint: Endpoint, opts: Options, topic: str, fmt: ModuleType = native
    ) -> None:
        self.pattern = pattern
        self.endpoint = endpoint
        self._opts = opts
        self._fmt = fmt
        self._bind = pattern == 2 and formats.publisher_binds(fmt)
        self._curve: Optional[Tuple[bytes, bytes, bytes]] = None
        if opts.secure_mode:  # keys first: a missing or exposed key leaves nothing open
            pair, hub = keys.server_keys(opts)
            assert pair.secret is not None
            self._curve = (pair.public, pair.secret, hub.public)
        self._ctx = zmq.Context(io_threads=1)
        self._topic = topic_frame(topic)
        self._sock: Optional[zmq.Socket] = None
        self._monitor: Optional[zmq.Socket] = None
        self._watch_drops = False
        self._was_dropped = False
        self._monitor_read_at = 0.0
        #: PUB/SUB, default send_buffer: the buffer the frames sent so far call for, and
        #: the kernel socket of the connection to the hub (from the monitor), to apply it to
        self._fit_to_frames = False
        self._send_buffer = 0
        self._conn_fd: Optional[int] = None
        self._closed = False
        #: XPUB: the topics connected hubs subscribe to (none: no hub is connected)
        self._topics: Set[bytes] = set()
        #: XPUB: the goodbye's confirmation to look out for, and whether it came
        self._bye_topic: Optional[bytes] = None
        self._bye_heard = False
        self._open()

    def _open(self) -> None:
        self._topics.clear()
        kind = {0: zmq.PAIR, 1: zmq.DEALER, 2: zmq.XPUB}[self.pattern]
        sock = self._ctx.socket(kind)
        sock.copy_threshold = _ZERO_COPY_MIN
        sock.setsockopt(zmq.LINGER, 0)
        # REQ/REP: the window (max_inflight) bounds what is queued, so ZeroMQ's queue must
        # hold all of it plus a heartbeat or goodbye, or frames the window allows wait for
        # room (send_hwm is the PUB/SUB and PAIR queue)
        hwm = self._opts.max_inflight + 2 if kind == zmq.DEALER else self._opts.send_hwm
        sock.setsockopt(zmq.SNDHWM, hwm)
        if kind == zmq.XPUB:
            # A PUB that refuses (EAGAIN) instead of silently dropping at the high-water
            # mark, and only for a connected hub (no subscriber, no queue: nothing waits).
            # send() waits up to publish_wait for room, then drops: a sender looping flat
            # out is paced by the hub instead of burning the CPU on frames that vanish.
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.SNDTIMEO, int(self._opts.publish_wait * 1000))
            # And queue only for a live connection: while the hub is unreachable nothing
            # piles up to be replayed, stale, when the network heals.
            sock.setsockopt(zmq.IMMEDIATE, 1)
        send_buffer = self._opts.send_buffer
        if send_buffer is None:
            # The kernel's send buffer, fixed instead of autotuned (_SEND_BUFFER).
            # PUB/SUB, 128 KiB: frames waiting in the kernel are frames a live display gets
            # late; on a link slower than the camera the autotuned buffer grows to hold about
            # a second of them (docs/performance.md, "A congested link"). 128 KiB keeps it to
            # a compressed frame or two (raw frames get up to 256 KiB: _fit_buffer) and
            # still fills a gigabit link or fast Wi-Fi (it caps what is in flight at about
            # twice that: 25 MB/s at 10 ms of round trip).
            # REQ/REP, 512 KiB: the window bounds what is in flight already; an autotuned
            # buffer (megabytes) only moves frames out of ZeroMQ's queue, where they are
            # references to the caller's array, into the kernel, copied, where they go cold
            # before the hub reads them. 512 KiB still carries 50 MB/s at 20 ms of round trip.
            send_buffer = max(_SEND_BUFFER.get(kind, 0), self._send_buffer)
            # PUB/SUB: and more for large frames, once they are sent (_fit_buffer)
            self._fit_to_frames = kind == zmq.XPUB and not self._bind and self.endpoint.protocol == "tcp"
        if send_buffer:
            sock.setsockopt(zmq.SNDBUF, send_buffer)
            self._send_buffer = send_buffer
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        # back-off capped at half a second, and a connection attempt stuck in a dead network
        # abandoned after half a second (else the kernel's SYN back-off, 1 s, 2 s, 4 s ...,
        # decides when the next try gets through): frames resume within a second of a heal
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        sock.setsockopt(zmq.CONNECT_TIMEOUT, 500)
        sock.setsockopt(zmq.MAXMSGSIZE, self._opts.max_message_bytes + 65536)
        _heartbeats(sock, self._opts)
        if self._curve is not None:
            public, secret, server = self._curve
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.CURVE_SERVERKEY, server)
        if kind == zmq.DEALER and formats.sequenced(self._fmt):
            # Queue only for a connected hub, so a retry never replays a stale backlog.
            # Not for the foreign formats: they send one frame at a time (as the REQ sockets
            # of vidgear and imagezmq do), and with IMMEDIATE libzmq discards an answer not
            # read yet when the hub disconnects right after sending it (an ImageHub that
            # answers its last image and exits): the frame would be resent, and time out.
            sock.setsockopt(zmq.IMMEDIATE, 1)
        verb = "bind" if self._bind else "connect"
        try:
            if self._bind:  # imagezmq's PUB/SUB: the sender binds, the hub connects
                sock.bind(self.endpoint.url())
            else:
                sock.connect(self.endpoint.url())
        except zmq.ZMQError as exc:
            sock.close(0)
            raise TransportError(f"cannot {verb} {self.endpoint.url()}: {exc.strerror}") from exc
        self._sock = sock
        self._conn_fd = None
        if kind == zmq.DEALER and formats.sequenced(self._fmt):
            # tells the server that the connection its frames in flight went out on dropped
            self._watch_drops = True
            self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        elif self._fit_to_frames:
            # which kernel socket is the connection to the hub (the event's value)
            self._monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)

    @property
    def watches_drops(self) -> bool:
        """Whether :meth:`dropped` can tell (REQ/REP in the native format: a connection
        monitor). Without it a dropped connection goes unseen."""
        return self._watch_drops

    def _fit_buffer(self, parts: Sequence[Any]) -> None:
        """PUB/SUB with the default ``send_buffer``: grow the connection's kernel buffer to
        half the largest frame sent so far (the kernel doubles it: about one frame), from
        128 KiB up to 256 KiB.

        A fixed 128 KiB keeps frames fresh on a congested link (a compressed 640x480 frame
        or two), but a raw frame of 900 KB then takes ZeroMQ's I/O thread seven refills
        of the kernel's buffer, and the hub reads it in as many pieces: one sender alone
        made a quarter fewer frames than with 256 KiB. Compressed frames keep the 128 KiB;
        raw ones get up to 256 KiB. More (512 KiB) made one or two senders faster still,
        but cost 8 senders flat out a quarter of their frames: the hub then copies
        megabytes gone cold out of the kernel (docs/performance.md, "Kernel send buffers")."""
        if self._send_buffer >= _SEND_BUFFER_MAX:
            return  # (grown all the way: most raw frames, from their first)
        size = 0
        for part in parts[1:]:
            size += part.nbytes if isinstance(part, memoryview) else len(part)
        wanted = min(_SEND_BUFFER_MAX, size // 2)
        if wanted <= self._send_buffer:
            return
        self._send_buffer = wanted
        sock = self._sock
        assert sock is not None
        sock.setsockopt(zmq.SNDBUF, wanted)  # the next connections (after a reconnect)
        self._monitor_read_at = 0.0
        self._drain_monitor()  # the current one: its socket, as the monitor last said
        self._resize_connection()

    def _resize_connection(self) -> None:
        """Set the kernel send buffer of the connection ZeroMQ holds to the hub.

        ZeroMQ applies ``SNDBUF`` only to connections it opens later; this one's socket
        (reported by the monitor) is set directly, once it is checked to be a TCP socket
        connected to the hub's port: a descriptor whose connection dropped since the
        monitor spoke is left alone (its own monitor event follows)."""
        fd = self._conn_fd
        if fd is None or not self._send_buffer:
            return
        try:
            conn = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            if conn.type == socket.SOCK_STREAM and conn.getpeername()[1] == self.endpoint.port:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
        except OSError:
            pass
        finally:
            conn.close()

    def dropped(self) -> bool:
        """True if the connection to the hub dropped since the last call (REQ/REP)."""
        self._drain_monitor()
        seen, self._was_dropped = self._was_dropped, False
        return seen

    def _drain_monitor(self) -> None:
        # Read on every send too: libzmq's I/O thread blocks on a full monitor queue, so
        # months of flaky Wi-Fi without a wait for answers must not fill it. At most once a
        # millisecond: asking costs a few microseconds (and syscalls), twice per frame.
        monitor = self._monitor
        now = time.monotonic()
        if monitor is None or now - self._monitor_read_at < _MONITOR_EVERY:
            return
        self._monitor_read_at = now
        while monitor.get(_EVENTS) & _POLLIN:
            try:
                event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.ZMQError:  # pragma: no cover
                break
            if event["event"] == zmq.EVENT_CONNECTED:
                self._conn_fd = event["value"]
                self._resize_connection()  # (the size it has, unless grown since it connected)
            else:
                self._was_dropped = True
                self._conn_fd = None

    def _close_monitor(self) -> None:
        # stopped before its reading end closes (see HubTransport.close)
        if self._monitor is not None and self._sock is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:  # pragma: no cover
                pass
            self._monitor.close(0)
        self._monitor = None

    def reset(self) -> None:
        """Drop the socket (and anything queued on it) and connect a fresh one."""
        self._close_monitor()
        if self._sock is not None:
            self._sock.close(0)
        self._open()

    def send(self, parts: Sequence[Any], *, control: bool = False, timeout: Optional[float] = None) -> bool:
        """Send ``[header, *payload]``. Returns False when it could not go out in time.

        PUB/SUB frames wait up to ``publish_wait`` (the XPUB's SNDTIMEO) while a connected
        hub is behind; control messages never wait. DEALER and PAIR wait up to ``timeout``
        seconds for room (``None``/0: do not wait).
        """
        sock = self._sock
        assert sock is not None
        topic = CONTROL_TOPIC if control else self._topic
        frames = formats.wrap(self._fmt, self.pattern, parts, topic=topic)
        if self._fit_to_frames and not control:
            self._fit_buffer(parts)
        self._drain_monitor()
        if timeout:
            if not _poll1(sock, _POLLOUT, int(timeout * 1000)):
                return False
        else:
            # Have ZeroMQ take in its pending commands first (as poll() does): among them
            # the peer's "n messages read". A socket that only sends processes them lazily
            # (at most once a millisecond, and not at all under load), so without this it
            # counts long-delivered messages against send_hwm and PUB drops sends for nothing.
            if self.pattern == 2 and sock.get(_EVENTS) & _POLLIN:
                self._read_subscriptions()
        # XPUB (PUB/SUB frames): blocks up to publish_wait (SNDTIMEO) for room; control
        # messages (heartbeats, goodbye) never wait.
        flags = _NOBLOCK if (self.pattern != 2 or control) else 0
        try:
            _send_parts(sock, frames, flags)
            return True
        except zmq.Again:
            return False

    def _read_subscriptions(self) -> None:
        """An XPUB hears its hubs' (un)subscriptions: which topics are wanted (none once
        every hub is gone: libzmq unsubscribes a leaving peer's topics) and a hub's
        confirmation of the goodbye."""
        sock = self._sock
        assert sock is not None
        try:
            while sock.get(_EVENTS) & _POLLIN:
                msg = sock.recv(_NOBLOCK)
                topic = msg[1:]
                if msg[:1] == b"\x01":
                    self._topics.add(topic)
                    if topic == self._bye_topic:
                        self._bye_heard = True
                else:
                    self._topics.discard(topic)
        except zmq.ZMQError:
            pass

    def goodbye(self, parts: Sequence[Any], *, confirm: Optional[bytes], timeout: float) -> bool:
        """Send the goodbye. True once it is known delivered (PUB/SUB with ``confirm``: the
        hub subscribed to ``confirm``), or, without a way to know, once it is queued.

        PUB/SUB waits, up to ``timeout`` seconds in all, for room behind the server's last
        frames and then for the hub's confirmation. Queued is not enough there: when the
        socket closes, libzmq's linger hands what is queued to the connection, which drops
        whatever it has not written yet (all of it while a slow hub keeps the kernel's
        buffers full), and the hub would see the server vanish ("gone") instead of close.
        Nothing waits when no hub is connected. Other patterns never wait (REQ/REP has
        waited for its acknowledgements already)."""
        sock = self._sock
        assert sock is not None
        if self.pattern != 2:
            return self.send(parts, control=True)
        deadline = time.monotonic() + timeout
        self._read_subscriptions()
        frames = formats.wrap(self._fmt, self.pattern, parts, topic=CONTROL_TOPIC)
        try:
            sock.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)) if self._topics else 0)
            _send_parts(sock, frames, 0)
        except zmq.ZMQError:
            return False
        if confirm is None:
            return True
        self._bye_topic, self._bye_heard = confirm, False
        while not self._bye_heard and self._topics:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if _poll1(sock, _POLLIN, max(1, int(left * 1000))):
                self._read_subscriptions()
        return self._bye_heard

    def writable(self, timeout: float) -> bool:
        """Whether a message would go out now (DEALER: a hub is connected), waiting up to
        ``timeout`` seconds."""
        sock = self._sock
        assert sock is not None
        return _poll1(sock, _POLLOUT, max(0, int(timeout * 1000)))

    def recv(self, timeout: float) -> Optional[List[bytes]]:
        """Receive one answer within ``timeout`` seconds (delimiter stripped), else None."""
        sock = self._sock
        assert sock is not None
        if not _poll1(sock, _POLLIN, max(0, int(timeout * 1000))):
            return None
        frames = _recv_parts(sock)
        if self.pattern == 1 and frames and frames[0] == b"":
            frames = frames[1:]
        return frames

    def recv_pending(self) -> List[List[bytes]]:
        """Every answer already waiting, without blocking."""
        out = []
        sock = self._sock
        # EVENTS first: called once per frame sent, and mostly with nothing waiting, where
        # a recv would cost a raised and caught zmq.Again
        while sock is not None and sock.get(_EVENTS) & _POLLIN:
            try:
                frames = _recv_parts(sock)
            except zmq.Again:  # pragma: no cover - EVENTS said a message was there
                break
            if self.pattern == 1 and frames and frames[0] == b"":
                frames = frames[1:]
            out.append(frames)
        return out

    def close(self, linger: float = 0.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_monitor()
        if self._sock is not None:
            self._sock.close(int(linger * 1000))
        self._ctx.term()
