"""The receiving side (the hub).

The sockets are polled by one thread at a time: a consumer waiting in ``recv_packet`` with
nothing to take polls them itself (leader/follower: the packet it files is the packet it
returns, with no hand-over between threads), and the hub's I/O thread takes them back when
no consumer has polled for ``_HANDBACK`` seconds, so answers, heartbeats and liveness never
wait for a busy consumer for long. Whoever polls recognises each message's wire format
(netgear's own, vidgear's, imagezmq's), validates it (outside the lock), then, under one
condition lock, feeds the liveness machine, files the packet in its server's queue, answers
REQ/REP requests and wakes other consumers. JPEG frames go to a small pool of decoder
threads sharing one queue (under ``fifo`` one server's frames decode on several threads
and are filed back in arrival order; under ``latest`` one at a time; several servers in
parallel either way; the codec releases the GIL). A waiting hub costs no CPU: pollers
block in the poll, other threads on conditions. Malformed messages are dropped and counted per port;
nothing a peer sends can stop the loop.

Copies on the receive path: a raw frame is a numpy view over the buffer ZeroMQ received
into (no copy); a JPEG frame is decoded straight into its output array (no copy besides the
decode itself) and its compressed bytes are handed over as a view (``packet.jpeg``).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from . import codecs
from .errors import ClosedError, ProtocolError, RecvTimeout
from ._threads import show_name
from .liveness import Event, Liveness
from .options import Settings
from .packet import Packet
from .stats import HubSnapshot, PortStats, ServerStats
from .transport import CONTROL_TOPIC, Disconnected, HubTransport, Incoming, bye_topic, topic_frame
from .wire import NO_MESSAGE, Decoded, Kind, Limits, formats, native

__all__ = ["Client"]

_log = logging.getLogger(__name__)

Key = Tuple[int, str]
#: longest the I/O loop sleeps without looking at the clock
_MAX_SLEEP = 1.0
#: how long the sockets may go unattended after a consumer stopped polling them before the
#: I/O thread takes them back (a consumer that returns sooner keeps them: no hand-over)
_HANDBACK = 0.01
#: how often the parked I/O thread looks whether a polling consumer is still there
_PARKED = 0.1
#: what _next_or_end returns when there is nothing yet and no end
_WAIT = object()


@dataclass
class _Pending:
    """A request the hub has not answered yet (REQ/REP, or a vidgear PAIR peer)."""

    port: int
    envelope: List[Any]
    seq: int
    fmt: ModuleType
    decoded: Decoded
    #: an answer is queued for the I/O thread, which sends it and forgets this entry
    answered: bool = False


@dataclass
class _Book:
    """Per-server bookkeeping, changed under the hub's lock."""

    topic: str = ""
    session: Optional[int] = None
    last_seq: Optional[int] = None
    frames: int = 0
    messages: int = 0
    bytes: int = 0
    dropped: int = 0
    filtered: int = 0
    duplicates: int = 0
    lost: int = 0
    local_seq: int = 0
    #: a foreign sender: no heartbeats, so its liveness is its connection
    quiet: bool = False
    #: its frames carry sequence numbers (native)
    sequenced: bool = True
    pending: Deque[_Pending] = field(default_factory=collections.deque)
    last_ack: Optional[Tuple[int, List[Any]]] = None
    #: the frame whose sender asked for no ACK yet (native ``d``): the ACK of a later frame
    #: covers it, or one sent when the server's heartbeat comes
    deferred: Optional[int] = None
    queue: Deque[Tuple[int, Packet]] = field(default_factory=collections.deque)
    #: JPEG frames given to the decoders and not filed yet (waiting, decoding, or decoded
    #: ahead of an earlier one), in arrival order
    decodes: Deque["_Job"] = field(default_factory=collections.deque)


@dataclass
class _Job:
    """A JPEG frame waiting for a decoder thread."""

    key: Key
    packet: Packet
    encoded: Any
    fastdct: bool
    fastupsample: bool
    #: set by the decoder thread; the frame is filed once every earlier frame of its server is
    done: bool = False
    image: Any = None
    error: Optional[ProtocolError] = None


