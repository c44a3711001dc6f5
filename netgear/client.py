"""The receiving side (the hub).

One I/O thread owns every socket. It decodes what arrives (outside the lock), then, under
one condition lock, feeds the liveness machine, files each packet in its server's queue,
answers REQ/REP requests and wakes consumers. Consumers (``recv_packet``) only ever wait on
that condition, so a waiting hub costs no CPU. Malformed messages are dropped and counted
per port; nothing a peer sends can stop the loop.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

from .errors import ClosedError, ProtocolError, RecvTimeout
from .liveness import Event, Liveness
from .options import Settings
from .packet import Packet
from .stats import HubSnapshot, PortStats, ServerStats
from .transport import CONTROL_TOPIC, Disconnected, HubTransport, Incoming, topic_frame
from .wire import NO_MESSAGE, Kind, Limits
from .wire import native

__all__ = ["Client"]

_log = logging.getLogger(__name__)

Key = Tuple[int, str]
#: longest the I/O loop sleeps without looking at the clock
_MAX_SLEEP = 1.0


@dataclass
class _Pending:
    """A REQ/REP request the hub has not answered yet."""

    port: int
    route: Optional[bytes]
    seq: int


@dataclass
class _Book:
    """Per-server bookkeeping owned by the I/O thread (read under the lock)."""

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
    pending: Optional[_Pending] = None
    last_ack: Optional[Tuple[int, List[bytes]]] = None
    queue: Deque[Tuple[int, Packet]] = field(default_factory=collections.deque)


class Client:
    """The hub: binds every port, receives from every server. Use via ``NetGear``."""

    def __init__(self, settings: Settings, log: Optional[logging.Logger] = None) -> None:
        self._settings = settings
        self._opts = opts = settings.options
        self._log = log or _log
        self._limits = Limits(opts.max_message_bytes, opts.max_frame_bytes)
        self._reqrep = settings.pattern == 1
        self._bidirectional = opts.bidirectional_mode
        self._latest = settings.delivery == "latest"
        self._filter = frozenset(opts.filter) if opts.filter else None
        self._transport = HubTransport(settings.pattern, settings.endpoints, opts, self._subscriptions)
        self.ports: List[int] = self._transport.ports
        self._cond = threading.Condition()
        self._books: Dict[Key, _Book] = {}
        self._ready: Dict[Key, None] = {}
        self._order = itertools.count()
        self._rejected: Dict[int, collections.Counter] = {p: collections.Counter() for p in self.ports}
        self._commands: Deque[Tuple[Key, int, Any]] = collections.deque()
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
        self._thread = threading.Thread(target=self._run, name=f"netgear-hub-{self.ports[0]}", daemon=True)
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
        with self._cond:
            self._answer_previous(answer)
            while True:
                packet = self._pop()
                if packet is not None:
                    return packet
                if self._ended or self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RecvTimeout(f"no frame within {timeout:g}s on ports {self.ports}")
                self._cond.wait(remaining)

    def __iter__(self) -> Iterator[Packet]:
        while True:
            packet = self.recv_packet()
            if packet is None:
                return
            yield packet

    def _pop(self) -> Optional[Packet]:
        if not self._ready:
            return None
        key = min(self._ready, key=lambda k: self._books[k].queue[0][0])
        book = self._books[key]
        _, packet = book.queue.popleft()
        if not book.queue:
            del self._ready[key]
        if self._bidirectional:
            self._unanswered = packet
        elif book.pending is not None and len(book.queue) <= self._opts.queue_size:
            self._command(key, book.pending.seq, NO_MESSAGE)  # back-pressure released
        return packet

    def _answer_previous(self, answer: Any) -> None:
        packet, self._unanswered = self._unanswered, None
        if packet is not None:
            self._answer(packet, NO_MESSAGE if answer is None else answer, locked=True)

    def _answer(self, packet: Packet, data: Any, locked: bool = False) -> bool:
        if not locked:
            with self._cond:
                return self._answer(packet, data, locked=True)
        if self._unanswered is packet:
            self._unanswered = None
        book = self._books.get((packet.port, packet.server_id))
        if book is None or book.pending is None or book.pending.seq != packet.seq:
            return False
        # Encoded here so a bad reply raises in the caller's thread, not in the I/O loop.
        native.encode_ack(packet.seq, data, limits=self._limits)
        self._command((packet.port, packet.server_id), packet.seq, data)
        return True

    def _command(self, key: Key, seq: int, data: Any) -> None:
        self._commands.append((key, seq, data))
        self._transport.wake()

    def snapshot(self) -> HubSnapshot:
        """A frozen picture of every port and server: states, counters, rejections."""
        now = time.monotonic()
        with self._cond:
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
            queued=len(book.queue),
            dropped=book.dropped,
            filtered=book.filtered,
            duplicates=book.duplicates,
            lost=book.lost,
            last_seq=book.last_seq,
        )

    def pop_events(self) -> List[Event]:
        """Liveness events (joined, left, returned, ...) since the last call, oldest first."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
            return events

    @property
    def ended(self) -> bool:
        return self._ended

    def close(self) -> None:
        """Stop receiving; wakes any waiting ``recv`` (it returns None). Idempotent, < 1 s."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._transport.wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=0.9)
        if not self._thread.is_alive():
            self._transport.close()
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
        return [CONTROL_TOPIC] + [topic_frame(t) for t in sorted(self._filter)]

    def _run(self) -> None:
        while not self._closed:
            try:
                self._step()
            except ClosedError:
                break
            except Exception:  # never let one bad iteration end the hub
                self._log.exception("unexpected error in the hub's I/O loop (continuing)")
                time.sleep(0.01)

    def _step(self) -> None:
        with self._cond:
            deadline = self._liveness.next_deadline()
        timeout = _MAX_SLEEP if deadline is None else min(_MAX_SLEEP, max(0.0, deadline - time.monotonic()))
        observations, _ = self._transport.poll(timeout)
        if self._closed:
            raise ClosedError("closing")
        decoded = [self._decode(o) if isinstance(o, Incoming) else o for o in observations]
        now = time.monotonic()
        with self._cond:
            delivered = False
            for item in decoded:
                if isinstance(item, Disconnected):
                    self._on_events(self._liveness.disconnected(item.port, item.conn, now))
                elif item is not None:
                    delivered |= self._on_message(*item, now)
            self._run_commands()
            self._on_events(self._liveness.tick(now))
            if self._liveness.ended and not self._ended:
                self._ended = True
                delivered = True
            if delivered:
                self._cond.notify_all()

    def _decode(self, inc: Incoming) -> Optional[Tuple[Incoming, Any]]:
        try:
            return inc, native.decode(inc.parts, self._limits)
        except ProtocolError as exc:
            reason, detail = exc.reason, exc
        except Exception as exc:  # a codec bug must not cost the rest of the batch
            reason, detail = "internal", exc
        with self._cond:
            self._rejected[inc.port][reason] += 1
        self._log.debug("port %s: dropped a message (%s)", inc.port, detail)
        return None

    def _on_message(self, inc: Incoming, msg: Any, now: float) -> bool:
        key = (inc.port, msg.server_id)
        if msg.kind == Kind.BYE:
            self._on_events(self._liveness.bye(inc.port, msg.server_id, now))
            self._release_hold(key)
            return False
        self._on_events(self._liveness.message(inc.port, msg.server_id, now, session=msg.session, conn=inc.conn))
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Book(topic=msg.topic)
        book.topic = msg.topic
        if msg.kind != Kind.FRAME:
            return False
        if not self._is_new(book, msg, inc):
            return False
        if self._filter is not None and msg.topic not in self._filter and str(inc.port) not in self._filter:
            book.filtered += 1
            self._ack(key, book, inc, msg.seq)
            return False
        self._file(key, book, inc, msg, now)
        return True

    def _is_new(self, book: _Book, msg: Any, inc: Incoming) -> bool:
        """Sequence bookkeeping: counts gaps, and answers (without delivering) a resend."""
        if book.session == msg.session and book.last_seq is not None:
            if msg.seq <= book.last_seq:
                book.duplicates += 1
                if book.pending is not None and book.pending.seq == msg.seq:
                    book.pending.route = inc.route  # the server retried on a fresh socket
                elif self._reqrep and book.last_ack is not None and book.last_ack[0] == msg.seq:
                    self._transport.reply(inc.port, inc.route, book.last_ack[1])
                elif self._reqrep:
                    self._transport.reply(inc.port, inc.route, native.encode_ack(msg.seq, limits=self._limits))
                return False
            book.lost += msg.seq - book.last_seq - 1
        book.session, book.last_seq = msg.session, msg.seq
        return True

    def _file(self, key: Key, book: _Book, inc: Incoming, msg: Any, now: float) -> None:
        packet = Packet(
            port=inc.port,
            frame=msg.frame,
            message=msg.message,
            has_message=msg.has_message,
            server_id=msg.server_id,
            topic=msg.topic,
            seq=msg.seq,
            sent_at=msg.sent_ns / 1e9,
            received_at=time.time(),
            _answer=self._answer if self._bidirectional else None,
        )
        book.frames += 1
        book.bytes += msg.nbytes
        book.messages += msg.has_message
        if self._latest and book.queue:
            book.dropped += len(book.queue)
            book.queue.clear()
        book.queue.append((next(self._order), packet))
        self._ready[key] = None
        if not self._reqrep:
            # Nothing to hold back without acknowledgements: keep the newest queue_size.
            while len(book.queue) > self._opts.queue_size:
                book.queue.popleft()
                book.dropped += 1
            return
        if self._bidirectional or len(book.queue) > self._opts.queue_size:
            self._hold(key, book, _Pending(inc.port, inc.route, msg.seq))
        else:
            self._ack(key, book, inc, msg.seq)

    # -- answering REQ/REP requests -----------------------------------------------------

    def _ack(self, key: Key, book: _Book, inc: Incoming, seq: int, data: Any = NO_MESSAGE) -> None:
        if not self._reqrep:
            return
        parts = native.encode_ack(seq, data, limits=self._limits)
        book.last_ack = (seq, parts)
        self._transport.reply(inc.port, inc.route, parts)

    def _hold(self, key: Key, book: _Book, pending: _Pending) -> None:
        if book.pending is None:
            self._liveness.hold(key[0], key[1], True)
        book.pending = pending

    def _release_hold(self, key: Key) -> None:
        book = self._books.get(key)
        if book is not None and book.pending is not None:
            book.pending = None
            self._liveness.hold(key[0], key[1], False, time.monotonic())

    def _run_commands(self) -> None:
        while self._commands:
            key, seq, data = self._commands.popleft()
            book = self._books.get(key)
            if book is None or book.pending is None or book.pending.seq != seq:
                continue
            pending = book.pending
            self._release_hold(key)
            parts = native.encode_ack(seq, data, limits=self._limits)
            book.last_ack = (seq, parts)
            self._transport.reply(pending.port, pending.route, parts)

    def _on_events(self, events: List[Event]) -> None:
        for event in events:
            self._events.append(event)
            if event.kind == "duplicate":
                self._log.warning(
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
            if event.kind == "left" and event.server_id is not None:
                self._release_hold((event.port, event.server_id))