class _Decoders:
    """Decoder threads sharing one queue. Any idle thread takes the oldest waiting frame of
    a server that may take one more thread: with ``spread`` (``fifo``), as many of a
    server's frames decode at once as there are threads, so one high-resolution camera
    uses them all (the hub files them back in order); without it (``latest``, where an
    older frame would only be replaced), one at a time. Either way the threads stay busy
    whatever the mix of servers (three cameras on two threads, servers that come and go)."""

    def __init__(self, count: int, done: Callable[[_Job, Any, Optional[ProtocolError]], None], name: str) -> None:
        self._done = done
        self._count = count
        self._cond = threading.Condition(threading.Lock())
        #: frames waiting, per server, oldest first, each with its arrival number
        self._waiting: Dict[Key, Deque[Tuple[int, _Job]]] = {}
        #: how many threads decode each server's frames now, and may at most
        self._busy: Dict[Key, int] = {}
        self._limit: Dict[Key, int] = {}
        #: servers with frames waiting and room for one more thread: the threads' choice
        self._ready: Dict[Key, None] = {}
        self._arrivals = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-decode{i}", daemon=True) for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: _Job, keep: Optional[int], spread: bool = False) -> List[_Job]:
        """Queue ``job`` behind at most ``keep`` of that server's jobs not yet started (the
        oldest others are dropped and returned; ``None``: no bound)."""
        with self._cond:
            key = job.key
            waiting = self._waiting.get(key)
            if waiting is None:
                waiting = self._waiting[key] = collections.deque()
                self._busy[key] = 0
            self._limit[key] = self._count if spread else 1
            dropped = []
            if keep is not None:
                while len(waiting) > keep:
                    dropped.append(waiting.popleft()[1])
            waiting.append((next(self._arrivals), job))
            if self._busy[key] < self._limit[key]:
                self._ready[key] = None
                self._cond.notify()
            return dropped

    def _take(self) -> Optional[_Job]:
        """Under the lock: the oldest waiting frame of a server with room for a thread."""
        if not self._ready:
            return None
        if len(self._ready) == 1:
            key = next(iter(self._ready))
        else:
            key = min(self._ready, key=lambda k: self._waiting[k][0][0])
        waiting = self._waiting[key]
        job = waiting.popleft()[1]
        self._busy[key] += 1
        if not waiting or self._busy[key] >= self._limit[key]:
            del self._ready[key]
        return job

    def _work(self) -> None:
        show_name()
        job: Optional[_Job] = None
        while True:
            with self._cond:
                if job is not None:  # that server has room for a thread again
                    self._busy[job.key] -= 1
                    if self._waiting[job.key]:
                        self._ready[job.key] = None
                job = self._take()
                while job is None and not self._closed:
                    self._cond.wait()
                    job = self._take()
                if self._closed:
                    return
                if self._ready:  # more than this thread can take: another may be idle
                    self._cond.notify()
            try:
                enc = job.encoded
                image = codecs.decode_jpeg(
                    enc.data, enc.colorspace, enc.shape, fastdct=job.fastdct, fastupsample=job.fastupsample
                )
                self._done(job, image, None)
            except ProtocolError as exc:
                self._done(job, None, exc)
            except Exception as exc:  # pragma: no cover - a decoder bug must not kill the thread
                self._done(job, None, ProtocolError("internal", repr(exc)))

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Client:
    """The hub: binds every port, receives from every server. Use via ``NetGear``."""

    def __init__(self, settings: Settings, log: Optional[logging.Logger] = None) -> None:
        self._settings = settings
        self._opts = opts = settings.options
        self._log = log or _log
        self._pattern = settings.pattern
        self._limits = Limits(opts.max_message_bytes, opts.max_frame_bytes)
        self._bidirectional = opts.bidirectional_mode
        self._latest = settings.delivery == "latest"
        self._filter = frozenset(opts.filter) if opts.filter else None
        self._transport = HubTransport(settings.pattern, settings.endpoints, opts, self._subscriptions)
        self.ports: List[int] = self._transport.ports
        # taken as ``with self._lock`` (C code) where nothing waits or notifies: a
        # Condition's own __enter__/__exit__ are Python calls, several per frame
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._books: Dict[Key, _Book] = {}
        self._ready: Dict[Key, None] = {}
        self._order = itertools.count()
        self._rejected: Dict[int, collections.Counter] = {p: collections.Counter() for p in self.ports}
        self._commands: Deque[Tuple[str, Key, int, Any]] = collections.deque()
        self._events: Deque[Event] = collections.deque(maxlen=1000)
        self._unanswered: Optional[Packet] = None
        self._liveness = Liveness(
            self.ports,
            timeout=opts.liveness_timeout,
            startup_grace=opts.startup_grace,
            idle_timeout=opts.subscriber_timeout,
            now=time.monotonic(),
        )
        self._ended = False
        self._closed = False
        # Whoever holds _io may touch the sockets. A consumer with nothing to take polls
        # them itself (one thread hop less per frame: the packet it files is the packet it
        # returns); the I/O thread polls whenever no consumer has for _HANDBACK seconds.
        self._io = threading.Lock()
        self._wanted = 0  # consumers asking for the sockets (under _cond)
        self._polling = False  # a consumer holds _io (decoders must wake it, not notify)
        self._left_at = 0.0  # when the last polling consumer let go of the sockets
        self._revived: set = set()  # (port, server id) joined or returned this round
        self._parked = threading.Condition(threading.Lock())
        name = f"netgear-hub-{self.ports[0]}"
        threads = opts.decode_threads or max(1, min(4, os.cpu_count() or 1))
        self._decoders: Optional[_Decoders] = None
        if opts.jpeg_decode:
            self._decoders = _Decoders(threads, self._decoded, name)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._log.info(
            "hub listening on %s (%s, delivery=%s)",
            ", ".join(e.url() for e in self._transport.endpoints),
            settings.pattern_name,
            settings.delivery,
        )

    # -- consumer side -----------------------------------------------------------------

    def recv_packet(self, timeout: Optional[float] = None, *, answer: Any = None) -> Optional[Packet]:
        """Next packet in arrival order; ``None`` once every server is gone (or closed).

        Raises :class:`~netgear.errors.RecvTimeout` when ``timeout`` seconds pass first.
        With ``bidirectional_mode``, the previously delivered packet is answered now with
        ``answer`` unless it was answered already with ``packet.reply()``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._answer_previous(answer)
        while True:
            with self._lock:
                got = self._next_or_end(deadline, timeout)
                if got is not _WAIT:
                    return got
                self._wanted += 1
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                held = self._take_sockets(remaining)
            finally:
                with self._lock:
                    self._wanted -= 1
            if not held:  # another consumer polls: wait for what it files
                with self._lock:
                    if self._pop_ready() or self._closed:
                        continue
                    self._cond.wait(_HANDBACK if remaining is None else min(remaining, _HANDBACK))
                continue
            try:
                self._polling = True
                packet = self._poll_for_packet(deadline, timeout)
            finally:
                self._polling = False
                self._left_at = time.monotonic()
                self._io.release()
            if packet is not None or self._closed or self._ended:
                return packet

    def _next_or_end(self, deadline: Optional[float], timeout: Optional[float]) -> Any:
        """Under the lock: the next packet, None at the end of the stream, or ``_WAIT``;
        RecvTimeout once ``deadline`` has passed."""
        packet = self._pop()
        if packet is not None:
            return packet
        if self._closed or (self._ended and not self._decoding()):
            return None
        if deadline is not None and deadline - time.monotonic() <= 0:
            raise RecvTimeout(f"no frame within {timeout:g}s on ports {self.ports}")
        return _WAIT

    def _take_sockets(self, remaining: Optional[float]) -> bool:
        """Hold ``_io``: at once if nobody polls, else after waking whoever does."""
        if self._io.acquire(blocking=False):
            return True
        self._transport.wake()  # the I/O thread is in its poll: it lets go and parks
        return self._io.acquire(timeout=_HANDBACK if remaining is None else max(0.0, min(remaining, _HANDBACK)))

    def _pop_ready(self) -> bool:
        return bool(self._ready)

    def _poll_for_packet(self, deadline: Optional[float], timeout: Optional[float]) -> Optional[Packet]:
        """Poll the sockets in this (consumer) thread until a packet is filed for it."""
        while True:
            with self._lock:
                got = self._next_or_end(deadline, timeout)
            if got is not _WAIT:
                return got
            try:
                self._step(None if deadline is None else deadline - time.monotonic())
            except ClosedError:
                return None
            except Exception:  # never let one bad iteration break recv()
                self._log.exception("unexpected error while receiving (continuing)")
                time.sleep(0.01)

    def __iter__(self) -> Iterator[Packet]:
        while True:
            packet = self.recv_packet()
            if packet is None:
                return
            yield packet

    def _decoding(self) -> int:
        return sum(len(book.decodes) for book in self._books.values())

    def _pop(self) -> Optional[Packet]:
        if not self._ready:
            return None
        if len(self._ready) == 1:
            key = next(iter(self._ready))
        else:  # the oldest packet across servers
            key = min(self._ready, key=lambda k: self._books[k].queue[0][0])
        book = self._books[key]
        _, packet = book.queue.popleft()
        if not book.queue:
            del self._ready[key]
        if self._bidirectional:
            self._unanswered = packet
        elif book.pending and self._has_room(book):
            self._command("release", key, 0, NO_MESSAGE)  # back-pressure lifted
        return packet

    def _has_room(self, book: _Book) -> bool:
        return len(book.queue) + len(book.decodes) < self._opts.queue_size

    def _answer_previous(self, answer: Any) -> None:
        packet, self._unanswered = self._unanswered, None
        if packet is not None:
            self._answer(packet, NO_MESSAGE if answer is None else answer, locked=True)

    def _answer(self, packet: Packet, data: Any, locked: bool = False) -> bool:
        if not locked:
            with self._lock:
                return self._answer(packet, data, locked=True)
        if self._unanswered is packet:
            self._unanswered = None
        book = self._books.get((packet.port, packet.server_id))
        pending = next((p for p in book.pending if p.seq == packet.seq), None) if book else None
        if pending is None or pending.answered:
            return False
        # Encoded here so that bad data raises in the caller's thread, not in the I/O loop.
        formats.reply(pending.fmt, pending.decoded, data, limits=self._limits, pattern=self._pattern)
        pending.answered = True
        self._command("answer", (packet.port, packet.server_id), packet.seq, data)
        return True

    def _command(self, kind: str, key: Key, seq: int, data: Any) -> None:
        self._commands.append((kind, key, seq, data))
        self._transport.wake()

    def snapshot(self) -> HubSnapshot:
        """A frozen picture of every port and server: states, counters, rejections."""
        now = time.monotonic()
        with self._lock:
            statuses = self._liveness.snapshot(now)
            servers = tuple(self._server_stats(s) for s in statuses)
            ports = tuple(
                PortStats(e.port, e.url(), dict(self._rejected[e.port])) for e in self._transport.endpoints
            )
            return HubSnapshot(time.time(), self._settings.pattern_name, self._ended, ports, servers)

    def _server_stats(self, status: Any) -> ServerStats:
        book = self._books.get((status.port, status.server_id)) if status.server_id else None
        base = dict(
            port=status.port,
            server_id=status.server_id,
            state=status.state.value,
            since=status.since,
            age=status.age,
            reason=status.reason,
        )
        if book is None:
            return ServerStats(**base)
        return ServerStats(
            **base,
            topic=book.topic,
            frames=book.frames,
            messages=book.messages,
            bytes=book.bytes,
            queued=len(book.queue) + len(book.decodes),
            dropped=book.dropped,
            filtered=book.filtered,
            duplicates=book.duplicates,
            lost=book.lost,
            last_seq=book.last_seq,
        )

    def reload_keys(self) -> int:
        """Ironhouse: re-read the allow-list of server keys; returns how many are allowed."""
        return self._transport.reload_keys()

    def pop_events(self) -> List[Event]:
        """Liveness events (joined, left, returned, ...) since the last call, oldest first."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
            return events

    @property
    def ended(self) -> bool:
        return self._ended

    def close(self) -> None:
        """Stop receiving; wakes any waiting ``recv`` (it returns None). Idempotent, < 1 s."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._transport.wake()
        with self._parked:
            self._parked.notify_all()
        if self._decoders is not None:
            self._decoders.close(0.4)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=0.5)
        # a consumer polling the sockets was woken above and lets go of them at once
        if not self._thread.is_alive() and self._io.acquire(timeout=0.3):
            try:
                self._transport.close()
            finally:
                self._io.release()
        self._log.debug("hub on ports %s closed", self.ports)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"netgear hub on ports {self.ports} was never closed", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    # -- I/O thread ----------------------------------------------------------------------

    def _subscriptions(self, port: int) -> List[bytes]:
        if self._filter is None or str(port) in self._filter:
            return [b""]
        # foreign publishers send no topic frame (their first part is JSON): let them in
        # and filter them by topic in Python
        return [CONTROL_TOPIC, b"{"] + [topic_frame(t) for t in sorted(self._filter)]

    def _run(self) -> None:
        show_name()
        while not self._closed:
            if self._wanted or self._polling or time.monotonic() - self._left_at < _HANDBACK:
                # a consumer polls, wants to, or just did and will likely be back: park
                wait = _PARKED if (self._wanted or self._polling) else _HANDBACK
                with self._parked:
                    self._parked.wait(wait)
                continue
            if not self._io.acquire(timeout=_HANDBACK):
                continue
            try:
                if self._wanted:
                    continue
                self._step()
            except ClosedError:
                break
            except Exception:  # never let one bad iteration end the hub
                self._log.exception("unexpected error in the hub's I/O loop (continuing)")
                time.sleep(0.01)
            finally:
                self._io.release()

    def _step(self, limit: Optional[float] = None) -> None:
        """One round: poll (at most ``limit`` seconds), decode, file, answer, tick."""
        with self._lock:
            deadline = self._liveness.next_deadline()
        timeout = _MAX_SLEEP if deadline is None else min(_MAX_SLEEP, max(0.0, deadline - time.monotonic()))
        if limit is not None:
            timeout = max(0.0, min(timeout, limit))
        observations, _ = self._transport.poll(timeout)
        if self._closed:
            raise ClosedError("closing")
        decoded = [self._decode(o) if isinstance(o, Incoming) else o for o in observations]
        now = time.monotonic()
        with self._lock:
            delivered = False
            self._revived.clear()
            for item in decoded:
                if isinstance(item, Disconnected):
                    # Not judged by a dropped connection, only by their silence: servers
                    # that came back in this very round (a late message flushed on the
                    # dying connection while they reconnect), and, when the descriptor
                    # number was reused, whoever spoke on it this round (maybe the new one).
                    spare = {sid for port, sid in self._revived if port == item.port}
                    if item.reused:
                        spare.update(d[2].server_id for d in decoded if isinstance(d, tuple)
                                     and d[0].port == item.port and d[0].conn == item.conn)
                    self._on_events(self._liveness.disconnected(item.port, item.conn, now, spare=spare))
                elif item is not None:
                    delivered |= self._on_message(*item, now)
            self._run_commands()
            if deadline is not None and now >= deadline:
                # (the deadline read before the poll can only be early, never late: a
                # message, a release or a drop moves deadlines later; tick is exact)
                self._on_events(self._liveness.tick(now))
            if self._liveness.ended and not self._ended:
                self._ended = True
                delivered = True
            if delivered:
                self._cond.notify_all()

    def _decode(self, inc: Incoming) -> Optional[Tuple[Incoming, ModuleType, Decoded]]:
        fmt = formats.detect(inc.parts)
        try:
            msg = fmt.decode(inc.parts, self._limits)
            if inc.identity is not None:  # Ironhouse: who the key says, not what it claims
                msg = dataclasses.replace(msg, server_id=inc.identity)
            return inc, fmt, msg
        except ProtocolError as exc:
            reason, detail = exc.reason, exc
        except Exception as exc:  # a codec bug must not cost the rest of the batch
            reason, detail = "internal", exc
        with self._lock:
            self._rejected[inc.port][reason] += 1
        refusal = formats.refusal(fmt, self._pattern)
        if refusal is not None:  # its sender waits for an answer whatever happens
            self._transport.reply(inc.port, inc.envelope, refusal)
        self._log.debug("port %s: dropped a message (%s)", inc.port, detail)
        return None

    def _on_message(self, inc: Incoming, fmt: ModuleType, msg: Decoded, now: float) -> bool:
        key = (inc.port, msg.server_id)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Book(
                topic=msg.topic, quiet=not formats.heartbeats(fmt), sequenced=formats.sequenced(fmt)
            )
        if msg.kind == Kind.BYE:
            self._on_events(self._liveness.bye(inc.port, msg.server_id, now))
            self._drop_pending(key, book)
            self._reply(inc.port, inc.envelope, fmt, msg)  # vidgear waits for this answer
            if fmt is native and self._pattern == 2:  # the server waits for this one
                self._transport.confirm(inc.port, bye_topic(msg.session))
            return False
        first = self._liveness.state_of(inc.port, msg.server_id) is None
        events = self._liveness.message(inc.port, msg.server_id, now, session=msg.session, conn=inc.conn)
        if events:  # (none from a server already alive: the usual case)
            self._on_events(events)
        if first and book.quiet:
            self._liveness.hold(inc.port, msg.server_id, True)  # silence never counts against it
        book.topic = msg.topic
        if msg.kind != Kind.FRAME:
            if book.deferred is not None:  # a heartbeat: the server is idle or closing
                self._ack_deferred(book, inc.port, inc.envelope)
            return False
        seq = self._sequence(book, inc, fmt, msg)
        if seq is None:
            return False
        if self._filter is not None and msg.topic not in self._filter and str(inc.port) not in self._filter:
            book.filtered += 1
            self._reply(inc.port, inc.envelope, fmt, msg, seq=seq)
            return False
        return self._admit(key, book, inc, fmt, msg, seq)

    def _sequence(self, book: _Book, inc: Incoming, fmt: ModuleType, msg: Decoded) -> Optional[int]:
        """The frame's sequence number, or None for a resend (answered, not delivered)."""
        if not book.sequenced:
            book.local_seq += 1  # foreign formats carry none: the hub numbers their frames
            return book.local_seq
        if book.session != msg.session:
            book.deferred = None  # (its server is gone)
        elif book.last_seq is not None:
            if msg.seq <= book.last_seq:
                book.duplicates += 1
                self._answer_resend(book, inc, fmt, msg)
                return None
            book.lost += msg.seq - book.last_seq - 1
        book.session, book.last_seq = msg.session, msg.seq
        return msg.seq

    def _answer_resend(self, book: _Book, inc: Incoming, fmt: ModuleType, msg: Decoded) -> None:
        for pending in book.pending:
            if pending.seq == msg.seq:
                pending.envelope = inc.envelope  # the server retried on a fresh socket
                return
        if book.last_ack is not None and book.last_ack[0] == msg.seq:
            self._transport.reply(inc.port, inc.envelope, book.last_ack[1])
        else:
            self._reply(inc.port, inc.envelope, fmt, msg)

    def _admit(self, key: Key, book: _Book, inc: Incoming, fmt: ModuleType, msg: Decoded, seq: int) -> bool:
        """Answer now or hold the answer (back-pressure, bidirectional), then file or decode."""
        answered_later = self._bidirectional or (not self._latest and (book.pending or not self._has_room(book)))
        if answered_later and formats.owes_reply(fmt, msg, self._pattern):
            if not book.pending:
                self._liveness.hold(key[0], key[1], True)
            book.pending.append(_Pending(inc.port, inc.envelope, seq, fmt, msg))
        elif msg.defer and book.sequenced:
            book.deferred = seq  # answered with a later frame
        else:
            self._reply(inc.port, inc.envelope, fmt, msg, seq=seq)
        packet = Packet(
            port=inc.port,
            frame=msg.frame,
            message=msg.message,
            has_message=msg.has_message,
            server_id=msg.server_id,
            topic=msg.topic,
            seq=seq,
            sent_at=msg.sent_ns / 1e9 if msg.sent_ns else time.time(),
            received_at=time.time(),
            jpeg=msg.encoded.data if msg.encoded is not None else None,
            _answer=self._answer if self._bidirectional else None,
        )
        book.frames += 1
        book.bytes += msg.nbytes
        book.messages += msg.has_message
        if msg.encoded is not None and self._decoders is not None:
            # latest: a newer frame replaces the one still waiting for a decoder; fifo with
            # nothing held back (no acknowledgements): the newest queue_size wait, as in _file
            if self._latest:
                keep: Optional[int] = 0
            elif book.pending or self._pattern == 1:
                keep = None  # bounded by the acknowledgements held back
            else:
                keep = max(0, self._opts.queue_size - len(book.queue) - 1)
            job = _Job(key, packet, msg.encoded, msg.encoded.fastdct, msg.encoded.fastupsample)
            book.decodes.append(job)  # (a decoder that finishes it first waits for this lock)
            replaced = self._decoders.submit(job, keep, spread=not self._latest)
            for old in replaced:
                book.decodes.remove(old)
            book.dropped += len(replaced)
            return False
        self._file(key, book, packet)
        return True

    def _decoded(self, job: _Job, image: Any, error: Optional[ProtocolError]) -> None:
        """Called by a decoder thread."""
        with self._lock:
            book = self._books[job.key]
            job.done, job.image, job.error = True, image, error
            # filed in arrival order: a frame decoded ahead of an earlier one waits for it
            while book.decodes and book.decodes[0].done:
                first = book.decodes.popleft()
                if first.error is not None:
                    self._rejected[first.key[0]][first.error.reason] += 1
                    self._log.debug("port %s: dropped a JPEG frame (%s)", first.key[0], first.error)
                else:
                    self._file(first.key, book, first.packet._with_frame(first.image))
                first.image = None
            if book.pending and not self._bidirectional and self._has_room(book):
                self._command("release", job.key, 0, NO_MESSAGE)
            self._cond.notify_all()
        if self._polling:
            self._transport.wake()  # the consumer waits in the poll, not on the condition

    def _file(self, key: Key, book: _Book, packet: Packet) -> None:
        if self._latest and book.queue:
            book.dropped += len(book.queue)
            book.queue.clear()
        book.queue.append((next(self._order), packet))
        self._ready[key] = None
        if not book.pending and self._pattern != 1:
            # Nothing to hold back without acknowledgements: keep the newest queue_size.
            while len(book.queue) > self._opts.queue_size:
                book.queue.popleft()
                book.dropped += 1

    # -- answering ------------------------------------------------------------------------

    def _reply(
        self, port: int, envelope: List[Any], fmt: ModuleType, msg: Decoded, data: Any = NO_MESSAGE, seq: int = 0
    ) -> None:
        parts = formats.reply(fmt, msg, data, limits=self._limits, pattern=self._pattern)
        if parts is None:
            return
        book = self._books.get((port, msg.server_id))
        if book is not None and book.sequenced:
            book.last_ack = (msg.seq, parts)
            if book.deferred is not None and book.deferred <= msg.seq:
                book.deferred = None  # (an ACK covers the frames before it)
        self._transport.reply(port, envelope, parts)

    def _ack_deferred(self, book: _Book, port: int, envelope: List[Any]) -> None:
        """Answer the deferred frame now, on the connection the server spoke on last (it
        may have reconnected since that frame: a new connection, a new routing id)."""
        assert book.deferred is not None
        seq, book.deferred = book.deferred, None
        parts = native.encode_ack(seq, limits=self._limits)
        book.last_ack = (seq, parts)
        self._transport.reply(port, envelope, parts)

    def _drop_pending(self, key: Key, book: _Book) -> None:
        book.deferred = None
        if book.pending:
            book.pending.clear()
            self._liveness.hold(key[0], key[1], False, time.monotonic())

    def _run_commands(self) -> None:
        while self._commands:
            kind, key, seq, data = self._commands.popleft()
            book = self._books.get(key)
            if book is None or not book.pending:
                continue
            if kind == "answer":
                pending = next((p for p in book.pending if p.seq == seq), None)
                if pending is None:
                    continue
                book.pending.remove(pending)
                self._reply(pending.port, pending.envelope, pending.fmt, pending.decoded, data)
            else:  # release held answers while there is room again, oldest first
                while book.pending and self._has_room(book):
                    pending = book.pending.popleft()
                    if pending.decoded.defer and book.sequenced and book.pending:
                        # its sender asked for no ACK of its own, and a frame held behind it
                        # will answer for both once released (as when not held: _admit)
                        book.deferred = pending.seq
                    else:
                        self._reply(pending.port, pending.envelope, pending.fmt, pending.decoded)
            if not book.pending:
                self._liveness.hold(key[0], key[1], False, time.monotonic())

    def _on_events(self, events: List[Event]) -> None:
        for event in events:
            self._events.append(event)
            if event.kind in ("joined", "returned"):
                self._revived.add((event.port, event.server_id))
            book = self._books.get((event.port, event.server_id)) if event.server_id else None
            if event.kind == "duplicate":
                level = logging.INFO if book is not None and book.quiet else logging.WARNING
                self._log.log(
                    level,
                    "port %s has two servers, %r and %r: both are kept apart by id; give each its own port",
                    event.port,
                    event.other_id,
                    event.server_id,
                )
            elif event.kind == "ended":
                self._log.info("every server is gone: end of stream")
            else:
                reason = f" ({event.reason})" if event.reason else ""
                self._log.info("port %s: server %s %s%s", event.port, event.server_id, event.kind, reason)
            if event.kind == "left" and book is not None:
                self._drop_pending((event.port, event.server_id), book)
